//! The fake apiserver's generic object store, watches and failure injection, driven through
//! kube clients as the operator drives a real apiserver.

mod common;
mod faults;
mod objects;
mod watch;
