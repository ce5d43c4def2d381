//! The planner's output: per-Node changes, the ordered steps, blockers and notes. Serialized
//! as camelCase JSON for `kubegrid upgrade plan --output json` (and read back, for a caller
//! that records plans).

use semver::Version;
use serde::{Deserialize, Serialize};

/// An upgrade plan. Nothing in it has happened; the executor runs `steps` in order, after
/// re-checking [`crate::skew`] from live versions before every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The Cluster's name.
    pub cluster: String,
    /// Per Node (spec order), the components that change: current → target. A Node at
    /// target has no changes.
    pub nodes: Vec<NodePlan>,
    /// The ordered steps.
    pub steps: Vec<Step>,
    /// Why the plan must not run; empty when it can.
    pub blockers: Vec<Blocker>,
    /// Things worth knowing that do not stop the plan (for example a cluster found below
    /// kubeadm's etcd minimum, which the plan's first steps fix).
    pub notes: Vec<String>,
    /// Cordoned Nodes already at target: no step touches them, so the executor uncordons
    /// them (a resumed upgrade whose earlier run stopped after the Node's upgrade, before its
    /// uncordon). Cordoned Nodes that get a [`Step::Roll`] are uncordoned by their roll.
    pub uncordon: Vec<String>,
}

impl Plan {
    /// The plan may run: no blockers.
    pub fn can_run(&self) -> bool {
        self.blockers.is_empty()
    }

    /// Nothing to do: no steps and no Node to uncordon.
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty() && self.uncordon.is_empty()
    }
}

/// One Node's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// The components that change on it.
    pub changes: Vec<Change>,
}

/// One component moving on one Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Which component.
    pub component: Component,
    /// The version now; `None` when unknown.
    pub current: Option<Version>,
    /// The version at the end of the plan.
    pub target: Version,
}

/// A versioned component of a Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Component {
    /// The control plane (kube-apiserver's image tag).
    Kubernetes,
    /// The kubeadm binary.
    Kubeadm,
    /// kubelet (and kubectl).
    Kubelet,
    /// An external etcd member.
    Etcd,
    /// containerd.
    Containerd,
}

impl Component {
    /// The lowercase name used in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Kubeadm => "kubeadm",
            Component::Kubelet => "kubelet",
            Component::Etcd => "etcd",
            Component::Containerd => "containerd",
        }
    }
}

/// One step of the plan. Steps run one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Step {
    /// External etcd member: snapshot, stop, replace binary, start, wait healthy (one at a time).
    EtcdMember {
        /// The member's Node.
        node: String,
        /// Its version now.
        from: Version,
        /// Its version after the step.
        to: Version,
    },
    /// `kubeadm upgrade apply vX` on the first control-plane Node of this minor.
    KubeadmApply {
        /// The Node.
        node: String,
        /// The Kubernetes version applied.
        version: Version,
    },
    /// `kubeadm upgrade node` on another control-plane Node (control plane only; no drain).
    KubeadmNode {
        /// The Node.
        node: String,
        /// The Kubernetes version (kubeadm's) it moves to.
        version: Version,
    },
    /// A batch of Nodes rolled together: for each, [workers: kubeadm upgrade node], cordon,
    /// drain, kubelet+kubectl to `kubelet`, containerd to `containerd` when Some, restart, wait
    /// Ready, uncordon.
    Roll {
        /// The Nodes of the batch.
        nodes: Vec<String>,
        /// The kubelet (and kubectl, and on workers kubeadm) version after the roll.
        kubelet: Version,
        /// The containerd version after the roll, when it changes.
        containerd: Option<Version>,
        /// Workers (true) or one control-plane Node (false).
        worker: bool,
    },
}

impl Step {
    /// A stable id, the same in every plan that has this step: `etcd/cp-1/3.5.30`,
    /// `kubeadm-apply/cp-1/1.32.4`, `kubeadm-node/cp-2/1.32.4`, `roll/w-1,w-2/1.33.4` (with
    /// `+containerd-2.1.9` when the roll moves containerd).
    pub fn id(&self) -> String {
        match self {
            Step::EtcdMember { node, to, .. } => format!("etcd/{node}/{to}"),
            Step::KubeadmApply { node, version } => format!("kubeadm-apply/{node}/{version}"),
            Step::KubeadmNode { node, version } => format!("kubeadm-node/{node}/{version}"),
            Step::Roll {
                nodes,
                kubelet,
                containerd,
                ..
            } => match containerd {
                Some(c) => format!("roll/{}/{kubelet}+containerd-{c}", nodes.join(",")),
                None => format!("roll/{}/{kubelet}", nodes.join(",")),
            },
        }
    }

    /// The Nodes the step touches.
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            Step::EtcdMember { node, .. }
            | Step::KubeadmApply { node, .. }
            | Step::KubeadmNode { node, .. } => vec![node.as_str()],
            Step::Roll { nodes, .. } => nodes.iter().map(String::as_str).collect(),
        }
    }
}

/// Why a plan must not run. The message names the Node, what was seen, what was expected,
/// and a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// The Node concerned, when there is one.
    pub node: Option<String>,
    /// A short rule id (`downgrade`, `skew-kubelet-newer`, `bundle-missing`, …).
    pub rule: String,
    /// What was seen, what was expected, and a hint.
    pub message: String,
}

impl Blocker {
    /// A blocker about `node` (or the cluster): "Node N: SEEN; expected EXPECTED. Hint: HINT".
    pub fn new(node: Option<&str>, rule: &str, seen: &str, expected: &str, hint: &str) -> Self {
        let subject = match node {
            Some(n) => format!("Node {n}: "),
            None => String::new(),
        };
        Blocker {
            node: node.map(str::to_owned),
            rule: rule.to_owned(),
            message: format!("{subject}{seen}; expected {expected}. Hint: {hint}"),
        }
    }
}
