//! kubegrid-cluster against an in-memory fake API server (and, for
//! `connect`, a local TLS endpoint). No real apiserver is involved.

mod checks;
mod connect;
mod drain;
mod fake;
mod fixtures;
mod labels;
