//! Running one plan per host concurrently, bounded by `--parallel`, while events stream to
//! the observer and the journal.

use std::{sync::Arc, time::SystemTime};

use kubegrid_agent::protocol::{Event, Plan, TaskStatus};
use kubegrid_journal::{TaskRecord, TaskState};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

use crate::{
    error::Error,
    operation::Run,
    progress::{Progress, status_name},
    session::{HostSession, LocalBlob, PlanOutcome, TaskReport},
};

/// One host's work in a phase.
pub(crate) struct Job {
    /// Host index.
    pub index: usize,
    /// Its plan.
    pub plan: Plan,
    /// Blobs the plan refers to.
    pub blobs: Vec<LocalBlob>,
    /// The plan may change the host, so the agent is installed there for good.
    pub persist: bool,
}

impl Job {
    /// A job that only reads (facts, a check, a query): no lock on the host, nothing
    /// installed for good, no blobs.
    pub fn read_only(index: usize, phase: &str, tasks: Vec<kubegrid_agent::protocol::Task>) -> Job {
        Job {
            index,
            plan: Plan {
                protocol: kubegrid_agent::protocol::PROTOCOL_VERSION,
                phase: phase.to_string(),
                check_mode: false,
                store_dir: None,
                state_dir: None,
                blobs: Vec::new(),
                tasks,
            },
            blobs: Vec::new(),
            persist: false,
        }
    }
}

/// One host's result, with the engine's clock around the round trip.
pub(crate) struct Done {
    /// Host index.
    pub index: usize,
    /// The plan's outcome, or why it could not run.
    pub result: Result<PlanOutcome, Error>,
    /// Engine time when the plan was sent, ms since the epoch.
    pub sent_ms: u64,
    /// Engine time when the answer was complete.
    pub done_ms: u64,
}

/// Runs every job, returning results in host order. Sessions go back into `run` afterwards.
pub(crate) async fn fan_out(run: &mut Run, phase: &str, jobs: Vec<Job>) -> Vec<Done> {
    run.observer.event(&Progress::PhaseStarted {
        phase: phase.to_string(),
        hosts: jobs.len(),
    });
    let limit = Arc::new(Semaphore::new(run.req.options.parallel.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<TaskRecord>();
    let journal = run.journal.clone();
    let op = run.op;
    // One writer keeps journal inserts in arrival order and off the hosts' critical path.
    let writer = tokio::spawn(async move {
        while let Some(rec) = rx.recv().await {
            if let Err(e) = journal.record(op, &rec).await {
                tracing::warn!("journal: {e}");
            }
        }
    });
    let mut set = JoinSet::new();
    for job in jobs {
        let Some(session) = run.sessions[job.index].take() else {
            continue;
        };
        let host = run.reports[job.index].name.clone();
        let observer = run.observer.clone();
        let limit = limit.clone();
        let tx = tx.clone();
        let phase = phase.to_string();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut session: HostSession = session;
            let sent_ms = now_ms();
            let result = session
                .run_plan(job.plan, job.persist, &job.blobs, |ev| {
                    forward(ev, &host, &phase, &*observer, &tx)
                })
                .await;
            let done = Done {
                index: job.index,
                result,
                sent_ms,
                done_ms: now_ms(),
            };
            (session, done)
        });
    }
    drop(tx);
    let mut done = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((session, d)) => {
                run.sessions[d.index] = Some(session);
                run.count_round_trips(d.index, phase);
                done.push(d);
            }
            // A panicking host task is a bug; its host is reported failed below by absence.
            Err(e) => tracing::error!("host task ended abnormally: {e}"),
        }
    }
    // All senders are gone once the tasks ended, so the writer drains and stops.
    let _ = writer.await;
    done.sort_by_key(|d| d.index);
    done
}

fn forward(
    ev: &Event,
    host: &str,
    phase: &str,
    observer: &dyn crate::progress::Observer,
    tx: &mpsc::UnboundedSender<TaskRecord>,
) {
    match ev {
        Event::TaskStarted { name, .. } => observer.event(&Progress::TaskStarted {
            host: host.to_string(),
            phase: phase.to_string(),
            task: name.clone(),
        }),
        Event::TaskFinished { .. } => {
            let Some(t) = TaskReport::from_event(ev) else {
                return;
            };
            observer.event(&Progress::TaskFinished {
                host: host.to_string(),
                phase: phase.to_string(),
                task: t.name.clone(),
                status: status_name(t.status).to_string(),
                message: t.message.clone(),
            });
            let _ = tx.send(TaskRecord {
                host: host.to_string(),
                phase: phase.to_string(),
                task: t.name,
                status: match t.status {
                    TaskStatus::Changed => TaskState::Changed,
                    TaskStatus::Unchanged => TaskState::Unchanged,
                    TaskStatus::Failed => TaskState::Failed,
                },
                duration_ms: t.duration_ms,
                message: t.message,
                output: t.output,
            });
        }
        _ => crate::distribute::observe(ev, host, phase, observer),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
