//! An operation end to end: connect and gather facts, preflight, compile, then the
//! playbook's phases as barriers, each fanned out over the hosts still standing.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use kubegrid_journal::{
    FinalStatus, HostOutcome, Journal, NewOperation, OperationId, OperationKind,
};
use kubegrid_plan::{Bundle, ClusterContext, Playbook};
use serde::Serialize;

use crate::{
    agent::Agents,
    error::Error,
    phases::{self, Phase},
    preflight::Finding,
    progress::{Observer, Progress},
    session::{HostSession, TaskReport},
    ssh::{SshOptions, SshTarget},
};

/// Apply changes, or only report what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Change hosts.
    Apply,
    /// Dry run: the agent runs every task in check mode.
    Plan,
}

/// One host to operate on.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// How to reach it.
    pub target: SshTarget,
    /// Its roles ("control-plane", "etcd", "worker").
    pub roles: Vec<String>,
    /// spec.arch, when the Node declares one.
    pub declared_arch: Option<String>,
}

/// Knobs for one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts worked on at once within a phase.
    pub parallel: usize,
    /// Preflight checks to skip, knowingly.
    pub skip_checks: Vec<String>,
    /// SSH behaviour.
    pub ssh: SshOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallel: 64,
            skip_checks: Vec::new(),
            ssh: SshOptions::default(),
        }
    }
}

/// Everything an operation needs.
pub struct Request {
    /// Apply or plan.
    pub mode: Mode,
    /// Cluster name (journal and host-key scope).
    pub cluster: String,
    /// sha256 of the spec file, recorded with the operation.
    pub spec_digest: String,
    /// Template and predicate inputs.
    pub context: ClusterContext,
    /// The hosts.
    pub hosts: Vec<HostSpec>,
    /// The verified offline bundle.
    pub bundle: Arc<Bundle>,
    /// The playbook to run.
    pub playbook: Arc<Playbook>,
    /// Agent binaries by architecture.
    pub agents: Arc<Agents>,
    /// Knobs.
    pub options: Options,
}

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
    /// A host could not be reached, or refused (host key); nothing was changed.
    Unreachable,
    /// Preflight failed; nothing was changed.
    PreflightFailed,
    /// Some hosts failed during the phases; the others finished.
    HostsFailed,
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
}

impl Report {
    /// Tasks changed over all hosts.
    pub fn changed(&self) -> usize {
        self.hosts.iter().map(|h| h.changed).sum()
    }
}

/// Mutable state shared by the phases of one run.
pub struct Run {
    /// The request.
    pub req: Request,
    /// Journal operation id.
    pub op: OperationId,
    /// Journal.
    pub journal: Journal,
    /// Progress sink.
    pub observer: Arc<dyn Observer>,
    /// Connected sessions by host index; None once a host failed or before it connected.
    pub sessions: Vec<Option<HostSession>>,
    /// Facts by host index.
    pub facts: Vec<Option<kubegrid_agent::facts::Facts>>,
    /// Clock skew by host index (see [`crate::preflight::Subject::clock_offset_ms`]).
    pub clock_offsets: Vec<i64>,
    /// Per-host reports, by host index.
    pub reports: Vec<HostReport>,
    /// Preflight findings.
    pub findings: Vec<Finding>,
}

impl Run {
    /// Marks a host failed in a phase; it takes no further part.
    pub async fn fail_host(&mut self, i: usize, phase: &str, error: String) {
        self.sessions[i] = None;
        let r = &mut self.reports[i];
        r.ok = false;
        r.failed_phase = Some(phase.to_string());
        r.error = Some(error.clone());
        self.observer.event(&Progress::HostDone {
            host: r.name.clone(),
            phase: phase.to_string(),
            ok: false,
            changed: 0,
            error: Some(error.clone()),
        });
        let rec = self
            .journal
            .host_result(
                self.op,
                &r.name,
                phase,
                HostOutcome {
                    ok: false,
                    error: Some(error),
                },
            )
            .await;
        if let Err(e) = rec {
            tracing::warn!("journal: {e}");
        }
    }

    /// Adds finished tasks to a host's report.
    pub fn add_tasks(&mut self, i: usize, phase: &str, tasks: &[TaskReport]) {
        let r = &mut self.reports[i];
        for t in tasks {
            match t.status {
                kubegrid_agent::protocol::TaskStatus::Changed => r.changed += 1,
                kubegrid_agent::protocol::TaskStatus::Unchanged => r.unchanged += 1,
                kubegrid_agent::protocol::TaskStatus::Failed => {}
            }
            r.tasks.push(PhaseTask {
                phase: phase.to_string(),
                task: t.name.clone(),
                status: crate::progress::status_name(t.status).to_string(),
                duration_ms: t.duration_ms,
                message: t.message.clone(),
            });
        }
    }

    /// Notes the round trips a host's session made in `phase`.
    pub fn count_round_trips(&mut self, i: usize, phase: &str) {
        if let Some(s) = self.sessions[i].as_mut() {
            let n = s.take_round_trips();
            *self.reports[i]
                .round_trips
                .entry(phase.to_string())
                .or_default() += n;
        }
    }

    /// Indexes of hosts still standing.
    pub fn live(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.sessions[i].is_some())
            .collect()
    }
}

/// Runs an operation and journals it. Errors are for failures of the engine itself (journal,
/// bundle); host failures are in the report.
pub async fn execute(
    req: Request,
    journal: Journal,
    observer: Arc<dyn Observer>,
) -> Result<Report, Error> {
    let started = Instant::now();
    journal.recover_interrupted().await?;
    let op = journal
        .begin(NewOperation {
            kind: match req.mode {
                Mode::Apply => OperationKind::Apply,
                Mode::Plan => OperationKind::Plan,
            },
            cluster: req.cluster.clone(),
            spec_digest: req.spec_digest.clone(),
            hosts: req.hosts.iter().map(|h| h.target.host.clone()).collect(),
        })
        .await?;
    let n = req.hosts.len();
    let reports = req
        .hosts
        .iter()
        .map(|h| HostReport {
            name: h.target.host.clone(),
            ok: true,
            changed: 0,
            unchanged: 0,
            failed_phase: None,
            error: None,
            tasks: Vec::new(),
            round_trips: BTreeMap::new(),
        })
        .collect();
    let mut run = Run {
        req,
        op,
        journal,
        observer,
        sessions: (0..n).map(|_| None).collect(),
        facts: vec![None; n],
        clock_offsets: vec![0; n],
        reports,
        findings: Vec::new(),
    };
    let outcome = drive(&mut run).await;
    for s in run.sessions.iter().flatten() {
        s.connection().close().await;
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            run.journal
                .finish(op, FinalStatus::Failed, Some(e.to_string()))
                .await?;
            return Err(e);
        }
    };
    let failed: Vec<String> = run
        .reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: {}", r.name, r.error.clone().unwrap_or_default()))
        .collect();
    let (status, summary) = match outcome {
        Outcome::Succeeded => (FinalStatus::Succeeded, None),
        Outcome::PreflightFailed => (
            FinalStatus::Failed,
            Some(format!(
                "preflight failed: {} finding(s)",
                run.findings.len()
            )),
        ),
        _ => (FinalStatus::Failed, Some(failed.join("; "))),
    };
    run.journal.finish(op, status, summary).await?;
    Ok(Report {
        operation: op.0,
        mode: run.req.mode,
        cluster: run.req.cluster.clone(),
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        preflight: run.findings,
        hosts: run.reports,
    })
}

async fn drive(run: &mut Run) -> Result<Outcome, Error> {
    phases::Facts.run(run).await?;
    if run.reports.iter().any(|r| !r.ok) {
        return Ok(Outcome::Unreachable);
    }
    phases::Preflight.run(run).await?;
    if !run.findings.is_empty() {
        return Ok(Outcome::PreflightFailed);
    }
    let plans = phases::compile_all(run)?;
    for phase in run.req.playbook.phases.clone() {
        let per_host: BTreeMap<usize, _> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.iter()
                    .find(|pp| pp.name == phase.name)
                    .map(|pp| (i, pp.clone()))
            })
            .collect();
        phases::PlaybookPhase {
            name: phase.name.clone(),
            batch: phase.batch,
            plans: per_host,
        }
        .run(run)
        .await?;
    }
    Ok(if run.reports.iter().all(|r| r.ok) {
        Outcome::Succeeded
    } else {
        Outcome::HostsFailed
    })
}
