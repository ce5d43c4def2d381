//! End-to-end tests on lab hosts. One test binary, one module per area.
//!
//! They need root, systemd-nspawn and debootstrap (see README.md); hosts are checked with
//! the plain OpenSSH client, not with kubegrid's code.

mod agent_glibc;
mod airgap;
mod apply;
mod bootstrap;
mod bootstrap_safety;
mod certs;
mod cluster_checks;
mod distribute;
mod fanout;
mod gpu_node;
mod lab;
mod lab_reboot;
mod lab_refusals;
mod lab_shape;
mod measure;
mod membership;
mod model_cache;
mod model_cache_bed;
mod operator;
mod operator_image;
mod reboot;
mod registry;
mod release_bundle;
mod runtime_source;
mod runtimes;
mod ssh;
mod upgrade;
