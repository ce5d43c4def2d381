//! Phase one: connect (pinning host keys), find each host's architecture and agent, and gather
//! facts. Read-only on hosts, apart from placing the agent (apply only).

use std::{collections::BTreeMap, sync::Arc};

use kubegrid_agent::protocol::{Action, PROTOCOL_VERSION, Plan, Task};
use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    Phase,
    fan_out::{Job, fan_out},
};
use crate::{
    error::Error,
    operation::{Mode, Run},
    session::HostSession,
    ssh::{Connection, HostKey, KeyPins},
};

/// Connect, probe and gather facts.
#[derive(Debug, Clone, Copy)]
pub struct Facts;

/// Pins loaded from the journal before connecting.
struct Pins(BTreeMap<String, HostKey>);

impl KeyPins for Pins {
    fn pinned(&self, host: &str) -> Option<HostKey> {
        self.0.get(host).cloned()
    }
}

impl Phase for Facts {
    fn name(&self) -> &str {
        "facts"
    }

    async fn run(&self, run: &mut Run) -> Result<(), Error> {
        let mut pins = BTreeMap::new();
        for h in &run.req.hosts {
            if let Some(p) = run
                .journal
                .pinned_key(&run.req.cluster, &h.target.host)
                .await?
            {
                pins.insert(
                    h.target.host.clone(),
                    HostKey {
                        algorithm: p.algorithm,
                        fingerprint: p.fingerprint,
                    },
                );
            }
        }
        let pins = Arc::new(Pins(pins));
        let limit = Arc::new(Semaphore::new(run.req.options.parallel.max(1)));
        let mut set = JoinSet::new();
        for (i, h) in run.req.hosts.iter().enumerate() {
            let (target, opts, agents) = (
                h.target.clone(),
                run.req.options.ssh.clone(),
                run.req.agents.clone(),
            );
            let (pins, limit) = (pins.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = async {
                    let conn = Connection::open(&target, &*pins, &opts).await?;
                    let mut session = HostSession::new(conn);
                    session.probe(&agents).await?;
                    Ok::<_, Error>(session)
                }
                .await;
                (i, result)
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((i, result)) = joined else { continue };
            match result {
                Ok(session) => {
                    let key = session.connection().host_key().clone();
                    let t = &run.req.hosts[i].target;
                    if !pins.0.contains_key(&t.host) {
                        run.journal
                            .pin_key(
                                &run.req.cluster,
                                &t.host,
                                &crate::ssh::host_port(&t.address, t.port),
                                &key.algorithm,
                                &key.fingerprint,
                            )
                            .await?;
                    }
                    run.reports[i].agent = session.agent_used();
                    run.sessions[i] = Some(session);
                }
                Err(e) => failed.push((i, e.to_string())),
            }
        }
        for (i, why) in failed {
            run.fail_host(i, self.name(), why).await;
        }
        let mut jobs = Vec::new();
        for index in run.live() {
            let h = &run.req.hosts[index];
            let host = h.context(Default::default(), BTreeMap::new());
            let mut args = kubegrid_plan::facts_probes(&run.req.playbook, &run.req.context, &host)
                .map_err(|source| Error::Compile {
                    host: h.target.host.clone(),
                    source: Box::new(source),
                })?;
            // What an installed host runs, for preflight's `version-change` check.
            args.versions.extend(
                crate::preflight::VERSION_PATHS
                    .iter()
                    .map(std::path::PathBuf::from),
            );
            jobs.push(Job {
                index,
                plan: Plan {
                    protocol: PROTOCOL_VERSION,
                    phase: self.name().to_string(),
                    check_mode: run.req.mode == Mode::Plan,
                    store_dir: None,
                    state_dir: None,
                    blobs: Vec::new(),
                    tasks: vec![Task {
                        name: "gather facts".into(),
                        action: Action::Facts(args),
                        always: false,
                    }],
                },
                blobs: Vec::new(),
                persist: false,
            });
        }
        for d in fan_out(run, self.name(), jobs).await {
            let outcome = match d.result {
                Ok(o) => o,
                Err(e) => {
                    run.fail_host(d.index, self.name(), e.to_string()).await;
                    continue;
                }
            };
            match (outcome.failure, outcome.facts) {
                (None, Some(facts)) => {
                    // The host read its clock somewhere inside the round trip, but where is
                    // unknown (an agent upload may come first), so only a reading outside
                    // [sent, done] proves skew, by its distance from that window.
                    let t = facts.time_unix_ms as i64;
                    let (sent, done) = (d.sent_ms as i64, d.done_ms as i64);
                    run.clock_offsets[d.index] = if t < sent {
                        t - sent
                    } else if t > done {
                        t - done
                    } else {
                        0
                    };
                    if let Some(s) = run.sessions[d.index].as_mut() {
                        s.note_store(facts.store.iter().cloned());
                    }
                    run.facts[d.index] = Some(facts);
                }
                (Some(why), _) => run.fail_host(d.index, self.name(), why).await,
                (None, None) => {
                    run.fail_host(d.index, self.name(), "the agent returned no facts".into())
                        .await
                }
            }
        }
        Ok(())
    }
}
