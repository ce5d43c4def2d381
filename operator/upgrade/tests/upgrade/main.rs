//! The upgrade planner's tests: one module per rule family, the version-pair table, and the
//! golden text of the e2e's plan.

mod common;
mod containerd;
mod etcd;
mod golden;
mod kubernetes;
mod refusals;
mod resume;
mod skew;
mod table;
