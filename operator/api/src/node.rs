//! The Node resource: one host's intent.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ssh::NodeSshSpec, status::NodeStatus};

/// One host of a Cluster. Per-host status lives here, so a large cluster never makes one
/// giant object.
///
/// The plural `nodes` collides with the core Node in kubectl: use `kubectl get kgn` or
/// `kubectl get kubegrid`.
///
/// The API server keeps `clusterName` immutable and each SSH setting in one place; kubegrid
/// runs the same checks itself. Rules about a Cluster's Nodes as a set, such as an odd
/// number of etcd members, cannot be schema (CEL) rules, since a rule sees one object and
/// each member is its own Node: kubegrid alone checks them, and the operator reports a
/// breach as a condition on the Cluster.
// The CEL rules live in `rules.rs`; `Manifest::validate` (with its `topology` check) and
// `Node::validate_update` are their counterparts in code.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) entries repeat keys such as type_ by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "kubegrid.io",
    version = "v1alpha1",
    kind = "Node",
    namespaced,
    shortname = "kgn",
    category = "kubegrid",
    status = "NodeStatus",
    derive = "PartialEq",
    doc = "A host of a kubegrid Cluster, reached over SSH.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(
        name = "Roles",
        type_ = "string",
        description = "The Node's roles (spec.roles), comma-separated (status.roles)",
        json_path = ".status.roles"
    ),
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(
        name = "Arch",
        type_ = "string",
        description = "CPU architecture detected on the host; spec.arch is the declared one",
        json_path = ".status.facts.arch"
    ),
    printcolumn(
        name = "Desired",
        type_ = "string",
        description = "Present while the host should be in its Cluster, Absent while it is removed",
        json_path = ".status.desiredState"
    ),
    printcolumn(
        name = "Current",
        type_ = "string",
        description = "Where the host is in its life (status.phase)",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::rules::node_port_once(),
    validation = crate::rules::node_user_once()
)]
pub struct NodeSpec {
    /// Name of the Cluster this host belongs to. Immutable.
    #[x_kube(validation = crate::rules::immutable(crate::rules::WHY_CLUSTER_NAME))]
    pub cluster_name: String,
    /// IP address or DNS name that SSH connects to.
    pub address: String,
    /// SSH port; shorthand for `ssh.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// SSH user; shorthand for `ssh.user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the host runs.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Kubernetes labels for the host's Node object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints for the host's Node object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Declared CPU architecture; detected from the host when unset. The detected one is
    /// `status.facts.arch` (the `Arch` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Overrides of the Cluster's SSH defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<NodeSshSpec>,
    /// Whether this is a GPU Node: `auto` (the default) when NVIDIA GPUs are found, `nvidia`
    /// (finding none fails preflight) or `none`.
    #[serde(default, skip_serializing_if = "crate::gpu::NodeGpu::is_auto")]
    pub gpu: crate::gpu::NodeGpu,
}

impl NodeSpec {
    /// `roles` as `status.roles` holds them: comma-separated in spec order, e.g.
    /// `control-plane,etcd`; `None` when there are none (kubectl then prints `<none>`).
    pub fn roles_column(&self) -> Option<String> {
        (!self.roles.is_empty()).then(|| {
            let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            roles.join(",")
        })
    }
}

/// What a host runs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// API server, controller manager and scheduler.
    ControlPlane,
    /// An etcd member. When no Node has this role, etcd is stacked on the control-plane
    /// Nodes. The member count must be odd; only code checks that, since the members are
    /// separate Node objects and a CEL rule sees one.
    Etcd,
    /// Runs workloads.
    Worker,
}

impl Role {
    /// The role as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Etcd => "etcd",
            Self::Worker => "worker",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CPU architecture kubegrid installs on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl Arch {
    /// The name as Debian, Go and container images spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amd64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Kubernetes taint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// What a taint does to pods that do not tolerate it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// The scheduler avoids the host.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}
