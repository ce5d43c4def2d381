//! An operation end to end: connect and gather facts, preflight, compile, then the
//! playbook's phases as barriers, each fanned out over the hosts still standing.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use kubegrid_journal::{
    FinalStatus, HostOutcome, Journal, NewOperation, OperationId, OperationKind,
};
use kubegrid_plan::{Bundle, ClusterContext, HostContext, PkiFile, Playbook, TaintContext};
use serde::Serialize;

use crate::{
    agent::Agents,
    error::Error,
    kubernetes::{self, ClusterChecks},
    phases::{self, Phase},
    preflight::Finding,
    progress::{Observer, Progress},
    session::{HostSession, TaskReport},
    ssh::{SshOptions, SshTarget},
};

mod report;
mod resume;

pub use report::{
    AgentUsed, HostOs, HostReport, Outcome, PhaseTask, PhaseTime, RebootReport, Report,
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
    /// Kubernetes labels for its Node object.
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints for its Node object.
    pub taints: Vec<TaintContext>,
    /// Whether it is a GPU Node as the spec says (`none` when the Cluster has no GPU stack).
    pub gpu: kubegrid_api::NodeGpu,
}

impl HostSpec {
    /// Whether the host is a GPU Node: its spec says `nvidia`, or `auto` and the facts found
    /// an NVIDIA GPU.
    pub fn gpu_node(&self, facts: &kubegrid_agent::facts::Facts) -> bool {
        match self.gpu {
            kubegrid_api::NodeGpu::Nvidia => true,
            kubegrid_api::NodeGpu::Auto => facts.gpu.count() > 0,
            kubegrid_api::NodeGpu::None => false,
        }
    }

    /// Whether the spec says it has a GPU, so that finding none fails preflight.
    pub fn gpu_required(&self) -> bool {
        self.gpu == kubegrid_api::NodeGpu::Nvidia
    }

    /// The compiler's view of the host, given its facts and the certificates issued for it.
    pub fn context(
        &self,
        facts: kubegrid_agent::facts::Facts,
        pki: BTreeMap<String, Vec<PkiFile>>,
    ) -> HostContext {
        HostContext {
            gpu: self.gpu_node(&facts),
            name: self.target.host.clone(),
            roles: self.roles.clone(),
            facts,
            address: self.target.address.clone(),
            labels: self.labels.clone(),
            taints: self.taints.clone(),
            pki,
        }
    }

    /// Whether the host has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
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
    /// Where to write the admin kubeconfig (mode 0600); it is journaled either way.
    pub kubeconfig_out: Option<std::path::PathBuf>,
    /// Run the cluster checks through the Kubernetes API after the playbook.
    pub cluster_checks: bool,
    /// Images and deadlines of the cluster checks.
    pub check_options: kubegrid_cluster::CheckOptions,
    /// Remove Nodes that left the spec even when their drain fails.
    pub force_remove: bool,
    /// How Nodes that left the spec are drained.
    pub drain: kubegrid_cluster::DrainOptions,
    /// Stop after this playbook phase (e.g. `container-runtime` prepares hosts only); the
    /// cluster-level steps run only when the whole playbook ran.
    pub until: Option<String>,
    /// How bundle blobs reach hosts: the engine's HTTP blob server, SSH push, or a swarm.
    pub distribution: crate::distribute::Distribution,
    /// The swarm's port and rate limit, with [`crate::distribute::Distribution::P2p`].
    pub p2p: crate::distribute::swarm::P2pOptions,
    /// An interrupted operation of the same spec to resume: each playbook phase that it
    /// finished on a host is not run there again (see `resume`).
    pub resume_from: Option<OperationId>,
    /// SSH passwords of members that left the spec, by Node name, for removing them. A
    /// password given as a value (the operator's, from a Secret) is never journaled with the
    /// member, so a caller that still knows it hands it in here.
    pub member_passwords: std::collections::BTreeMap<String, crate::ssh::Password>,
    /// How an upgrade rolls (the upgrade playbook only).
    pub upgrade: crate::upgrade::UpgradeOptions,
    /// Accept an etcd membership change that leaves an even member count (`--force`, or the
    /// Cluster annotation `kubegrid.io/force-membership`); never one that loses quorum.
    pub force_membership: bool,
    /// What a certificates operation does (the certs playbook only).
    pub certs: crate::certs::CertsOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallel: 64,
            skip_checks: Vec::new(),
            ssh: SshOptions::default(),
            kubeconfig_out: None,
            cluster_checks: true,
            check_options: kubegrid_cluster::CheckOptions::default(),
            force_remove: false,
            drain: kubegrid_cluster::DrainOptions::default(),
            until: None,
            distribution: crate::distribute::Distribution::default(),
            p2p: crate::distribute::swarm::P2pOptions::default(),
            resume_from: None,
            member_passwords: std::collections::BTreeMap::new(),
            upgrade: crate::upgrade::UpgradeOptions::default(),
            force_membership: false,
            certs: crate::certs::CertsOptions::default(),
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
    /// Certificate sets issued per host index.
    pub pki: Vec<BTreeMap<String, Vec<PkiFile>>>,
    /// The admin client certificate, once the PKI is prepared.
    pub admin_client: Option<kubegrid_pki::IssuedCert>,
    /// The Kubernetes CA certificate, once the PKI is prepared.
    pub kubernetes_ca_pem: Option<String>,
    /// How to reach the bundle registry, once its certificates are prepared; None without
    /// `spec.bundle.registry`.
    pub registry: Option<crate::registry::BundleRegistryEndpoint>,
    /// What the cluster-level steps found.
    pub kubernetes: ClusterChecks,
    /// Wall time of each phase, in order.
    pub phase_times: Vec<PhaseTime>,
    /// The blob server, once a host needed it; it stops when the run is dropped.
    pub distributor: crate::distribute::Distributor,
    /// An upgrade's plan and steps, once planned.
    pub upgrade: Option<crate::upgrade::UpgradeReport>,
    /// A certificates operation's findings, once read.
    pub certs: Option<crate::certs::CertsReport>,
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
    // Refused before the operation is journaled or any host is contacted.
    if req.playbook.name == "install" && req.context.kubernetes.is_some() {
        crate::membership::check_journal(
            &journal,
            &req.cluster,
            &req.hosts,
            req.options.force_membership,
        )
        .await?;
    }
    let op = journal
        .begin(NewOperation {
            kind: match req.mode {
                _ if req.playbook.name == crate::certs::PLAYBOOK => OperationKind::Certs,
                Mode::Apply if req.playbook.name == "reset" => OperationKind::Reset,
                Mode::Apply if req.playbook.name == crate::upgrade::PLAYBOOK => {
                    OperationKind::Upgrade
                }
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
            facts: None,
            versions: BTreeMap::new(),
            skipped_runtimes: Vec::new(),
            agent: None,
            os: None,
            reboot: None,
            refused: false,
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
        pki: vec![BTreeMap::new(); n],
        admin_client: None,
        kubernetes_ca_pem: None,
        registry: None,
        kubernetes: ClusterChecks::default(),
        phase_times: Vec::new(),
        distributor: Default::default(),
        upgrade: None,
        certs: None,
    };
    let outcome = if run.req.playbook.name == crate::upgrade::PLAYBOOK {
        crate::upgrade::drive(&mut run).await
    } else if run.req.playbook.name == crate::certs::PLAYBOOK {
        crate::certs::drive(&mut run).await
    } else {
        drive(&mut run).await
    };
    for (report, facts) in run.reports.iter_mut().zip(&run.facts) {
        report.os = facts.as_ref().map(|f| report::HostOs {
            id: f.os_id.clone(),
            version_id: f.os_version.clone(),
        });
        report.facts.clone_from(facts);
    }
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
        Outcome::PreflightFailed if run.findings.is_empty() => {
            let (what, blockers): (&str, Vec<String>) = match &run.certs {
                Some(c) => (c.action.as_str(), c.blockers.clone()),
                None => (
                    "upgrade",
                    run.upgrade
                        .iter()
                        .flat_map(|u| u.all_blockers().map(|b| b.message.clone()))
                        .collect(),
                ),
            };
            (
                FinalStatus::Failed,
                Some(format!("{what} blocked: {}", blockers.join("; "))),
            )
        }
        Outcome::PreflightFailed => (
            FinalStatus::Failed,
            Some(format!(
                "preflight failed: {} finding(s)",
                run.findings.len()
            )),
        ),
        Outcome::ClusterFailed => {
            let k = &run.kubernetes;
            let problems: Vec<String> = k
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("check {}: {}", c.name, c.detail))
                .chain(
                    k.removed
                        .iter()
                        .filter(|r| !r.ok)
                        .map(|r| format!("remove {}: {}", r.name, r.detail)),
                )
                .chain(k.errors.iter().cloned())
                .collect();
            (FinalStatus::Failed, Some(problems.join("; ")))
        }
        _ => {
            let stopped = run.upgrade.as_ref().and_then(|u| u.stopped.clone());
            let mut why = failed;
            why.extend(stopped);
            (FinalStatus::Failed, Some(why.join("; ")))
        }
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
        kubernetes: run.kubernetes,
        phases: run.phase_times,
        upgrade: run.upgrade,
        certs: run.certs,
        swarm: run.distributor.swarm.report(),
    })
}

async fn drive(run: &mut Run) -> Result<Outcome, Error> {
    let started = Instant::now();
    phases::Facts.run(run).await?;
    run.phase_times.push(PhaseTime {
        phase: "facts".into(),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    if run.reports.iter().any(|r| !r.ok) {
        return Ok(Outcome::Unreachable);
    }
    phases::Preflight.run(run).await?;
    if !run.findings.is_empty() {
        return Ok(Outcome::PreflightFailed);
    }
    kubernetes::prepare(run).await?;
    // Members leaving etcd go before any joins, so a replacement never joins a cluster that
    // still counts a dead member.
    run.kubernetes.removed = kubernetes::remove_members(run).await?;
    crate::registry::prepare(run).await?;
    let plans = phases::compile_all(run)?;
    phases::runtimes::note_skipped(run);
    let resume = resume::Resume::load(run).await?;
    for phase in run.req.playbook.phases.clone() {
        let mut per_host: BTreeMap<usize, _> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.iter()
                    .find(|pp| pp.name == phase.name)
                    .map(|pp| (i, pp.clone()))
            })
            .collect();
        let started = Instant::now();
        // Joining needs the cluster that init makes; without it each join would only wait
        // out kubeadm's discovery timeout.
        if let (kubegrid_plan::HostSelector::Joining(_), Some(why)) =
            (&phase.hosts, kubernetes::init_failed(run))
        {
            for &i in per_host.keys() {
                if run.sessions[i].is_some() {
                    run.fail_host(i, &phase.name, why.clone()).await;
                }
            }
            continue;
        }
        if phase.name == crate::membership::join::ETCD_PHASE {
            for i in crate::membership::join::join(run).await? {
                per_host.remove(&i);
            }
        }
        for (i, name) in run.reports.iter().map(|r| r.name.clone()).enumerate() {
            if per_host.contains_key(&i) && resume.finished(&name, &phase.name) {
                per_host.remove(&i);
                resume.carry(run, &name, &phase.name).await;
            }
        }
        if phase.reboot.is_some() {
            phases::RebootPhase {
                name: phase.name.clone(),
                batch: phase.batch,
                hosts: per_host.into_iter().map(|(i, p)| (i, p.reboot)).collect(),
            }
            .run(run)
            .await?;
        } else {
            phases::PlaybookPhase {
                name: phase.name.clone(),
                batch: phase.batch,
                plans: per_host,
            }
            .run(run)
            .await?;
        }
        run.phase_times.push(PhaseTime {
            phase: phase.name.clone(),
            wall_ms: started.elapsed().as_millis() as u64,
        });
        if phase.name == crate::images::AFTER_PHASE {
            crate::images::push(run).await;
        }
        if run.req.options.until.as_deref() == Some(phase.name.as_str()) {
            return Ok(host_outcome(run));
        }
    }
    phases::versions::read(run).await;
    let started = Instant::now();
    run.kubernetes = kubernetes::finish(run).await?;
    run.phase_times.push(PhaseTime {
        phase: "cluster".into(),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    Ok(match host_outcome(run) {
        Outcome::Succeeded if !run.kubernetes.ok() => Outcome::ClusterFailed,
        other => other,
    })
}

fn host_outcome(run: &Run) -> Outcome {
    if run.reports.iter().any(|r| r.refused) {
        Outcome::Unreachable
    } else if run.reports.iter().all(|r| r.ok) {
        Outcome::Succeeded
    } else {
        Outcome::HostsFailed
    }
}
