//! What an upgrade reports: the plan as made before any change, then each step that ran, and
//! why the roll stopped when it did not finish.

use std::collections::BTreeMap;

use serde::Serialize;

/// An upgrade's part of the operation report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeReport {
    /// The plan made from the live state before any change.
    pub plan: kubegrid_upgrade::Plan,
    /// Blockers the engine found besides the planner's (the Kubernetes API unreachable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<kubegrid_upgrade::Blocker>,
    /// The cluster's earlier upgrade that did not finish, and the steps the journal records
    /// it finished: this run resumes after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<super::Resumed>,
    /// The steps that ran, in order; a plan runs none.
    pub steps: Vec<StepResult>,
    /// `spec.upgrade.paused` stopped the roll before the next step.
    pub paused: bool,
    /// Why the roll stopped before its end (a failed step, a Node out of skew).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Nodes uncordoned because an earlier upgrade left them cordoned and they are at their
    /// target now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncordoned: Vec<String>,
}

impl UpgradeReport {
    /// No blocker of the planner's or the engine's.
    pub fn can_run(&self) -> bool {
        self.plan.can_run() && self.blockers.is_empty()
    }

    /// Every blocker, the engine's first.
    pub fn all_blockers(&self) -> impl Iterator<Item = &kubegrid_upgrade::Blocker> {
        self.blockers.iter().chain(&self.plan.blockers)
    }
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// The step's id (`Step::id`).
    pub id: String,
    /// The step.
    pub step: kubegrid_upgrade::Step,
    /// It finished on every Node it names.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time.
    pub duration_ms: u64,
    /// Wall time of each part (`drain`, `kubeadm-node`, `node-kubelet`, `ready`, ...), in run
    /// order, per Node.
    pub parts: Vec<StepPart>,
    /// Where each Node of the step was left when it failed: `uncordoned` (its drain failed
    /// and it was not changed), `cordoned` (it failed after its drain; left cordoned).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub left: BTreeMap<String, String>,
}

/// One part of a step on one Node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPart {
    /// Node name.
    pub node: String,
    /// `drain`, a playbook phase, `ready` or `uncordon`.
    pub part: String,
    /// Wall time.
    pub duration_ms: u64,
    /// It succeeded.
    pub ok: bool,
}
