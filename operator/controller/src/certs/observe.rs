//! Engine progress of a certificates operation, as Events and phase metrics. Unlike an
//! install's tracker it writes no Node status: reading or renewing certificates does not
//! move a Node out of Ready, and a periodic check must not churn every Node's status.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{EventType, Recorder};
use kubegrid_engine::progress::{Observer, Progress};
use tokio::{sync::mpsc, task::JoinHandle};

use super::summary::scrub;
use crate::{metrics::Metrics, runner::CertsJob, tracker};

/// Queues progress for [`Events`]' task.
pub struct Queue(mpsc::UnboundedSender<Progress>);

impl Observer for Queue {
    fn event(&self, event: &Progress) {
        // The task outlives every sender; a send fails only once it stopped.
        let _ = self.0.send(event.clone());
    }
}

/// The task that publishes; [`Events::finish`] waits until it published what was queued.
pub struct Events(JoinHandle<()>);

impl Events {
    /// Waits for the queued events (every sender must be dropped first).
    pub async fn finish(self) {
        let _ = self.0.await;
    }
}

/// Where the Events go.
pub struct Target {
    /// Publishes them.
    pub recorder: Recorder,
    /// The Cluster.
    pub cluster: ObjectReference,
    /// Each Node by name.
    pub nodes: BTreeMap<String, ObjectReference>,
    /// Phase durations.
    pub metrics: Arc<Metrics>,
}

/// Starts publishing the progress of a `job`: phases of a renewal or rotation as Normal
/// Events (a check's phases are not worth one each), every failed host as a Warning.
pub fn start(target: Target, job: CertsJob) -> (Arc<dyn Observer>, Events) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let kind = crate::runner::JobKind::Certs(job).as_str();
    let quiet = matches!(job, CertsJob::Check { .. });
    let handle = tokio::spawn(async move {
        let mut started: HashMap<String, Instant> = HashMap::new();
        while let Some(event) = rx.recv().await {
            match event {
                Progress::PhaseStarted { phase, hosts } => {
                    started.insert(phase.clone(), Instant::now());
                    if !quiet {
                        let note = format!("{kind} phase {phase} started on {hosts} host(s)");
                        tracker::publish_with(
                            &target.recorder,
                            &target.cluster,
                            EventType::Normal,
                            "PhaseStarted",
                            note,
                        )
                        .await;
                    }
                }
                Progress::PhaseFinished { phase } => {
                    if let Some(t) = started.remove(&phase) {
                        target
                            .metrics
                            .phase(kind, &phase, t.elapsed().as_secs_f64());
                    }
                }
                Progress::HostDone {
                    host,
                    phase,
                    ok: false,
                    error,
                    ..
                } => {
                    let reference = target.nodes.get(&host).unwrap_or(&target.cluster);
                    let why = scrub(&error.unwrap_or_default());
                    tracker::publish_with(
                        &target.recorder,
                        reference,
                        EventType::Warning,
                        "HostFailed",
                        format!("{host} failed in {kind} phase {phase}: {why}"),
                    )
                    .await;
                }
                _ => {}
            }
        }
    });
    (Arc::new(Queue(tx)), Events(handle))
}
