//! Nodes that left the spec: drained and deleted through the API, then reset over SSH; a
//! control-plane or etcd member also leaves etcd in between (before the playbook, see
//! [`Leaving`]). A Node whose drain failed keeps running and stays a member unless the user
//! forces removal.

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    error::Error,
    operation::{self, HostSpec, Mode, Options, Outcome, Request, Run},
    progress::Progress,
    ssh::{Password, SshTarget},
};

/// The progress phase of draining a removed Node and deleting its Kubernetes Node object.
pub const DRAIN_PHASE: &str = "drain";

/// How the engine remembers a member host, so it can still reach one removed from the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    /// Address SSH connects to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Variable holding the password. A password given as a value (the operator's, from a
    /// Secret) is never written to the journal, so it is not recorded here.
    #[serde(default)]
    pub password_env: Option<String>,
    /// sudo for privileged commands.
    #[serde(default)]
    pub sudo: bool,
    /// Jump host.
    #[serde(default)]
    pub bastion: Option<Box<MemberRecord>>,
    /// Roles the host had.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl MemberRecord {
    /// The record of a host of this operation.
    pub fn of(h: &HostSpec) -> Self {
        let mut record = Self::of_target(&h.target);
        record.roles = h.roles.clone();
        record
    }

    fn of_target(t: &SshTarget) -> Self {
        MemberRecord {
            address: t.address.clone(),
            port: t.port,
            user: t.user.clone(),
            key_file: t.key_file.clone(),
            password_env: t.password.as_ref().and_then(|p| p.env()).map(String::from),
            sudo: t.sudo,
            bastion: t.bastion.as_deref().map(|b| Box::new(Self::of_target(b))),
            roles: Vec::new(),
        }
    }

    /// JSON for the journal.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn target(&self, cluster: &str, host: &str) -> SshTarget {
        SshTarget {
            cluster: cluster.to_string(),
            host: host.to_string(),
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
            key_file: self.key_file.clone(),
            password: self.password_env.clone().map(Password::Env),
            sudo: self.sudo,
            bastion: self
                .bastion
                .as_deref()
                .map(|b| Box::new(b.target(cluster, &format!("bastion {}", b.address)))),
        }
    }
}

/// What became of a Node removed from the spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedNode {
    /// Node name.
    pub name: String,
    /// Drained (or forced), deleted and reset.
    pub ok: bool,
    /// What happened, or why it stopped.
    pub detail: String,
}

/// Members the journal knows that the spec no longer lists.
pub async fn absent(run: &Run) -> Result<Vec<(String, MemberRecord)>, Error> {
    let members = run.journal.members(&run.req.cluster).await?;
    Ok(members
        .into_iter()
        .filter(|(name, _)| !run.req.hosts.iter().any(|h| &h.target.host == name))
        .filter_map(|(name, json)| Some((name, serde_json::from_str(&json).ok()?)))
        .collect())
}

/// Which of the absent members a call removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// Workers only, after the playbook.
    Workers,
    /// Control-plane and etcd members, before the playbook: their etcd members go first, so
    /// a replacement joins a cluster that no longer counts the member it replaces.
    Members,
}

impl Leaving {
    fn selects(self, record: &MemberRecord) -> bool {
        let member = record
            .roles
            .iter()
            .any(|r| r == "control-plane" || r == "etcd");
        member == (self == Leaving::Members)
    }
}

/// Drains, deletes and resets the `absent` members ([`absent`]) that `which` selects. A
/// leaving control-plane or etcd member also leaves etcd: with external etcd, `etcdctl member
/// remove` runs on a running member (never on the leaving host, which may be dead) before its
/// host is reset; stacked, `kubeadm reset` on the host removes its member, as upstream's does.
pub async fn remove_absent(
    run: &mut Run,
    client: Option<&kube::Client>,
    absent: Vec<(String, MemberRecord)>,
    which: Leaving,
) -> Result<Vec<RemovedNode>, Error> {
    let mut out = Vec::new();
    for (name, record) in absent.into_iter().filter(|(_, r)| which.selects(r)) {
        // The same machine under a new Node name must not be drained and reset as the old one.
        if let Some(h) = run
            .req
            .hosts
            .iter()
            .find(|h| h.target.address == record.address)
        {
            out.push(RemovedNode {
                name: name.clone(),
                ok: false,
                detail: format!(
                    "its address {} now belongs to Node {}; not draining or resetting a host the spec still lists\n  hint: renaming a Node is removing it and adding a new one: remove it, apply, then add it under the new name",
                    record.address, h.target.host
                ),
            });
            continue;
        }
        let external_member = record.roles.iter().any(|r| r == "etcd");
        if run.req.mode == Mode::Plan {
            out.push(RemovedNode {
                name,
                ok: true,
                detail: if external_member {
                    "would be drained, deleted, removed from etcd and reset".into()
                } else {
                    "would be drained, deleted and reset".into()
                },
            });
            continue;
        }
        let force = run.req.options.force_remove;
        // The operator shows the host as Draining from here until its reset begins.
        run.observer.event(&Progress::TaskStarted {
            host: name.clone(),
            phase: DRAIN_PHASE.into(),
            task: "drain and delete the Node".into(),
        });
        let drained = match client {
            Some(client) => {
                let opts = kubegrid_cluster::DrainOptions {
                    force,
                    ..run.req.options.drain.clone()
                };
                kubegrid_cluster::remove_node(client, &name, &opts)
                    .await
                    .map(|o| describe(&o))
                    .map_err(|e| e.to_string())
            }
            None => Err("the Kubernetes API cannot be reached to drain it".to_string()),
        };
        run.observer.event(&Progress::HostDone {
            host: name.clone(),
            phase: DRAIN_PHASE.into(),
            ok: drained.is_ok() || force,
            changed: 1,
            error: drained.as_ref().err().filter(|_| !force).cloned(),
        });
        let api_note = match (drained, force) {
            (Ok(note), _) => note,
            (Err(why), true) => format!("drain or delete failed ({why}); removal forced"),
            (Err(why), false) => {
                out.push(RemovedNode {
                    name: name.clone(),
                    ok: false,
                    detail: format!(
                        "drain failed: {why}; the Node was not deleted and the host was not reset, but the Node stays cordoned\n  hint: fix what blocks the drain and apply again, pass --force-remove, or take it back with kubectl uncordon {name}"
                    ),
                });
                continue;
            }
        };
        let api_note = if external_member {
            match crate::membership::leave::remove_member(run, &name, &record).await {
                Ok(note) => format!("{api_note}; {note}"),
                Err(why) => {
                    out.push(RemovedNode {
                        name: name.clone(),
                        ok: false,
                        detail: format!(
                            "{api_note}; removing its etcd member failed: {why}; the host was not reset\n  hint: check the other members' health (etcdctl endpoint health --cluster) and apply again"
                        ),
                    });
                    continue;
                }
            }
        } else {
            api_note
        };
        let reset = reset_host(run, &name, &record).await?;
        if reset.outcome == Outcome::Succeeded {
            run.journal.remove_member(&run.req.cluster, &name).await?;
            out.push(RemovedNode {
                name,
                ok: true,
                detail: format!("{api_note}; host reset (operation {})", reset.operation),
            });
        } else {
            let why = reset
                .hosts
                .first()
                .and_then(|h| h.error.clone())
                .unwrap_or_else(|| format!("{:?}", reset.outcome));
            // Forced: a host that is gone for good must not block every later apply.
            if force {
                run.journal.remove_member(&run.req.cluster, &name).await?;
            }
            out.push(RemovedNode {
                name,
                ok: force,
                detail: format!(
                    "{api_note}; resetting the host failed (operation {}): {why}{}",
                    reset.operation,
                    if force {
                        "; forgotten anyway because removal was forced: reset the machine yourself before reusing it"
                    } else {
                        "\n  hint: bring the host back and apply again, or pass --force-remove to forget it"
                    }
                ),
            });
        }
    }
    Ok(out)
}

fn describe(outcome: &kubegrid_cluster::RemovalOutcome) -> String {
    use kubegrid_cluster::RemovalOutcome as R;
    match outcome {
        R::Removed(d) => format!(
            "drained ({} pod(s) evicted) and deleted the Node",
            d.evicted.len()
        ),
        R::ForcedAfterFailedDrain { reason, pods, .. } => format!(
            "drain failed ({reason}; {} pod(s) left); Node deleted because removal was forced",
            pods.len()
        ),
        R::AlreadyAbsent { .. } => "no Node object was left to delete".into(),
    }
}

/// Runs the reset playbook on one host as its own journaled operation. Preflight is skipped:
/// the host is expected to run Kubernetes, which is what the checks refuse.
async fn reset_host(
    run: &Run,
    name: &str,
    record: &MemberRecord,
) -> Result<operation::Report, Error> {
    let mut context = run.req.context.clone();
    context.kubernetes = None;
    let playbook = kubegrid_plan::Playbook::builtin("reset").map_err(|source| Error::Compile {
        host: name.to_string(),
        source: Box::new(source),
    })?;
    let req = Request {
        mode: Mode::Apply,
        cluster: run.req.cluster.clone(),
        spec_digest: run.req.spec_digest.clone(),
        context,
        hosts: vec![HostSpec {
            target: {
                let mut target = record.target(&run.req.cluster, name);
                if target.password.is_none() {
                    target.password = run.req.options.member_passwords.get(name).cloned();
                }
                target
            },
            roles: record.roles.clone(),
            declared_arch: None,
            labels: Default::default(),
            taints: Vec::new(),
            gpu: Default::default(),
        }],
        bundle: Arc::clone(&run.req.bundle),
        playbook: Arc::new(playbook),
        agents: Arc::clone(&run.req.agents),
        options: Options {
            skip_checks: crate::preflight::names()
                .into_iter()
                .map(String::from)
                .collect(),
            cluster_checks: false,
            kubeconfig_out: None,
            ..run.req.options.clone()
        },
    };
    Box::pin(operation::execute(
        req,
        run.journal.clone(),
        Arc::clone(&run.observer),
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(roles: &[&str]) -> MemberRecord {
        MemberRecord {
            address: "10.0.0.1".into(),
            port: 22,
            user: "root".into(),
            key_file: None,
            password_env: None,
            sudo: false,
            bastion: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn members_leave_before_the_playbook_and_workers_after_it() {
        for roles in [
            &["control-plane"][..],
            &["etcd"],
            &["control-plane", "etcd", "worker"],
        ] {
            assert!(Leaving::Members.selects(&record(roles)), "{roles:?}");
            assert!(!Leaving::Workers.selects(&record(roles)), "{roles:?}");
        }
        assert!(Leaving::Workers.selects(&record(&["worker"])));
        assert!(!Leaving::Members.selects(&record(&["worker"])));
    }
}
