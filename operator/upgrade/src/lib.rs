//! kubegrid's upgrade planner: from a cluster's live versions (kube-apiserver, kubeadm,
//! kubelet, etcd and containerd per Node) and the target versions, the ordered steps that
//! follow the upstream rules, or the blockers that refuse the upgrade before any change.
//!
//! Pure: no host, no SSH, no Kubernetes client. The CLI (`kubegrid upgrade plan|apply`) and
//! the operator gather a [`ClusterState`], call [`plan`], and the executor runs the
//! [`Plan`]'s steps, calling [`skew`] on live versions before every one.
//!
//! The rules, each in its own module under `rules` (sources in docs/upgrades.md):
//! - control plane before workers, one control-plane Node at a time; kubeadm one minor at a
//!   time (`rules::kubernetes`);
//! - workers skip the minors the three-minor kubelet skew allows (Cluster API's chained
//!   upgrade), in batches of `maxUnavailable`;
//! - kube-apiservers within one minor, kubelet never newer than kube-apiserver and at most
//!   three minors older (`rules::skew`);
//! - etcd per Kubernetes minor from kubeadm's table, one member and one minor at a time, 3.6
//!   only from 3.5.26 or later (`rules::etcd`);
//! - containerd only on a line the Kubernetes version supports (`rules::containerd`);
//! - no downgrade; Nodes Ready and reachable; etcd healthy with quorum; no PodDisruptionBudget
//!   that blocks a drain (`blockers`).
//!
//! Resuming is planning again: Nodes already at target produce no steps, and cordoned Nodes
//! at target are listed in [`Plan::uncordon`].

mod blockers;
mod plan;
mod planner;
mod render;
pub mod rules;
mod state;
mod versions;

pub use plan::{Blocker, Change, Component, NodePlan, Plan, Step};
pub use planner::plan;
pub use render::{describe, render_text};
pub use rules::skew::skew;
pub use state::{
    Available, ClusterState, EtcdState, EtcdTopology, NodeState, Pdb, Policy, Roles, Targets,
};
