//! Kubernetes on top of the prepared hosts: the spec's Kubernetes settings, the cluster's PKI
//! and join secrets (engine-side, before the playbook), and after it the admin kubeconfig,
//! membership, removals and the cluster checks through the API.
//!
//! The engine owns the CAs (kept in the journal) rather than reading them back from the first
//! control-plane host: the CA hash for joins and the admin kubeconfig are then known before
//! any host runs kubeadm, so the whole plan compiles up front and nothing secret travels back
//! over SSH.

mod context;
mod finish;
mod keda;
pub(crate) mod pki;
mod remove;
mod runtime_classes;
mod secrets;
pub mod serving;

pub use context::{init_failed, kubernetes_context, prepare};
pub(crate) use finish::server_url;
pub use finish::{ClusterChecks, finish, remove_members, write_private};
pub use remove::{DRAIN_PHASE, Leaving, MemberRecord, RemovedNode};
pub use runtime_classes::RUNTIME_CLASSES;
