//! The harness itself, on the real server: it starts, serves kubegrid's CRDs with discovery
//! to `system:masters` only, routes each group to its side, serves both sides over HTTPS
//! (the front), mirrors real objects into the fake, and records the server's warnings.

mod common;
mod front;
mod mirror;
mod routing;
mod warnings;
