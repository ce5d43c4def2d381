//! What an operation reports: per host, per phase and for the cluster.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Mode;
use crate::{kubernetes::ClusterChecks, preflight::Finding};

/// Where a host ended up.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReport {
    /// Node name.
    pub name: String,
    /// It finished every phase.
    pub ok: bool,
    /// Tasks that changed (would change, in plan mode).
    pub changed: usize,
    /// Tasks that were already right.
    pub unchanged: usize,
    /// Phase it failed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every task, in order, with its phase.
    pub tasks: Vec<PhaseTask>,
    /// SSH round trips per phase (the engine's budget is two).
    pub round_trips: BTreeMap<String, usize>,
    /// What the host told about itself, once it connected; the operator copies it into the
    /// Node's status. Not in the CLI's JSON report, which predates it.
    #[serde(skip)]
    pub facts: Option<kubegrid_agent::facts::Facts>,
    /// What kubelet and containerd report as their version after the playbook, by
    /// component (`kubelet`, `containerd`); empty where they are not installed or the run
    /// stopped before (see `phases::versions`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// Runtime handlers the spec lists that this host's containerd config leaves out, each
    /// saying why (no VM for kata, not a GPU Node for nvidia, not Debian for gvisor/crun).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_runtimes: Vec<String>,
    /// The kubegrid-agent this run used on the host, once the host was probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentUsed>,
    /// The host's OS as its agent read it from os-release, once facts were gathered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<HostOs>,
    /// The controlled reboot a `reboot:` phase made (or found done), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot: Option<RebootReport>,
    /// The host refused a connection after the facts phase (a changed host key when it came
    /// back from a reboot): the operation ends as unreachable, like a refusal at the start.
    #[serde(skip)]
    pub refused: bool,
}

/// A controlled reboot of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebootReport {
    /// The `reboot:` phase.
    pub phase: String,
    /// The boot id when the reboot was requested.
    pub old_boot_id: String,
    /// The boot id the host answered with afterwards.
    pub new_boot_id: String,
    /// From the request until the host answered with the new boot id; absent when the
    /// reboot happened while no kubegrid was waiting (see `requestedBy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The operation that requested the reboot: this one, or an earlier one that was
    /// interrupted while it waited (then this operation only found it done).
    pub requested_by: i64,
}

/// A host's OS from its os-release file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostOs {
    /// `ID` ("debian", "rhel").
    pub id: String,
    /// `VERSION_ID` ("11", "9.4").
    pub version_id: String,
}

/// Which kubegrid-agent a run used on a host, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsed {
    /// The host's architecture.
    pub arch: String,
    /// The agent's sha256; hosts keep it as `/var/lib/kubegrid/agent/kubegrid-agent-<sha256>`.
    pub sha256: String,
    /// Where it was taken from (`bundle agent/kubegrid-agent-amd64`, or a local path).
    pub source: String,
    /// Whether the host already had it when the run began; otherwise the run pushed it.
    pub already_on_host: bool,
}

/// A task report tagged with its phase.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTask {
    /// Phase name.
    pub phase: String,
    /// Task name.
    pub task: String,
    /// "changed", "unchanged" or "failed".
    pub status: String,
    /// Host-side duration.
    pub duration_ms: u64,
    /// What changed or why it failed.
    pub message: String,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Every host finished every phase.
    Succeeded,
    /// A host could not be reached, or refused (host key); nothing was changed, unless a
    /// host refused when it came back from a controlled reboot.
    Unreachable,
    /// Preflight failed; nothing was changed.
    PreflightFailed,
    /// Some hosts failed during the phases; the others finished.
    HostsFailed,
    /// Every host finished, but a cluster check or a Node removal failed.
    ClusterFailed,
}

/// The result of an operation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Journal id.
    pub operation: i64,
    /// Apply or plan.
    pub mode: Mode,
    /// Cluster name.
    pub cluster: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time.
    pub duration_ms: u64,
    /// Preflight findings (when preflight failed).
    pub preflight: Vec<Finding>,
    /// Per host.
    pub hosts: Vec<HostReport>,
    /// The kubeconfig, cluster checks and removals.
    pub kubernetes: ClusterChecks,
    /// Wall time per phase.
    pub phases: Vec<PhaseTime>,
    /// An upgrade's plan and the steps that ran (`kubegrid upgrade`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<crate::upgrade::UpgradeReport>,
    /// What a certificates operation found and did (`kubegrid certs`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certs: Option<crate::certs::CertsReport>,
    /// What peer-to-peer distribution did (`--distribution p2p`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::distribute::swarm::SwarmReport>,
}

impl Report {
    /// Tasks changed over all hosts.
    pub fn changed(&self) -> usize {
        self.hosts.iter().map(|h| h.changed).sum()
    }
}

/// How long one phase took on the engine's clock, from its first SSH exec to its last result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTime {
    /// Phase name ("facts", a playbook phase, or "cluster" for the kubeconfig, removals and
    /// API checks).
    pub phase: String,
    /// Wall time.
    pub wall_ms: u64,
}
