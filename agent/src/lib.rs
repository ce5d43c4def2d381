//! kubegrid-agent: the program kubegrid pushes to each host.
//!
//! It will run typed plans and stream JSON events back; this first slice gathers the
//! host facts that preflight and plan compilation build on.

pub mod facts;
