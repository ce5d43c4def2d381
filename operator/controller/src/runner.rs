//! What the reconciler asks of the engine, behind a trait so that reconciler scenarios can run
//! without hosts. [`EngineRunner`] is the product's implementation: the same
//! `kubegrid_engine::operation::execute` that `kubegrid apply` calls.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use futures::future::BoxFuture;
use kubegrid_api::Manifest;
use kubegrid_engine::{
    agent::Agents,
    distribute::Distribution,
    operation::{self, Mode, Options, Outcome},
    progress::Observer,
    ssh::{Password, SshOptions},
};
use kubegrid_journal::{Journal, OperationId};
use kubegrid_plan::Playbook;

use crate::error::{Error, Result};

/// Which playbook an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Install or converge the cluster (`install`), removing Nodes that left it.
    Apply,
    /// Reset every host (`reset`), for a Cluster deleted with `deletionPolicy: Reset`.
    Reset,
    /// Upgrade Kubernetes, etcd or containerd node by node (`upgrade`), for an installed
    /// Cluster whose spec asks for other versions.
    Upgrade,
    /// Read, renew or rotate the certificates on the hosts (`certs`), for an installed
    /// Cluster: its periodic check, an automatic renewal, a requested CA rotation.
    Certs(CertsJob),
}

/// What a certificates operation does, as the operator runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertsJob {
    /// Read every certificate on every Node and compare it with the journal.
    Check {
        /// Certificates expiring within this many days are listed as expiring.
        warn_days: u32,
    },
    /// Re-sign every leaf kubegrid holds the CA of, one Node at a time.
    Renew,
    /// Replace one CA, every reader trusting both during the change.
    RotateCa(kubegrid_engine::certs::CaKind),
}

impl CertsJob {
    /// The engine's action for this job.
    pub fn action(self) -> kubegrid_engine::certs::CertsAction {
        use kubegrid_engine::certs::CertsAction;
        match self {
            Self::Check { warn_days } => CertsAction::Check { warn_days },
            Self::Renew => CertsAction::Renew { only: Vec::new() },
            Self::RotateCa(ca) => CertsAction::RotateCa { ca },
        }
    }
}

impl JobKind {
    /// The name used in status, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "install",
            Self::Reset => "reset",
            Self::Upgrade => kubegrid_engine::upgrade::PLAYBOOK,
            Self::Certs(CertsJob::Check { .. }) => "certs-check",
            Self::Certs(CertsJob::Renew) => "certs-renew",
            Self::Certs(CertsJob::RotateCa(_)) => "certs-rotate-ca",
        }
    }

    /// The built-in playbook the job runs.
    pub fn playbook(self) -> &'static str {
        match self {
            Self::Certs(_) => kubegrid_engine::certs::PLAYBOOK,
            other => other.as_str(),
        }
    }

    /// The operation kind status reports for this job.
    pub fn operation_kind(self) -> kubegrid_api::OperationKind {
        match self {
            Self::Apply => kubegrid_api::OperationKind::Install,
            Self::Reset => kubegrid_api::OperationKind::Reset,
            Self::Upgrade => kubegrid_api::OperationKind::Upgrade,
            Self::Certs(_) => kubegrid_api::OperationKind::Certs,
        }
    }
}

/// One operation to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// What to run.
    pub kind: JobKind,
    /// The journal's name for the cluster: `namespace/name`.
    pub cluster: String,
    /// The Cluster and its live Nodes.
    pub manifest: Manifest,
    /// sha256 of the spec the operation carries out, for the journal and for resuming.
    pub spec_digest: String,
    /// The bundle directory, canonical and inside the operator's bundle roots.
    pub bundle_dir: Option<PathBuf>,
    /// The SSH private key, written from the Cluster's Secret.
    pub ssh_key_file: Option<PathBuf>,
    /// The public key the bundle's signature is checked with.
    pub bundle_public_key: Option<PathBuf>,
    /// The CNI manifest from the ConfigMap that `spec.network.cniManifestRef` names.
    pub cni_manifest: Option<String>,
    /// SSH passwords from the Secrets that `ssh.passwordSecretRef` names, by Node name, for
    /// the live Nodes and those being removed (their `Debug` hides them).
    pub passwords: BTreeMap<String, Password>,
    /// An interrupted operation to resume.
    pub resume_from: Option<i64>,
    /// How an upgrade rolls; `None` for the other kinds.
    pub upgrade: Option<UpgradeJob>,
}

/// How an upgrade job rolls (`spec.upgrade`).
#[derive(Debug, Clone)]
pub struct UpgradeJob {
    /// Worker Nodes drained and upgraded at once.
    pub max_unavailable: usize,
    /// `spec.upgrade.paused` of the live Cluster, kept current while the job runs: the roll
    /// stops before its next step once it is set.
    pub paused: Arc<AtomicBool>,
    /// What it changes, on one line (`Kubernetes v1.31.4 → v1.32.4`), for status.
    pub change: String,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every host finished.
    Succeeded,
    /// Some hosts failed; see [`RunResult::hosts`].
    HostsFailed,
    /// Preflight found problems; nothing was changed. The findings.
    PreflightFailed(Vec<String>),
    /// Some hosts could not be reached; nothing was changed.
    Unreachable,
    /// The hosts finished but the checks through the cluster's API failed. Why.
    ClusterFailed(String),
}

/// One host's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOutcome {
    /// Node name.
    pub name: String,
    /// It finished every phase.
    pub ok: bool,
    /// The phase it failed in.
    pub failed_phase: Option<String>,
    /// Why.
    pub error: Option<String>,
    /// What the host told about itself, when it connected.
    pub facts: Option<kubegrid_api::NodeFacts>,
    /// What kubelet and containerd reported as their version after the playbook; None
    /// when neither was read (the run stopped before, or the host runs neither).
    pub versions: Option<kubegrid_api::NodeVersions>,
}

/// The status form of the versions the engine read on a host (by component).
pub fn node_versions(found: &BTreeMap<String, String>) -> Option<kubegrid_api::NodeVersions> {
    let versions = kubegrid_api::NodeVersions {
        kubelet: found.get("kubelet").cloned(),
        containerd: found.get("containerd").cloned(),
    };
    (versions != kubegrid_api::NodeVersions::default()).then_some(versions)
}

/// The status form of what a host told about itself.
pub fn node_facts(f: &kubegrid_agent::facts::Facts) -> kubegrid_api::NodeFacts {
    kubegrid_api::NodeFacts {
        os: Some(format!("{} {}", f.os_id, f.os_version).trim().to_string()),
        kernel: Some(f.kernel.clone()),
        arch: match f.arch.as_str() {
            "amd64" | "x86_64" => Some(kubegrid_api::Arch::Amd64),
            "arm64" | "aarch64" => Some(kubegrid_api::Arch::Arm64),
            _ => None,
        },
        cpus: u32::try_from(f.cpus).ok(),
        memory_mib: Some(f.memory_mib),
        gpus: gpus(&f.gpu),
        gpu: Some(gpu_status(&f.gpu)),
    }
}

/// NVIDIA GPUs by model, as the agent named them from their PCI device ids.
fn gpus(g: &kubegrid_agent::facts::GpuFacts) -> Vec<kubegrid_api::GpuFacts> {
    let mut by_model: BTreeMap<String, u32> = BTreeMap::new();
    for d in &g.devices {
        *by_model.entry(d.model.clone()).or_default() += 1;
    }
    by_model
        .into_iter()
        .map(|(model, count)| kubegrid_api::GpuFacts { model, count })
        .collect()
}

/// The status form of the GPU and virtualisation facts. Every Node gets one: KVM and the
/// IOMMU matter for Kata on Nodes without GPUs too.
fn gpu_status(g: &kubegrid_agent::facts::GpuFacts) -> kubegrid_api::NodeGpuStatus {
    use kubegrid_agent::facts::{Kvm, SecureBoot};
    use kubegrid_api::{KvmState, SecureBootState};
    let smi = g.smi.as_ref();
    let per_gpu = smi.map_or(&[][..], |s| &s.gpus[..]);
    kubegrid_api::NodeGpuStatus {
        driver_version: g.driver_version.clone(),
        cuda_version: smi
            .map(|s| s.cuda_version.clone())
            .filter(|v| !v.is_empty()),
        mig_mode: kubegrid_api::mig_summary(per_gpu.iter().map(|x| x.mig_mode.as_deref())),
        nvswitches: u32::try_from(g.nvswitches.len()).unwrap_or(u32::MAX),
        fabric_state: kubegrid_api::fabric_summary(
            per_gpu.iter().map(|x| x.fabric_state.as_deref()),
        ),
        smi_error: g.smi_error.clone(),
        nvidia_loaded: g.modules.nvidia,
        nouveau_loaded: g.modules.nouveau,
        nova_core_loaded: g.modules.nova_core,
        secure_boot: match g.secure_boot {
            SecureBoot::Enabled => SecureBootState::Enabled,
            SecureBoot::Disabled => SecureBootState::Disabled,
            SecureBoot::Unknown => SecureBootState::Unknown,
        },
        kernel_headers: g.kernel_headers,
        iommu_groups: g.iommu_groups,
        kvm: match &g.kvm {
            Kvm::Usable => KvmState::Usable,
            Kvm::NoDevice => KvmState::NoDevice,
            Kvm::Unknown => KvmState::Unknown,
            Kvm::Unusable(_) => KvmState::Unusable,
        },
        kvm_message: match &g.kvm {
            Kvm::Unusable(why) => Some(why.clone()),
            _ => None,
        },
    }
}

/// What an operation left behind.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Journal id.
    pub operation: i64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Per host.
    pub hosts: Vec<HostOutcome>,
    /// Nodes that left the spec and were removed (drained, deleted, reset).
    pub removed: Vec<String>,
    /// The admin kubeconfig, once the cluster exists.
    pub kubeconfig: Option<String>,
    /// Pinned host keys by Node: `algorithm fingerprint`.
    pub host_keys: BTreeMap<String, String>,
    /// What an upgrade did; `None` for the other kinds.
    pub upgrade: Option<UpgradeSummary>,
    /// What a certificates operation found and did; `None` for the other kinds.
    pub certs: Option<kubegrid_engine::certs::CertsReport>,
    /// `status.serving` from the operation's checks; None without `spec.serving` or when it
    /// was not reached.
    pub serving: Option<kubegrid_api::ServingStatus>,
}

/// What an upgrade operation did, as status reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeSummary {
    /// What kept it from starting (nothing was changed), one line each, the Node first.
    pub blockers: Vec<String>,
    /// The planned steps' ids, in order.
    pub planned: Vec<String>,
    /// The ids of the steps that finished.
    pub done: Vec<String>,
    /// `spec.upgrade.paused` stopped it before its next step.
    pub paused: bool,
    /// Why it stopped before its end (a failed step, a Node out of skew or silent).
    pub stopped: Option<String>,
    /// Where each Node of a failed step was left (`uncordoned, not upgraded`, `cordoned:
    /// ...`), by Node.
    pub left: BTreeMap<String, String>,
}

impl UpgradeSummary {
    /// The summary of an engine upgrade report.
    pub fn of(report: &kubegrid_engine::upgrade::UpgradeReport) -> Self {
        let blockers = if report.can_run() {
            Vec::new()
        } else {
            report
                .all_blockers()
                .map(|b| match &b.node {
                    Some(node) => format!("{node}: {}", b.message),
                    None => b.message.clone(),
                })
                .collect()
        };
        Self {
            blockers,
            planned: report.plan.steps.iter().map(|s| s.id()).collect(),
            done: report
                .steps
                .iter()
                .filter(|s| s.ok)
                .map(|s| s.id.clone())
                .collect(),
            paused: report.paused,
            stopped: report.stopped.clone(),
            left: report.steps.iter().flat_map(|s| s.left.clone()).collect(),
        }
    }
}

/// Runs operations. Implementations journal what they do in the journal they are given.
pub trait Runner: Send + Sync {
    /// Runs `job`, reporting progress to `observer`.
    fn run(
        &self,
        job: Job,
        journal: Journal,
        observer: Arc<dyn Observer>,
    ) -> BoxFuture<'static, Result<RunResult>>;
}

/// The shared engine, as `kubegrid apply` runs it.
#[derive(Debug, Clone)]
pub struct EngineRunner {
    /// Hosts worked on at once within a phase.
    pub parallel: usize,
    /// Seconds allowed for each host's connect and SSH handshake.
    pub connect_timeout: Duration,
    /// How bundle files reach hosts.
    pub distribution: Distribution,
    /// Preflight checks skipped knowingly on every install; [`CLUSTER_API_CHECKS`] skips
    /// the checks through the workload cluster's API.
    pub skip_checks: Vec<String>,
}

/// The name that skips the checks through the workload cluster's API, as in `kubegrid apply`.
pub const CLUSTER_API_CHECKS: &str = "cluster-api";

impl Default for EngineRunner {
    fn default() -> Self {
        Self {
            parallel: 64,
            connect_timeout: Duration::from_secs(10),
            distribution: Distribution::default(),
            skip_checks: Vec::new(),
        }
    }
}

impl Runner for EngineRunner {
    fn run(
        &self,
        job: Job,
        journal: Journal,
        observer: Arc<dyn Observer>,
    ) -> BoxFuture<'static, Result<RunResult>> {
        let this = self.clone();
        Box::pin(async move { this.execute(job, journal, observer).await })
    }
}

impl EngineRunner {
    async fn execute(
        &self,
        job: Job,
        journal: Journal,
        observer: Arc<dyn Observer>,
    ) -> Result<RunResult> {
        let manifest = &job.manifest;
        let bundle_dir = job.bundle_dir.clone().ok_or_else(|| Error::Bundle {
            cluster: job.cluster.clone(),
            reason: "spec.bundle.source is not set; name a bundle directory on the operator's bundles volume".into(),
        })?;
        let bundle_err = |reason: String| Error::Bundle {
            cluster: job.cluster.clone(),
            reason,
        };
        // Only the key from the Secret: spec.bundle.publicKeyFile would name the operator's own
        // file, and validation refuses it.
        let key = job.bundle_public_key.clone().ok_or_else(|| {
                bundle_err(format!(
                    "bundle {}: no public key to check its signature with; set spec.bundle.publicKeyRef to a Secret holding it",
                    bundle_dir.display()
                ))
            })?;
        let (bundle, _) = kubegrid_bundle::open_verified(&bundle_dir, &key)
            .map_err(|e| bundle_err(e.to_string()))?;
        let agents = Agents::for_bundle(&bundle).map_err(|e| bundle_err(e.to_string()))?;
        let mut context = kubegrid_engine::spec::cluster_context_for_bundle(manifest, &bundle)
            .map_err(|e| bundle_err(e.to_string()))?;
        if let (Some(text), Some(k)) = (&job.cni_manifest, context.kubernetes.as_mut()) {
            k.cni_manifest = Some(text.clone());
        }
        kubegrid_engine::spec::check_bundle(&context, &bundle)
            .map_err(|e| bundle_err(e.to_string()))?;
        let mut hosts = kubegrid_engine::spec::hosts(manifest);
        for h in &mut hosts {
            h.target.cluster = job.cluster.clone();
            if let Some(password) = job.passwords.get(&h.target.host) {
                h.target.password = Some(password.clone());
            }
            if let Some(key) = &job.ssh_key_file {
                h.target.key_file = Some(key.clone());
                if let Some(b) = h.target.bastion.as_mut() {
                    b.key_file.get_or_insert_with(|| key.clone());
                    b.cluster = job.cluster.clone();
                }
            }
        }
        let names: Vec<String> = hosts.iter().map(|h| h.target.host.clone()).collect();
        let mut options = Options {
            parallel: self.parallel,
            ssh: SshOptions {
                connect_timeout: self.connect_timeout,
                ..SshOptions::default()
            },
            distribution: self.distribution,
            resume_from: job.resume_from.map(OperationId),
            // Live hosts carry theirs in their targets; Nodes being removed only here.
            member_passwords: job.passwords.clone(),
            force_membership: kubegrid_engine::membership::forced_by(
                kube::ResourceExt::annotations(job.manifest.cluster()),
            ),
            skip_checks: self.skip_checks.clone(),
            cluster_checks: !self.skip_checks.iter().any(|c| c == CLUSTER_API_CHECKS),
            ..Options::default()
        };
        if job.kind == JobKind::Reset {
            // A reset takes down what is there; checks meant for building it up get in the way.
            options.skip_checks = kubegrid_engine::preflight::names()
                .into_iter()
                .map(String::from)
                .collect();
            options.cluster_checks = false;
            context.kubernetes = None;
        }
        if let Some(upgrade) = &job.upgrade {
            options.upgrade = kubegrid_engine::upgrade::UpgradeOptions {
                max_unavailable: upgrade.max_unavailable.max(1),
                paused: Arc::clone(&upgrade.paused),
                ..kubegrid_engine::upgrade::UpgradeOptions::default()
            };
            // Like `kubegrid upgrade apply`: the checks through the cluster's API are the
            // install's; the upgrade reads the API itself.
            options.cluster_checks = false;
        }
        if let JobKind::Certs(certs) = job.kind {
            options.certs = kubegrid_engine::certs::CertsOptions {
                action: certs.action(),
            };
            // Like `kubegrid certs`: the install's checks through the cluster's API are not
            // what a certificates operation is about.
            options.cluster_checks = false;
        }
        let playbook = Playbook::builtin(job.kind.playbook()).map_err(|e| Error::Engine {
            cluster: job.cluster.clone(),
            reason: e.to_string(),
        })?;
        let serving = context.serving.clone();
        let req = operation::Request {
            mode: Mode::Apply,
            cluster: job.cluster.clone(),
            spec_digest: job.spec_digest.clone(),
            context,
            hosts,
            bundle: Arc::new(bundle),
            playbook: Arc::new(playbook),
            agents: Arc::new(agents),
            options,
        };
        let report = operation::execute(req, journal.clone(), observer)
            .await
            .map_err(|e| match e {
                // A membership change the rules refuse is the spec's problem, not the engine's.
                kubegrid_engine::Error::MembershipRefused { .. } => Error::InvalidSpec {
                    cluster: job.cluster.clone(),
                    problems: e.to_string(),
                },
                _ => Error::Engine {
                    cluster: job.cluster.clone(),
                    reason: e.to_string(),
                },
            })?;
        let outcome = match report.outcome {
            Outcome::Succeeded => RunOutcome::Succeeded,
            Outcome::HostsFailed => RunOutcome::HostsFailed,
            Outcome::Unreachable => RunOutcome::Unreachable,
            Outcome::PreflightFailed => RunOutcome::PreflightFailed(
                report.preflight.iter().map(|f| f.to_string()).collect(),
            ),
            Outcome::ClusterFailed => RunOutcome::ClusterFailed(
                report
                    .kubernetes
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        let mut host_keys = BTreeMap::new();
        for name in &names {
            if let Ok(Some(pin)) = journal.pinned_key(&job.cluster, name).await {
                host_keys.insert(
                    name.clone(),
                    format!("{} {}", pin.algorithm, pin.fingerprint),
                );
            }
        }
        let kubeconfig = journal.kubeconfig(&job.cluster).await.ok().flatten();
        Ok(RunResult {
            operation: report.operation,
            outcome,
            hosts: report
                .hosts
                .iter()
                .map(|h| HostOutcome {
                    name: h.name.clone(),
                    ok: h.ok,
                    failed_phase: h.failed_phase.clone(),
                    error: h.error.clone(),
                    facts: h.facts.as_ref().map(node_facts),
                    versions: node_versions(&h.versions),
                })
                .collect(),
            removed: report
                .kubernetes
                .removed
                .iter()
                .filter(|r| r.ok)
                .map(|r| r.name.clone())
                .collect(),
            kubeconfig,
            host_keys,
            upgrade: report.upgrade.as_ref().map(UpgradeSummary::of),
            certs: report.certs.clone(),
            serving: kubegrid_engine::kubernetes::serving::status(
                serving.as_ref(),
                &report.kubernetes.checks,
            ),
        })
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
