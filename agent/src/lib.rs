//! kubegrid-agent: the program kubegrid pushes to each host.
//!
//! It reads a typed [`protocol::Plan`] on stdin, runs its tasks in order and streams
//! [`protocol::Event`]s back as JSON lines. The engine links this crate for the wire types.

pub mod facts;
pub mod protocol;
