//! Observed state that the operator writes. Every field is optional, so specs written for
//! `kubectl apply` (which carry no status) parse, and older operators can read newer
//! status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::Arch;

/// Observed state of a Cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Where the cluster is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kubernetes version installed: written only after an operation installed it (the
    /// version the engine recorded for `kubeadm init`), never copied from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Node counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// The operation in progress or last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// Ready, Progressing and Degraded conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line on the state as a whole, e.g. which host failed or which Secret is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The certificates on the hosts: earliest expiry, per-Node summaries, a rotation's
    /// progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<crate::CertificatesStatus>,
    /// The serving layer (`spec.serving`), as the last operation left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<crate::serving::ServingStatus>,
}

/// Where a Cluster is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClusterPhase {
    /// Accepted, nothing done yet.
    Pending,
    /// Being installed.
    Provisioning,
    /// Installed and healthy.
    Ready,
    /// Installed, but some hosts are not healthy.
    Degraded,
    /// Being removed.
    Deleting,
}

/// How many Nodes a Cluster has and how many are ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    /// Nodes that name the Cluster.
    #[serde(default)]
    pub total: u32,
    /// Nodes in phase Ready.
    #[serde(default)]
    pub ready: u32,
}

/// A journaled operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// Journal id.
    pub id: i64,
    /// What it did.
    pub kind: OperationKind,
    /// Start time, RFC 3339, as the journal recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// What an operation does: the playbooks the operator runs, and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// Install or converge the Cluster on its Nodes, removing Nodes that left it.
    Install,
    /// Reset every host of a Cluster deleted with `deletionPolicy: Reset`.
    Reset,
    /// Upgrade Kubernetes, etcd or containerd node by node after a version change.
    Upgrade,
    /// Read, renew or rotate the certificates on the hosts.
    Certs,
}

impl OperationKind {
    /// The name in status, Events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Reset => "reset",
            Self::Upgrade => "upgrade",
            Self::Certs => "certs",
        }
    }
}

/// A status condition, shaped like Kubernetes' `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: Ready, Progressing or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason for the last transition.
    #[serde(default)]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Observed state of a Node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Where the host is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NodePhase>,
    /// The step running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Why the last step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// SSH host key fingerprint (`SHA256:...`), pinned on first contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Facts gathered from the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<NodeFacts>,
    /// Versions of what is installed, as the host's own binaries report them after the
    /// last operation that finished on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<NodeVersions>,
    /// Whether the host should be part of its Cluster: `Present` while the Node exists,
    /// `Absent` once it is being deleted and the host is removed. Printed next to `phase`,
    /// the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<String>,
    /// The Node's `spec.roles` as one comma-separated string in their order, e.g.
    /// `control-plane,etcd`, for kubectl's `Roles` column (a printer column cannot join a
    /// list). The operator writes it with every Node status it writes, and where it is
    /// missing or stale when a reconcile runs no operation; unset while the Node has no roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// Journal id of the last operation that touched this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<i64>,
    /// When `phase` last changed, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// How long each playbook phase of the last operation took on this host, in run order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phase_times: Vec<PhaseTiming>,
}

impl NodeStatus {
    /// `desiredState` of a host that should be in its Cluster.
    pub const PRESENT: &str = "Present";
    /// `desiredState` of a host that is being removed from its Cluster.
    pub const ABSENT: &str = "Absent";
}

/// When one playbook phase ran on a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTiming {
    /// Playbook phase, e.g. `container-runtime`.
    pub phase: String,
    /// Start time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// End time, RFC 3339; unset while the phase runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Wall-clock duration in milliseconds; unset while the phase runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// Where a Node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NodePhase {
    /// Accepted, not contacted yet.
    Pending,
    /// Preflight checks run.
    Preflight,
    /// Packages and configuration are installed.
    Installing,
    /// Joining the cluster.
    Joining,
    /// Part of the cluster and healthy.
    Ready,
    /// Left its Cluster: its pods are being evicted and its Kubernetes Node deleted, before
    /// its host is reset (then `Removing`).
    Draining,
    /// The last operation failed on this host.
    Failed,
    /// Being removed from the cluster.
    Removing,
    /// An upgrade is rolling over this host (`currentStep` names the step and part); back
    /// to `Ready` when its roll finished.
    Upgrading,
}

/// Facts gathered from a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Distribution and release, e.g. `debian 12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Kernel release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU architecture as detected on the host (the `Arch` column); `spec.arch` is the
    /// declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Logical CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[serde(rename = "memoryMiB", default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// GPUs by model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuFacts>,
    /// What GPU detection found besides the models: driver, CUDA, MIG, NVSwitches and
    /// fabric, the modules that claim the GPUs, Secure Boot, kernel headers, IOMMU and KVM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::status_gpu::NodeGpuStatus>,
}

/// GPUs of one model on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuFacts {
    /// Product name from the PCI device id, e.g. `H100 SXM5 80GB`, where kubegrid knows the
    /// id; otherwise the ids, e.g. `NVIDIA 10de:2302`.
    pub model: String,
    /// How many.
    pub count: u32,
}

/// Versions of what is installed on a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeVersions {
    /// kubelet version, from `kubelet --version` (e.g. `v1.31.4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<String>,
    /// containerd version, from `containerd --version` (e.g. `v1.7.24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_fields_are_camel_case_and_empty_ones_are_left_out() {
        assert_eq!(
            serde_json::to_value(NodeStatus::default()).unwrap(),
            serde_json::json!({})
        );
        let status = NodeStatus {
            desired_state: Some(NodeStatus::ABSENT.to_string()),
            operation: Some(7),
            last_transition_time: Some("2025-01-02T03:04:05Z".into()),
            phase_times: vec![PhaseTiming {
                phase: "preflight".into(),
                started_at: Some("2025-01-02T03:04:00Z".into()),
                finished_at: None,
                duration_ms: None,
            }],
            ..NodeStatus::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "desiredState": "Absent",
                "operation": 7,
                "lastTransitionTime": "2025-01-02T03:04:05Z",
                "phaseTimes": [{"phase": "preflight", "startedAt": "2025-01-02T03:04:00Z"}],
            })
        );
        assert_eq!(serde_json::from_value::<NodeStatus>(json).unwrap(), status);
    }

    #[test]
    fn operation_kinds_are_a_closed_set_of_lowercase_names() {
        for (kind, name) in [
            (OperationKind::Install, "install"),
            (OperationKind::Reset, "reset"),
            (OperationKind::Upgrade, "upgrade"),
            (OperationKind::Certs, "certs"),
        ] {
            let op = OperationStatus {
                id: 3,
                kind,
                started_at: Some("2025-01-02T03:04:05Z".into()),
            };
            let json = serde_json::to_value(&op).unwrap();
            assert_eq!(
                json,
                serde_json::json!({"id": 3, "kind": name, "startedAt": "2025-01-02T03:04:05Z"})
            );
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::from_value::<OperationStatus>(json).unwrap(), op);
        }
        let other = serde_json::json!({"id": 1, "kind": "migrate"});
        assert!(serde_json::from_value::<OperationStatus>(other).is_err());
    }

    #[test]
    fn node_versions_round_trip() {
        let status = NodeStatus {
            phase: Some(NodePhase::Draining),
            versions: Some(NodeVersions {
                kubelet: Some("v1.31.4".into()),
                containerd: Some("v1.7.24".into()),
            }),
            ..NodeStatus::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "phase": "Draining",
                "versions": {"kubelet": "v1.31.4", "containerd": "v1.7.24"},
            })
        );
        assert_eq!(serde_json::from_value::<NodeStatus>(json).unwrap(), status);
    }

    #[test]
    fn cluster_status_carries_a_message() {
        let status = ClusterStatus {
            message: Some("host gpu-1 failed in phase kubelet".into()),
            ..ClusterStatus::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"message": "host gpu-1 failed in phase kubelet"})
        );
    }
}
