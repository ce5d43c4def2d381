//! A scripted stand-in for the engine: it journals like the engine (operations, per-phase host
//! results, members), sends the same progress events, and fails the hosts a plan names.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use futures::future::BoxFuture;
use kubegrid_api::NodeVersions;
use kubegrid_controller::runner::{HostOutcome, Job, JobKind, RunOutcome, RunResult, Runner};
use kubegrid_engine::progress::{Observer, Progress};
use kubegrid_journal::{
    FinalStatus, HostOutcome as JournalHost, Journal, NewOperation, OperationKind,
};
use tokio::sync::watch;

/// The image the scripted runner reports for `spec.serving`.
pub const SCRIPTED_SERVING_IMAGE: &str = "ghcr.io/kubegrid/kubegrid@sha256:5c41b7ed5c41b7ed5c41b7ed5c41b7ed5c41b7ed5c41b7ed5c41b7ed5c41b7ed";

/// One call of the scripted runner, as it happened.
#[derive(Debug, Clone)]
pub struct Call {
    /// The replica that ran it.
    pub replica: String,
    /// What it was asked.
    pub kind: JobKind,
    /// Journal id it ran under.
    pub operation: i64,
    /// The operation it resumed.
    pub resume_from: Option<i64>,
    /// Nodes it acted on.
    pub nodes: Vec<String>,
    /// When it began and ended.
    pub started: Instant,
    /// None while it runs.
    pub ended: Option<Instant>,
    /// It was dropped before it finished (its replica stopped acting).
    pub cancelled: bool,
    /// The CNI manifest the job carried (from the Cluster's ConfigMap).
    pub cni_manifest: Option<String>,
    /// The SSH passwords the job carried, by Node, revealed.
    pub passwords: std::collections::BTreeMap<String, String>,
    /// An upgrade's `spec.upgrade.paused`, as the operator keeps it current while it runs.
    pub paused: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// What the scripted runner does on call `n` (0-based) of `job`: the failing hosts with their
/// phase and error, or the whole outcome.
pub type Plan =
    dyn Fn(&Job, usize) -> Vec<(&'static str, &'static str, &'static str)> + Send + Sync;

/// A stand-in for the engine that journals like it and reports what a plan says.
#[derive(Clone)]
pub struct ScriptedRunner {
    /// Name of the replica using it.
    pub replica: String,
    /// Every call, across replicas.
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// While false, each run waits halfway (after its first phase) until it turns true.
    pub gate: watch::Receiver<bool>,
    /// Which hosts fail.
    pub plan: Arc<Plan>,
    /// Bumped whenever a call starts or ends.
    pub tick: Arc<watch::Sender<u64>>,
    /// The kubelet version each Node was upgraded to, across replicas (the hosts' state).
    pub upgraded: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    /// Every upgrade step that ran, in order, across replicas.
    pub steps_run: Arc<Mutex<Vec<String>>>,
    /// The certificates operations: what they report, and every call (apart from `calls`).
    pub certs: Arc<crate::scripted_certs::CertsScript>,
}

/// Ends the call's record when the run's future ends, finished or dropped.
struct Record {
    calls: Arc<Mutex<Vec<Call>>>,
    tick: Arc<watch::Sender<u64>>,
    index: usize,
    finished: bool,
}

impl Drop for Record {
    fn drop(&mut self) {
        {
            let mut calls = self.calls.lock().unwrap();
            calls[self.index].ended = Some(Instant::now());
            calls[self.index].cancelled = !self.finished;
        }
        self.tick.send_modify(|n| *n += 1);
    }
}

impl Runner for ScriptedRunner {
    fn run(
        &self,
        job: Job,
        journal: Journal,
        observer: Arc<dyn Observer>,
    ) -> BoxFuture<'static, kubegrid_controller::Result<RunResult>> {
        let this = self.clone();
        Box::pin(async move { this.script(job, journal, observer).await })
    }
}

impl ScriptedRunner {
    async fn script(
        &self,
        job: Job,
        journal: Journal,
        observer: Arc<dyn Observer>,
    ) -> kubegrid_controller::Result<RunResult> {
        let nodes: Vec<String> = job
            .manifest
            .nodes()
            .iter()
            .map(|n| n.metadata.name.clone().unwrap_or_default())
            .collect();
        if let JobKind::Certs(certs) = job.kind {
            return self.certs(certs, &job, &journal, nodes).await;
        }
        let op = journal
            .begin(NewOperation {
                kind: if job.kind == JobKind::Upgrade {
                    OperationKind::Upgrade
                } else {
                    OperationKind::Apply
                },
                cluster: job.cluster.clone(),
                spec_digest: job.spec_digest.clone(),
                hosts: nodes.clone(),
            })
            .await?;
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                replica: self.replica.clone(),
                kind: job.kind,
                operation: op.0,
                resume_from: job.resume_from,
                nodes: nodes.clone(),
                started: Instant::now(),
                ended: None,
                cancelled: false,
                cni_manifest: job.cni_manifest.clone(),
                passwords: job
                    .passwords
                    .iter()
                    .map(|(node, p)| (node.clone(), p.reveal(node).unwrap()))
                    .collect(),
                paused: job.upgrade.as_ref().map(|u| Arc::clone(&u.paused)),
            });
            calls.len() - 1
        };
        self.tick.send_modify(|n| *n += 1);
        let mut record = Record {
            calls: Arc::clone(&self.calls),
            tick: Arc::clone(&self.tick),
            index: n,
            finished: false,
        };
        let runs_before = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.kind == job.kind)
            .count()
            - 1;
        let failing = (self.plan)(&job, runs_before);
        if job.kind == JobKind::Upgrade {
            let result = self.upgrade(&job, &journal, &*observer, op, &failing).await;
            record.finished = true;
            return result;
        }
        for phase in ["os-prepare", "container-runtime"] {
            observer.event(&Progress::PhaseStarted {
                phase: phase.into(),
                hosts: nodes.len(),
            });
            for host in &nodes {
                observer.event(&Progress::TaskStarted {
                    host: host.clone(),
                    phase: phase.into(),
                    task: "stand-in task".into(),
                });
            }
            if phase == "container-runtime" {
                // Halfway: a test can hold the operation here (and cut its replica off).
                let mut gate = self.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
            }
            for host in &nodes {
                let failure = failing.iter().find(|(h, p, _)| h == host && *p == phase);
                observer.event(&Progress::HostDone {
                    host: host.clone(),
                    phase: phase.into(),
                    ok: failure.is_none(),
                    changed: 1,
                    error: failure.map(|(_, _, e)| e.to_string()),
                });
                if failure.is_none() {
                    journal
                        .host_result(
                            op,
                            host,
                            phase,
                            JournalHost {
                                ok: true,
                                error: None,
                            },
                        )
                        .await?;
                }
            }
            observer.event(&Progress::PhaseFinished {
                phase: phase.into(),
            });
        }
        let hosts: Vec<HostOutcome> = nodes
            .iter()
            .map(|h| {
                let failure = failing.iter().find(|(f, _, _)| f == h);
                HostOutcome {
                    name: h.clone(),
                    ok: failure.is_none(),
                    failed_phase: failure.map(|(_, p, _)| p.to_string()),
                    error: failure.map(|(_, _, e)| e.to_string()),
                    facts: Some(kubegrid_controller::runner::node_facts(&host_facts(h))),
                    // Like the engine: versions are read only from hosts that finished.
                    versions: failure.is_none().then(|| NodeVersions {
                        kubelet: Some(format!(
                            "v{}",
                            job.manifest
                                .cluster()
                                .spec
                                .kubernetes_version
                                .trim_start_matches('v')
                        )),
                        containerd: Some("v1.7.24".into()),
                    }),
                }
            })
            .collect();
        let ok = failing.is_empty();
        // Like the engine: members that left the spec are removed, the others remembered.
        let mut removed = Vec::new();
        if ok && job.kind == JobKind::Apply {
            for (member, _) in journal.members(&job.cluster).await? {
                if !nodes.contains(&member) {
                    // Drained first, with the engine's progress events.
                    observer.event(&Progress::TaskStarted {
                        host: member.clone(),
                        phase: kubegrid_engine::kubernetes::DRAIN_PHASE.into(),
                        task: "drain and delete the Node".into(),
                    });
                    observer.event(&Progress::HostDone {
                        host: member.clone(),
                        phase: kubegrid_engine::kubernetes::DRAIN_PHASE.into(),
                        ok: true,
                        changed: 1,
                        error: None,
                    });
                    journal.remove_member(&job.cluster, &member).await?;
                    removed.push(member);
                }
            }
            for node in &nodes {
                journal.put_member(&job.cluster, node, "{}").await?;
            }
            // Like the engine after `kubeadm init`: the version the cluster now runs.
            let version = &job.manifest.cluster().spec.kubernetes_version;
            journal
                .put_installed_version(&job.cluster, version.trim_start_matches('v'))
                .await?;
        }
        journal
            .finish(
                op,
                if ok {
                    FinalStatus::Succeeded
                } else {
                    FinalStatus::Failed
                },
                None,
            )
            .await?;
        record.finished = true;
        Ok(RunResult {
            operation: op.0,
            outcome: if ok {
                RunOutcome::Succeeded
            } else {
                RunOutcome::HostsFailed
            },
            hosts,
            removed,
            kubeconfig: (ok && job.kind == JobKind::Apply)
                .then(|| "apiVersion: v1\nkind: Config\n".to_string()),
            upgrade: None,
            certs: None,
            // As the engine reports an applied layer (SCRIPTED: nothing is applied here).
            serving: job
                .manifest
                .cluster()
                .spec
                .serving
                .as_ref()
                .filter(|_| ok && job.kind == JobKind::Apply)
                .map(|s| kubegrid_api::ServingStatus {
                    namespace: s.namespace().to_string(),
                    image: SCRIPTED_SERVING_IMAGE.into(),
                    deployed: true,
                    ready: true,
                    keda: None,
                    message: "scripted: the runner applied nothing".into(),
                }),
            host_keys: nodes
                .iter()
                .map(|n| (n.clone(), "ssh-ed25519 SHA256:stand-in".to_string()))
                .collect(),
        })
    }
}

/// What a stand-in host reports: a Debian amd64 machine with two H100 SXM5 GPUs and one
/// NVIDIA GPU whose device id kubegrid does not know.
pub(crate) fn host_facts(name: &str) -> kubegrid_agent::facts::Facts {
    let gpu = |address: &str, device: &str| kubegrid_agent::facts::PciDevice {
        address: address.into(),
        vendor: "0x10de".into(),
        device: device.into(),
        class: "0x030200".into(),
        nvidia: true,
    };
    let pci = vec![
        gpu("0000:3b:00.0", "0x2330"),
        gpu("0000:5e:00.0", "0x2330"),
        gpu("0000:86:00.0", "0x2302"),
    ];
    // The GPUs as the agent's detection names them: the product table's name, or the id.
    let devices = pci
        .iter()
        .map(|d| {
            let id = u16::from_str_radix(d.device.trim_start_matches("0x"), 16).unwrap();
            kubegrid_agent::facts::GpuDevice {
                address: d.address.clone(),
                device: d.device.clone(),
                model: kubegrid_agent::facts::gpu_model(id)
                    .map_or_else(|| format!("NVIDIA 10de:{id:04x}"), str::to_string),
                iommu_group: None,
            }
        })
        .collect();
    let mut facts = kubegrid_agent::facts::Facts {
        hostname: name.into(),
        os_id: "debian".into(),
        os_version: "12".into(),
        arch: "amd64".into(),
        kernel: "6.1.0-13-amd64".into(),
        cpus: 16,
        memory_mib: 64_000,
        pci,
        ..Default::default()
    };
    facts.gpu.devices = devices;
    facts.gpu.driver_version = Some("550.127.05".into());
    facts.gpu.modules.nvidia = true;
    facts.gpu.secure_boot = kubegrid_agent::facts::SecureBoot::Disabled;
    facts.gpu.kernel_headers = true;
    facts.gpu.kvm = kubegrid_agent::facts::Kvm::NoDevice;
    facts
}
