//! Upgrades: Kubernetes, external etcd and containerd moved node by node, as
//! `kubegrid upgrade plan|apply` and the operator run them.
//!
//! The planner (`kubegrid-upgrade`) decides the steps from the live state; this module reads
//! that state, refuses what the planner (or the engine: an unreachable Kubernetes API)
//! blocks before any host changes, and runs the steps one after another: each compiled from
//! `playbooks/upgrade.yaml` with that step's versions, with drains and uncordons through the
//! Kubernetes API between them. The roll stops at the first failed Node; a re-run plans again
//! from the live versions, so it resumes where the last one stopped and redoes nothing.

mod api;
mod guard;
mod journal;
mod report;
mod roll;
pub(crate) mod state;
mod steps;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

pub use guard::{check, check_journal, display, same};
pub use journal::{Resumed, STEP_PHASE_PREFIX};
pub use report::{StepPart, StepResult, UpgradeReport};
pub use roll::{CORDONED_BY, DRAIN_PHASE, READY_PHASE, UNCORDON_PHASE};
pub use state::PHASE as STATE_PHASE;

use crate::{
    error::Error,
    operation::{Mode, Outcome, PhaseTime, Run},
    phases::{self, Phase},
};

/// The playbook an upgrade runs.
pub const PLAYBOOK: &str = "upgrade";

/// How an upgrade rolls, besides what the spec says.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Worker Nodes drained and upgraded at once (`spec.upgrade.maxUnavailable`).
    pub max_unavailable: usize,
    /// Set (by the CLI watching the spec file, or the operator watching the Cluster) when
    /// `spec.upgrade.paused` is true: the roll stops before its next step.
    pub paused: Arc<AtomicBool>,
    /// `--force`: upgrade a Node whose drain failed (its remaining pods stay on it and
    /// restart with its kubelet) instead of stopping.
    pub force_drain: bool,
    /// How long a Node may take to be Ready again after its kubelet restarted.
    pub ready_timeout: Duration,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        UpgradeOptions {
            max_unavailable: 1,
            paused: Arc::new(AtomicBool::new(false)),
            force_drain: false,
            ready_timeout: Duration::from_secs(300),
        }
    }
}

/// Runs an upgrade operation (plan or apply) after its hosts are connected.
pub(crate) async fn drive(run: &mut Run) -> Result<Outcome, Error> {
    let started = Instant::now();
    phases::Facts.run(run).await?;
    run.phase_times.push(PhaseTime {
        phase: "facts".into(),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    let unreachable = run.reports.iter().any(|r| !r.ok);
    // Moving the containerd and etcd lines is what an upgrade is for.
    run.req
        .options
        .skip_checks
        .push(crate::preflight::VERSION_CHANGE.to_string());
    if !unreachable {
        phases::Preflight.run(run).await?;
        if !run.findings.is_empty() {
            return Ok(Outcome::PreflightFailed);
        }
    }
    crate::kubernetes::prepare(run).await?;
    let started = Instant::now();
    let versions = state::read_versions(run).await;
    let etcd = state::etcd_health(run).await;
    let kubeconfig = api::kubeconfig(run)?;
    let (client, api_state, api_blocker) = match api::read(&kubeconfig).await {
        Ok((client, state)) => (Some(client), Some(state), None),
        Err(why) => (None, None, Some(why)),
    };
    let cluster = state::cluster_state(run, &versions, &etcd, api_state.as_ref());
    let targets = steps::targets(run, &cluster)?;
    let available = steps::available(run);
    let policy = kubegrid_upgrade::Policy {
        max_unavailable: run.req.options.upgrade.max_unavailable.max(1),
    };
    let mut plan = kubegrid_upgrade::plan(&cluster, &targets, &available, &policy);
    if run.req.options.upgrade.force_drain {
        // `--force`: a budget that allows no disruption no longer refuses the upgrade; the
        // drain runs into its timeout and the Node is upgraded with those pods on it.
        let (forced, kept): (Vec<_>, Vec<_>) =
            plan.blockers.drain(..).partition(|b| b.rule == "pdb");
        plan.blockers = kept;
        plan.notes.extend(
            forced
                .into_iter()
                .map(|b| format!("--force: {}", b.message)),
        );
    }
    run.phase_times.push(PhaseTime {
        phase: state::PHASE.into(),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    let planned: Vec<String> = plan.steps.iter().map(kubegrid_upgrade::Step::id).collect();
    let resumed = journal::earlier(run, &planned).await?;
    let mut report = UpgradeReport {
        plan,
        blockers: Vec::new(),
        resumed,
        steps: Vec::new(),
        paused: false,
        stopped: None,
        uncordoned: Vec::new(),
    };
    if let Some(why) = api_blocker {
        report.blockers.push(kubegrid_upgrade::Blocker {
            node: None,
            rule: "kubernetes-api".into(),
            message: format!(
                "the Kubernetes API of cluster {} did not answer: {why}; an upgrade reads Node readiness and PodDisruptionBudgets and drains Nodes through it\n  hint: check that the control-plane endpoint answers (kubectl --kubeconfig ~/.kube/{}.conf get nodes)",
                run.req.cluster, run.req.cluster
            ),
        });
    }
    let outcome = if unreachable {
        Outcome::Unreachable
    } else if !report.can_run() {
        Outcome::PreflightFailed
    } else if run.req.mode == Mode::Plan {
        Outcome::Succeeded
    } else {
        let client = client.expect("the API answered, or a blocker stopped the upgrade");
        let outcome = steps::roll(run, &client, &mut report).await?;
        // What each host runs now, for the report and the operator's Node status.
        phases::versions::read(run).await;
        outcome
    };
    run.upgrade = Some(report);
    Ok(outcome)
}

/// The spec's Kubernetes settings, which every upgrade has.
fn kubernetes(run: &Run) -> Result<&kubegrid_plan::KubernetesContext, Error> {
    run.req
        .context
        .kubernetes
        .as_ref()
        .ok_or_else(|| Error::Protocol {
            host: run.req.cluster.clone(),
            message: "an upgrade needs the spec's Kubernetes settings".into(),
        })
}

/// Whether `spec.upgrade.paused` asks the roll to stop.
fn paused(run: &Run) -> bool {
    run.req.options.upgrade.paused.load(Ordering::SeqCst)
}
