//! The upstream rules, one module each.

pub mod containerd;
pub mod etcd;
pub mod kubernetes;
pub mod skew;
