//! The playbook's own phases: compiled per host from the spec, templates, bundle and facts,
//! then run as barriers, in batches when the playbook asks for them.

use std::collections::BTreeMap;

use kubegrid_agent::protocol::{PROTOCOL_VERSION, Plan};
use kubegrid_plan::{Batch, PhasePlan};

use super::{
    Phase,
    fan_out::{Job, fan_out},
};
use crate::{
    distribute::{Distribution, swarm},
    error::Error,
    operation::{Mode, Run},
    progress::Progress,
    session::LocalBlob,
};

/// Compiles every live host's plans. Any failure stops the operation before a change.
pub fn compile_all(run: &Run) -> Result<Vec<Vec<PhasePlan>>, Error> {
    let mut all = Vec::with_capacity(run.req.hosts.len());
    for (i, h) in run.req.hosts.iter().enumerate() {
        let Some(facts) = &run.facts[i] else {
            all.push(Vec::new());
            continue;
        };
        let host = h.context(facts.clone(), run.pki[i].clone());
        let plans =
            kubegrid_plan::compile(&run.req.playbook, &run.req.context, &host, &run.req.bundle)
                .map_err(|source| Error::Compile {
                    host: h.target.host.clone(),
                    source: Box::new(source),
                })?;
        all.push(plans);
    }
    Ok(all)
}

/// The phase `name` of the run's playbook compiled for host `i` alone with `ctx` (an upgrade
/// step's versions, or the spec's); `None` when the phase does not select that host.
pub(crate) fn compile_phase(
    run: &Run,
    name: &str,
    i: usize,
    ctx: &kubegrid_plan::ClusterContext,
) -> Result<Option<PhasePlan>, Error> {
    let one = kubegrid_plan::Playbook {
        name: run.req.playbook.name.clone(),
        phases: run
            .req
            .playbook
            .phases
            .iter()
            .filter(|p| p.name == name)
            .cloned()
            .collect(),
    };
    let host_name = &run.req.hosts[i].target.host;
    let facts = run.facts[i].clone().ok_or_else(|| Error::Protocol {
        host: host_name.clone(),
        message: "no facts were read from this host".into(),
    })?;
    let host = run.req.hosts[i].context(facts, run.pki[i].clone());
    let compiled = kubegrid_plan::compile(&one, ctx, &host, &run.req.bundle).map_err(|source| {
        Error::Compile {
            host: host_name.clone(),
            source: Box::new(source),
        }
    })?;
    Ok(compiled.into_iter().find(|p| p.name == name))
}

/// One playbook phase with each host's compiled plan.
#[derive(Debug, Clone)]
pub struct PlaybookPhase {
    /// Phase name.
    pub name: String,
    /// Batch size rule, if the playbook sets one.
    pub batch: Option<Batch>,
    /// Compiled plan by host index (hosts the phase does not select are absent).
    pub plans: BTreeMap<usize, PhasePlan>,
}

impl Phase for PlaybookPhase {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, run: &mut Run) -> Result<(), Error> {
        let hosts: Vec<usize> = run
            .live()
            .into_iter()
            .filter(|i| self.plans.get(i).is_some_and(|p| !p.tasks.is_empty()))
            .collect();
        if hosts.is_empty() {
            return Ok(());
        }
        let size = self.batch.map_or(hosts.len(), |b| b.size(hosts.len()));
        for batch in hosts.chunks(size) {
            let mut jobs = Vec::with_capacity(batch.len());
            for &index in batch {
                let p = &self.plans[&index];
                let blobs = p
                    .blobs
                    .iter()
                    .map(|sha| {
                        let file = run.req.bundle.file(sha).ok_or_else(|| Error::Protocol {
                            host: run.reports[index].name.clone(),
                            message: format!(
                                "the plan needs {sha}, which the bundle does not list"
                            ),
                        })?;
                        Ok(LocalBlob {
                            sha256: sha.clone(),
                            size: file.size,
                            path: run.req.bundle.dir().join(&file.path),
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                jobs.push(Job {
                    index,
                    plan: Plan {
                        protocol: PROTOCOL_VERSION,
                        phase: self.name.clone(),
                        check_mode: run.req.mode == Mode::Plan,
                        store_dir: None,
                        state_dir: None,
                        blobs: Vec::new(),
                        tasks: p.tasks.clone(),
                    },
                    blobs,
                    persist: true,
                });
            }
            let mode = run.req.options.distribution;
            if matches!(mode, Distribution::P2p | Distribution::Auto) {
                let mut p2p = run.req.options.p2p;
                if mode == Distribution::Auto {
                    p2p.min_hosts = swarm::AUTO_MIN_HOSTS;
                }
                let wanted = jobs
                    .iter()
                    .filter(|j| !j.plan.check_mode)
                    .map(|j| (j.index, j.blobs.clone()))
                    .collect();
                let names: Vec<String> = run.reports.iter().map(|r| r.name.clone()).collect();
                swarm::spread(
                    &mut run.distributor.swarm,
                    &mut run.sessions,
                    &names,
                    wanted,
                    p2p,
                    &self.name,
                    run.observer.clone(),
                )
                .await;
            }
            for job in jobs.iter().filter(|j| !j.plan.check_mode) {
                if let Some(session) = run.sessions[job.index].as_mut() {
                    let mode = run.req.options.distribution;
                    run.distributor.route(mode, session, &job.blobs).await;
                }
            }
            for d in fan_out(run, &self.name, jobs).await {
                match d.result {
                    Ok(outcome) => {
                        run.add_tasks(d.index, &self.name, &outcome.tasks);
                        match outcome.failure {
                            Some(why) => run.fail_host(d.index, &self.name, why).await,
                            None => {
                                let name = run.reports[d.index].name.clone();
                                run.observer.event(&Progress::HostDone {
                                    host: name.clone(),
                                    phase: self.name.clone(),
                                    ok: true,
                                    changed: outcome.changed(),
                                    error: None,
                                });
                                let ok = kubegrid_journal::HostOutcome {
                                    ok: true,
                                    error: None,
                                };
                                if let Err(e) =
                                    run.journal.host_result(run.op, &name, &self.name, ok).await
                                {
                                    tracing::warn!("journal: {e}");
                                }
                            }
                        }
                    }
                    Err(e) => run.fail_host(d.index, &self.name, e.to_string()).await,
                }
            }
        }
        run.observer.event(&Progress::PhaseFinished {
            phase: self.name.clone(),
        });
        Ok(())
    }
}
