//! kubegrid: GPU-ready Kubernetes clusters on bare-metal and VM hosts, over SSH.
//!
//! This crate holds the `kubegrid` command line. Lab hosts, the local test bed that every
//! feature is proven on, live in the `kubegrid-lab` crate.

pub mod cli;
pub mod exit;
