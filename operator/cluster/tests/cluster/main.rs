//! kubegrid-cluster against an in-memory fake API server (and, for
//! `connect`, a local TLS endpoint). No real apiserver is involved.

// The test stand-in for kube-apiserver, shared with the e2e tests.
use kubegrid_fake_apiserver as fake;

mod checks;
mod connect;
mod drain;
mod fixtures;
mod gpu;
mod labels;
