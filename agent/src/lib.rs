//! kubegrid-agent: the program kubegrid pushes to each host.
//!
//! It reads a typed [`protocol::Plan`] on stdin, runs its tasks in order and streams
//! [`protocol::Event`]s back as JSON lines. The engine links this crate for the wire types.

pub mod checks;
pub mod error;
pub mod exec;
pub mod facts;
pub mod fanout;
pub mod fetch;
pub mod fsutil;
pub mod gpu_checks;
pub mod pem;
pub mod protocol;
pub mod run;
pub mod store;
pub mod tasks;
#[cfg(test)]
mod testutil;

pub use self::error::{Error, Result};
