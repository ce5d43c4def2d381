//! `reboot:` phases: a controlled reboot that the engine carries out itself, with no agent
//! plan. For each selected host where the phase's `when:` holds, the engine journals the
//! request with the current boot id, runs `systemctl reboot`, waits until SSH answers again
//! with the pinned host key and another boot id, journals the new id and goes on.
//!
//! Hosts reboot in parallel, up to `--parallel` (and the phase's `batch:`, when it sets
//! one): each host's reboot depends on nothing but itself, and a reboot is mostly waiting,
//! so one at a time would only multiply the wait.
//!
//! Resuming: the request is stored in the journal before it is sent (see [`record`]), so a
//! later run, whether a re-apply or the operator resuming an interrupted operation, sees a
//! reboot that happened while no kubegrid waited and never requests it twice.

mod host;
mod record;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use kubegrid_journal::{HostOutcome, OperationId};
use kubegrid_plan::{Batch, RebootPlan};
use tokio::{sync::Semaphore, task::JoinSet};

use self::{
    host::Pins,
    record::{Decision, Pending},
};
use super::{Phase, fan_out::now_ms};
use crate::{
    error::Error,
    operation::{Mode, PhaseTask, RebootReport, Run},
    progress::{Observer, Progress},
    session::HostSession,
    ssh::{HostKey, SshOptions},
};

/// A `reboot:` phase with the hosts it selects.
#[derive(Debug, Clone)]
pub struct RebootPhase {
    /// Phase name.
    pub name: String,
    /// Batch size rule, if the playbook sets one.
    pub batch: Option<Batch>,
    /// Every host the phase selects, by index, with its reboot when the `when:` holds there.
    /// Hosts whose predicate fails still take part: a reboot an earlier run requested for
    /// them may need recording.
    pub hosts: BTreeMap<usize, Option<RebootPlan>>,
}

/// What one host's reboot phase did, for its report.
#[derive(Default)]
struct Done {
    tasks: Vec<(String, String, u64)>,
    reboot: Option<RebootReport>,
}

/// Everything one host's task needs, owned, so it can run beside the others.
struct Job {
    host: String,
    phase: String,
    cluster: String,
    op: OperationId,
    mode: Mode,
    plan: Option<RebootPlan>,
    journal: kubegrid_journal::Journal,
    observer: Arc<dyn Observer>,
    pins: Arc<Pins>,
    ssh: SshOptions,
    /// How many of the phase's hosts reboot at once, for the dry run's message.
    at_once: usize,
}

impl Phase for RebootPhase {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, run: &mut Run) -> Result<(), Error> {
        let hosts: Vec<usize> = run
            .live()
            .into_iter()
            .filter(|i| self.hosts.contains_key(i))
            .collect();
        if hosts.is_empty() {
            return Ok(());
        }
        run.observer.event(&Progress::PhaseStarted {
            phase: self.name.clone(),
            hosts: hosts.len(),
        });
        let pins = Arc::new(load_pins(run, &hosts).await?);
        let limit = Arc::new(Semaphore::new(run.req.options.parallel.max(1)));
        let size = self.batch.map_or(hosts.len(), |b| b.size(hosts.len()));
        let at_once = size.min(run.req.options.parallel.max(1));
        for batch in hosts.chunks(size) {
            let mut set = JoinSet::new();
            for &i in batch {
                let Some(mut session) = run.sessions[i].take() else {
                    continue;
                };
                let job = Job {
                    host: run.reports[i].name.clone(),
                    phase: self.name.clone(),
                    cluster: run.req.cluster.clone(),
                    op: run.op,
                    mode: run.req.mode,
                    plan: self.hosts[&i],
                    journal: run.journal.clone(),
                    observer: run.observer.clone(),
                    pins: pins.clone(),
                    ssh: run.req.options.ssh.clone(),
                    at_once,
                };
                let limit = limit.clone();
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let result = job.run(&mut session).await;
                    (i, session, result)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (i, session, result) = match joined {
                    Ok(done) => done,
                    // A panicking host task is a bug; its host stays without a session.
                    Err(e) => {
                        tracing::error!("host task ended abnormally: {e}");
                        continue;
                    }
                };
                run.sessions[i] = Some(session);
                match result {
                    Ok(done) => self.finish_host(run, i, done).await,
                    Err(e) => {
                        run.reports[i].refused =
                            matches!(e, Error::HostKeyChanged { .. } | Error::Auth { .. });
                        run.fail_host(i, &self.name, e.to_string()).await;
                    }
                }
            }
        }
        run.observer.event(&Progress::PhaseFinished {
            phase: self.name.clone(),
        });
        Ok(())
    }
}

impl RebootPhase {
    async fn finish_host(&self, run: &mut Run, i: usize, done: Done) {
        let r = &mut run.reports[i];
        for (task, message, duration_ms) in &done.tasks {
            r.changed += 1;
            r.tasks.push(PhaseTask {
                phase: self.name.clone(),
                task: task.clone(),
                status: "changed".into(),
                duration_ms: *duration_ms,
                message: message.clone(),
            });
        }
        if done.reboot.is_some() {
            r.reboot = done.reboot;
        }
        let name = r.name.clone();
        run.observer.event(&Progress::HostDone {
            host: name.clone(),
            phase: self.name.clone(),
            ok: true,
            changed: done.tasks.len(),
            error: None,
        });
        let ok = HostOutcome {
            ok: true,
            error: None,
        };
        if let Err(e) = run.journal.host_result(run.op, &name, &self.name, ok).await {
            tracing::warn!("journal: {e}");
        }
    }
}

/// The pinned host keys of the hosts and their bastions.
async fn load_pins(run: &Run, hosts: &[usize]) -> Result<Pins, Error> {
    let mut pins = BTreeMap::new();
    for &i in hosts {
        let mut target = Some(&run.req.hosts[i].target);
        while let Some(t) = target {
            if let Some(p) = run.journal.pinned_key(&run.req.cluster, &t.host).await? {
                pins.insert(
                    t.host.clone(),
                    HostKey {
                        algorithm: p.algorithm,
                        fingerprint: p.fingerprint,
                    },
                );
            }
            target = t.bastion.as_deref();
        }
    }
    Ok(Pins(pins))
}

impl Job {
    /// One host's part of the phase.
    async fn run(self, session: &mut HostSession) -> Result<Done, Error> {
        let pending = record::load(&self.journal, &self.cluster, &self.host, &self.phase).await?;
        if pending.is_none() && self.plan.is_none() {
            return Ok(Done::default());
        }
        let boot = host::boot_id(session.connection()).await?;
        let apply = self.mode == Mode::Apply;
        match record::decide(pending, &boot, self.plan.is_some()) {
            Decision::Nothing => Ok(Done::default()),
            Decision::AlreadyRebooted(p) => {
                let message = format!(
                    "boot id {} → {boot}: the reboot that operation {} requested happened while no kubegrid waited for it; not rebooted again",
                    p.boot_id, p.operation
                );
                self.note("rebooted", 0, &message).await;
                if apply {
                    record::clear(&self.journal, &self.cluster, &self.host, &self.phase).await?;
                }
                Ok(Done {
                    tasks: vec![("rebooted".into(), message, 0)],
                    reboot: Some(RebootReport {
                        phase: self.phase.clone(),
                        old_boot_id: p.boot_id,
                        new_boot_id: boot,
                        seconds: None,
                        requested_by: p.operation,
                    }),
                })
            }
            Decision::NoLongerNeeded(p) => {
                let message = format!(
                    "the reboot that operation {} requested at boot id {} never happened, and the phase's `when:` no longer holds; request dropped",
                    p.operation, p.boot_id
                );
                self.note("reboot dropped", 0, &message).await;
                if apply {
                    record::clear(&self.journal, &self.cluster, &self.host, &self.phase).await?;
                }
                Ok(Done {
                    tasks: vec![("reboot dropped".into(), message, 0)],
                    reboot: None,
                })
            }
            Decision::Reboot { pending } if !apply => {
                let again = pending.map_or(String::new(), |p| {
                    format!(
                        "; operation {} requested it and it has not happened",
                        p.operation
                    )
                });
                let message = format!(
                    "would reboot {} (boot id {boot}{again}); hosts of this phase reboot in parallel, up to {} at a time",
                    self.host, self.at_once
                );
                self.note("reboot", 0, &message).await;
                Ok(Done {
                    tasks: vec![("reboot".into(), message, 0)],
                    reboot: None,
                })
            }
            Decision::Reboot { pending } => self.reboot(session, boot, pending).await,
        }
    }

    /// Requests the reboot (journaled first) and waits for the host to come back.
    async fn reboot(
        &self,
        session: &mut HostSession,
        boot: String,
        pending: Option<Pending>,
    ) -> Result<Done, Error> {
        let Some(plan) = self.plan else {
            return Ok(Done::default());
        };
        let again = pending.as_ref().map(|p| p.operation);
        let request = match pending {
            Some(p) => p,
            None => {
                let p = Pending {
                    operation: self.op.0,
                    phase: self.phase.clone(),
                    boot_id: boot.clone(),
                    requested_at_ms: now_ms(),
                };
                record::store(&self.journal, &self.cluster, &self.host, &p).await?;
                p
            }
        };
        let requested = match again {
            Some(op) => format!(
                "boot id {boot}; sent again: operation {op} requested it and it has not happened"
            ),
            None => format!("boot id {boot}"),
        };
        self.note("reboot requested", 0, &requested).await;
        self.observer.event(&Progress::TaskStarted {
            host: self.host.clone(),
            phase: self.phase.clone(),
            task: "reboot".into(),
        });
        let started = Instant::now();
        host::request(session.connection()).await?;
        session.connection().close().await;
        let target = session.connection().target().clone();
        let (conn, new) = host::wait_new_boot(
            &target,
            &self.pins,
            &self.ssh,
            &boot,
            started,
            plan.timeout,
            |waited| {
                self.observer.event(&Progress::HostWaiting {
                    host: self.host.clone(),
                    phase: self.phase.clone(),
                    message: format!(
                        "rebooting, waiting for a new boot id ({} s)",
                        waited.as_secs()
                    ),
                })
            },
        )
        .await?;
        session.replace_connection(conn);
        let took = started.elapsed();
        let message = format!("boot id {boot} → {new} after {:.0} s", took.as_secs_f64());
        let took_ms = took.as_millis() as u64;
        self.note("rebooted", took_ms, &message).await;
        record::clear(&self.journal, &self.cluster, &self.host, &self.phase).await?;
        Ok(Done {
            tasks: vec![
                ("reboot requested".into(), requested, 0),
                ("rebooted".into(), message, took_ms),
            ],
            reboot: Some(RebootReport {
                phase: self.phase.clone(),
                old_boot_id: boot,
                new_boot_id: new,
                seconds: Some(took.as_secs_f64()),
                requested_by: request.operation,
            }),
        })
    }

    /// Journals a step and shows it as a finished task (in a dry run too, as the agent's
    /// check-mode tasks are: "would reboot").
    async fn note(&self, task: &str, duration_ms: u64, message: &str) {
        record::note(
            &self.journal,
            self.op,
            &self.host,
            &self.phase,
            task,
            duration_ms,
            message,
        )
        .await;
        self.observer.event(&Progress::TaskFinished {
            host: self.host.clone(),
            phase: self.phase.clone(),
            task: task.to_string(),
            status: "changed".into(),
            message: message.to_string(),
        });
    }
}
