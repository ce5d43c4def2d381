//! The planner's inputs: the cluster as it is now, the versions wanted, what the bundle
//! carries and the roll policy. The caller (CLI or operator) reads them from the hosts, the
//! journal and the API server; the planner only reads these structs.

use semver::Version;
use serde::{Deserialize, Serialize};

/// The roles a Node has in the spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Roles {
    /// Runs the control plane (kube-apiserver and friends as static pods).
    pub control_plane: bool,
    /// Is an etcd member (external etcd: runs etcd itself; stacked: kubeadm's etcd pod).
    pub etcd: bool,
    /// Runs workloads.
    pub worker: bool,
}

/// Where the cluster's etcd runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EtcdTopology {
    /// etcd members installed by kubegrid as their own service; upgraded member by member.
    External,
    /// etcd as kubeadm static pods on the control-plane Nodes; kubeadm upgrades it.
    Stacked,
}

/// One Node as it is now. `None` versions mean "not known" (not installed or not readable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// Node name. Spec order matters: the first control-plane Node is the init node and gets
    /// `kubeadm upgrade apply`.
    pub name: String,
    /// The Node's roles.
    pub roles: Roles,
    /// false when the Node could not be reached over SSH.
    pub reachable: bool,
    /// The Kubernetes Node's Ready condition; `None` when the API server did not answer.
    pub ready: Option<bool>,
    /// Control-plane Nodes: the image tag of `/etc/kubernetes/manifests/kube-apiserver.yaml`.
    pub apiserver: Option<Version>,
    /// The installed kubeadm.
    pub kubeadm: Option<Version>,
    /// The installed kubelet.
    pub kubelet: Option<Version>,
    /// The etcd this Node runs (external etcd members only).
    pub etcd: Option<Version>,
    /// The installed containerd.
    pub containerd: Option<Version>,
    /// The Node is cordoned (for example left so by a failed upgrade).
    pub cordoned: bool,
}

/// The health of the cluster's etcd, from `etcdctl endpoint health` / `member list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdState {
    /// External or stacked.
    pub topology: EtcdTopology,
    /// Members in `member list`.
    pub members: usize,
    /// Members whose endpoint answered healthy.
    pub healthy: usize,
    /// Names of the members that did not answer healthy.
    pub unhealthy: Vec<String>,
}

/// A PodDisruptionBudget, reduced to what decides whether a drain can pass it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pdb {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Nodes running pods it selects.
    pub nodes: Vec<String>,
}

/// Everything the planner knows about the cluster now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// The Cluster's name (for the text output).
    pub cluster: String,
    /// The Nodes, in spec order.
    pub nodes: Vec<NodeState>,
    /// etcd's topology and health.
    pub etcd: EtcdState,
    /// The cluster's PodDisruptionBudgets.
    pub pdbs: Vec<Pdb>,
}

/// The exact versions wanted, from the spec and the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// Kubernetes (kube-apiserver, kubeadm, kubelet, kubectl).
    pub kubernetes: Version,
    /// External etcd; `None` leaves etcd where it is. Ignored for stacked etcd (kubeadm picks).
    pub etcd: Option<Version>,
    /// containerd; `None` leaves containerd where it is.
    pub containerd: Option<Version>,
}

/// The versions the bundle carries; every step's version must be among them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Available {
    /// Kubernetes versions (kubeadm, kubelet and kubectl of each).
    pub kubernetes: Vec<Version>,
    /// etcd versions.
    pub etcd: Vec<Version>,
    /// containerd versions.
    pub containerd: Vec<Version>,
}

/// How the roll may disrupt the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Workers rolled (cordoned and drained) at once; at least 1.
    pub max_unavailable: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_unavailable: 1 }
    }
}

impl ClusterState {
    /// The control-plane Nodes, in spec order.
    pub fn control_plane(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.iter().filter(|n| n.roles.control_plane)
    }

    /// The Kubernetes Nodes outside the control plane (workers; a control-plane Node that
    /// also runs workloads is rolled with the control plane), in spec order. An etcd-only
    /// host without a kubelet is not one of them.
    pub fn workers(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes
            .iter()
            .filter(|n| !n.roles.control_plane && (n.roles.worker || n.kubelet.is_some()))
    }

    /// The Node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
