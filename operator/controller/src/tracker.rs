//! Live progress of an operation, turned into per-Node status, Kubernetes Events and
//! metrics while it runs.
//!
//! The engine calls [`Tracker::event`] from its fan-out tasks, so that call only queues the
//! event. One writer task applies queued events in order and then patches each Node whose
//! status changed once per batch: a phase on 500 hosts makes a few patches per Node, not
//! one per task.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Api,
    runtime::events::{Event, EventType, Recorder},
};
use kubegrid_api::{Node, NodePhase, PhaseTiming};
use kubegrid_engine::{
    kubernetes::DRAIN_PHASE,
    phases::versions::PHASE as VERSIONS_PHASE,
    progress::{Observer, Progress},
};
use serde_json::json;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{metrics::Metrics, status};

/// The kind of an upgrade operation, as [`Sink::kind`] names it.
const UPGRADE: &str = kubegrid_engine::upgrade::PLAYBOOK;
/// The engine's progress phase of reading versions and health before an upgrade step.
const UPGRADE_STATE_PHASE: &str = kubegrid_engine::upgrade::STATE_PHASE;

/// What the tracker learned about one host.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    /// Where it is now.
    pub phase: Option<NodePhase>,
    /// `phase / task` running now.
    pub current_step: Option<String>,
    /// Why it failed, if it did.
    pub last_error: Option<String>,
    /// Wall time of each phase on this host.
    pub phase_times: Vec<PhaseTiming>,
    started: HashMap<String, (Instant, String)>,
    dirty: bool,
}

/// Queues engine progress for the writer task.
pub struct Tracker {
    tx: mpsc::UnboundedSender<Progress>,
}

impl Observer for Tracker {
    fn event(&self, event: &Progress) {
        // The writer outlives every sender; a send can only fail once it has stopped.
        let _ = self.tx.send(event.clone());
    }
}

/// Where the writer reports to.
pub struct Sink {
    /// Nodes of the Cluster's namespace.
    pub nodes: Api<Node>,
    /// Event recorder.
    pub recorder: Recorder,
    /// The Cluster, as events name it.
    pub cluster_ref: ObjectReference,
    /// Each Node by name, as events name it.
    pub node_refs: BTreeMap<String, ObjectReference>,
    /// Each Node's `status.roles` by name (see [`status::patch_node`]).
    pub roles: BTreeMap<String, Option<String>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `namespace/name`, the metrics label.
    pub cluster: String,
    /// `install`, `reset` or `upgrade`.
    pub kind: &'static str,
    /// For an upgrade: where the Cluster's `Upgrading` condition names the running step.
    pub upgrading: Option<crate::upgrade::Rolling>,
}

/// The running writer. Dropped without [`Writer::finish`] (the reconcile was dropped, as
/// when this replica lost the Lease), it stops at once and writes nothing more: status is
/// the new leader's to write.
pub struct Writer {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<BTreeMap<String, HostState>>>,
}

impl Writer {
    /// Applies what is still queued, writes it, and returns the hosts' final states. Events
    /// sent after this are dropped.
    pub async fn finish(mut self) -> BTreeMap<String, HostState> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await.unwrap_or_default(),
            None => BTreeMap::new(),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Starts a writer for `sink`.
pub fn start(sink: Sink) -> (Arc<Tracker>, Writer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel();
    let handle = tokio::spawn(write(sink, rx, stopped));
    (
        Arc::new(Tracker { tx }),
        Writer {
            stop: Some(stop),
            handle: Some(handle),
        },
    )
}

async fn write(
    sink: Sink,
    mut rx: mpsc::UnboundedReceiver<Progress>,
    mut stopped: oneshot::Receiver<()>,
) -> BTreeMap<String, HostState> {
    let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
    let mut phases: HashMap<String, Instant> = HashMap::new();
    let mut step: Option<String> = None;
    let mut stopping = false;
    loop {
        let first = if stopping {
            None
        } else {
            tokio::select! {
                event = rx.recv() => event,
                finished = &mut stopped => {
                    if finished.is_err() {
                        // The Writer was dropped, not finished: stop without writing.
                        return hosts;
                    }
                    stopping = true;
                    None
                }
            }
        };
        // Whatever is queued is applied before stopping, so the last phase is not lost.
        let mut batch: Vec<Progress> = first.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let stop = batch.is_empty() && (stopping || rx.is_closed());
        for event in batch {
            apply(&sink, &mut hosts, &mut phases, &mut step, event).await;
        }
        flush(&sink, &mut hosts).await;
        if stop {
            return hosts;
        }
    }
}

/// The Node phase an engine phase stands for, given the host's phase now; None leaves it.
/// A host being drained or removed stays so through the facts and preflight of its reset.
fn node_phase(kind: &str, phase: &str, now: Option<NodePhase>) -> Option<NodePhase> {
    let leaving = matches!(now, Some(NodePhase::Draining | NodePhase::Removing));
    Some(match (kind, phase) {
        // Connecting, checking and reading versions change nothing on a host: only the
        // playbook phases of a step make it Upgrading.
        (UPGRADE, "facts" | "preflight" | VERSIONS_PHASE | UPGRADE_STATE_PHASE) => return None,
        (UPGRADE, _) => NodePhase::Upgrading,
        ("reset", _) => NodePhase::Removing,
        (_, DRAIN_PHASE) => NodePhase::Draining,
        (_, "reset") => NodePhase::Removing,
        (_, "facts" | "preflight") if leaving => return None,
        (_, "facts" | "preflight") => NodePhase::Preflight,
        // Reading what got installed changes nothing about where the host is.
        (_, VERSIONS_PHASE) => return None,
        (_, p) if p.contains("join") || p.contains("init") || p == "cni" || p == "verify" => {
            NodePhase::Joining
        }
        _ => NodePhase::Installing,
    })
}

async fn apply(
    sink: &Sink,
    hosts: &mut BTreeMap<String, HostState>,
    phases: &mut HashMap<String, Instant>,
    step: &mut Option<String>,
    event: Progress,
) {
    match event {
        Progress::PhaseStarted { phase, .. }
            if sink.kind == UPGRADE && crate::upgrade::step_id(&phase).is_some() =>
        {
            let id = crate::upgrade::step_id(&phase)
                .unwrap_or_default()
                .to_string();
            step_started(sink, hosts, &id).await;
            *step = Some(id);
        }
        Progress::PhaseStarted { phase, hosts: n } => {
            phases.insert(phase.clone(), Instant::now());
            publish(
                sink,
                &sink.cluster_ref,
                EventType::Normal,
                "PhaseStarted",
                format!("{} phase {phase} started on {n} host(s)", sink.kind),
            )
            .await;
        }
        Progress::PhaseFinished { phase } => {
            if let Some(t) = phases.remove(&phase) {
                sink.metrics
                    .phase(sink.kind, &phase, t.elapsed().as_secs_f64());
            }
        }
        Progress::TaskStarted { host, phase, task } => {
            let h = hosts.entry(host.clone()).or_default();
            h.started
                .entry(phase.clone())
                .or_insert_with(|| (Instant::now(), status::now()));
            // Only a Node of the running step is in it; the version read before each step
            // runs on every Node.
            let in_step = step
                .as_deref()
                .filter(|id| crate::upgrade::step_nodes(id).contains(&host));
            h.current_step = Some(match (sink.kind, in_step) {
                (UPGRADE, Some(id)) => format!("upgrade {id}: {phase} / {task}"),
                _ => format!("{phase} / {task}"),
            });
            h.dirty = true;
            let Some(now) = node_phase(sink.kind, &phase, h.phase) else {
                return;
            };
            if h.phase != Some(now) {
                h.phase = Some(now);
                let node = sink.node_refs.get(&host).unwrap_or(&sink.cluster_ref);
                let note = format!("{host} is {now:?} ({} phase {phase})", sink.kind);
                publish(sink, node, EventType::Normal, "NodePhaseChanged", note).await;
            }
        }
        Progress::HostDone {
            host,
            phase,
            ok,
            error,
            ..
        } => {
            let h = hosts.entry(host.clone()).or_default();
            let (began, started_at) = h
                .started
                .remove(&phase)
                .unwrap_or_else(|| (Instant::now(), status::now()));
            h.phase_times.retain(|t| t.phase != phase);
            h.phase_times.push(PhaseTiming {
                phase: phase.clone(),
                started_at: Some(started_at),
                finished_at: Some(status::now()),
                duration_ms: Some(began.elapsed().as_millis() as u64),
            });
            h.dirty = true;
            if !ok {
                let why = error.unwrap_or_default();
                h.phase = Some(NodePhase::Failed);
                h.current_step = None;
                h.last_error = Some(status::truncate(&format!("{phase}: {why}"), 2048));
                let node = sink.node_refs.get(&host).unwrap_or(&sink.cluster_ref);
                publish(
                    sink,
                    node,
                    EventType::Warning,
                    "HostFailed",
                    format!("{host} failed in {phase}: {why}"),
                )
                .await;
            }
        }
        Progress::TaskFinished { .. }
        | Progress::Transfer { .. }
        | Progress::Swarm { .. }
        | Progress::HostWaiting { .. } => {}
    }
}

/// An upgrade step starts: its Nodes are Upgrading, the Nodes of the step before it that
/// did not fail are Ready again (their roll finished), and the Cluster's `Upgrading`
/// condition names the step.
async fn step_started(sink: &Sink, hosts: &mut BTreeMap<String, HostState>, id: &str) {
    let nodes = crate::upgrade::step_nodes(id);
    for (name, h) in hosts.iter_mut() {
        if h.phase == Some(NodePhase::Upgrading) && !nodes.iter().any(|n| n == name) {
            h.phase = Some(NodePhase::Ready);
            h.current_step = None;
            h.dirty = true;
        }
    }
    for node in &nodes {
        let h = hosts.entry(node.clone()).or_default();
        h.current_step = Some(format!("upgrade {id}"));
        h.dirty = true;
        if h.phase != Some(NodePhase::Upgrading) {
            h.phase = Some(NodePhase::Upgrading);
            let reference = sink.node_refs.get(node).unwrap_or(&sink.cluster_ref);
            let note = format!("{node} is Upgrading (step {id})");
            publish(sink, reference, EventType::Normal, "NodePhaseChanged", note).await;
        }
    }
    publish(
        sink,
        &sink.cluster_ref,
        EventType::Normal,
        "UpgradeStep",
        format!("upgrade step {id} started on {}", nodes.join(", ")),
    )
    .await;
    if let Some(rolling) = &sink.upgrading
        && let Err(e) = rolling.step(id).await
    {
        // Progress is best effort: the final status is written after the operation.
        tracing::warn!(step = id, "progress: {e}");
    }
}

async fn flush(sink: &Sink, hosts: &mut BTreeMap<String, HostState>) {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (name, h) in hosts.iter_mut() {
        if let Some(p) = h.phase {
            *counts.entry(format!("{p:?}")).or_default() += 1;
        }
        if !std::mem::take(&mut h.dirty) {
            continue;
        }
        let mut patch = json!({
            "currentStep": h.current_step,
            "lastError": h.last_error,
            "phaseTimes": h.phase_times,
        });
        // A host whose phase this operation did not set yet (an upgrade's version read)
        // keeps the one it has: a null would delete it.
        if let Some(p) = h.phase {
            patch["phase"] = json!(p);
        }
        let roles = sink.roles.get(name).cloned();
        if let Err(e) = status::patch_node(&sink.nodes, name, roles, patch).await {
            // Progress is best effort: the final status is written after the operation.
            tracing::warn!(node = %name, "progress: {e}");
        }
    }
    let counts: Vec<(String, i64)> = counts.into_iter().collect();
    sink.metrics.hosts(&sink.cluster, &counts);
}

/// Publishes an event, logging (not failing) when the API refuses it.
pub async fn publish(
    sink: &Sink,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_with(&sink.recorder, reference, type_, reason, note).await;
}

/// Publishes an event with `recorder`, logging (not failing) when the API refuses it.
pub async fn publish_with(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(status::truncate(&note, 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(reason, "event not recorded: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_phases_map_to_node_phases() {
        let at = |phase, now| node_phase("install", phase, now);
        assert_eq!(at("facts", None), Some(NodePhase::Preflight));
        assert_eq!(at("container-runtime", None), Some(NodePhase::Installing));
        assert_eq!(at("control-plane-init", None), Some(NodePhase::Joining));
        assert_eq!(
            at(DRAIN_PHASE, Some(NodePhase::Removing)),
            Some(NodePhase::Draining)
        );
        // The reset of a drained host: its facts do not make it look new again.
        assert_eq!(at("facts", Some(NodePhase::Draining)), None);
        assert_eq!(
            at("reset", Some(NodePhase::Draining)),
            Some(NodePhase::Removing)
        );
        assert_eq!(at(VERSIONS_PHASE, Some(NodePhase::Joining)), None);
        assert_eq!(
            node_phase("reset", "facts", None),
            Some(NodePhase::Removing)
        );
        let up = |phase| node_phase(UPGRADE, phase, Some(NodePhase::Ready));
        for phase in [
            "etcd-member",
            "kubeadm-apply",
            "kubeadm-node",
            "node-containerd",
            "node-kubelet",
        ] {
            assert_eq!(up(phase), Some(NodePhase::Upgrading), "{phase}");
        }
        for phase in ["facts", "preflight", VERSIONS_PHASE, UPGRADE_STATE_PHASE] {
            assert_eq!(up(phase), None, "{phase}");
        }
    }
}
