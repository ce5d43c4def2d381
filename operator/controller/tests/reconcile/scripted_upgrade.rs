//! The scripted runner's upgrade, shaped like the engine's (`kubegrid_engine::upgrade`): it
//! plans from the hosts' state (the journal's installed version, each Node's kubelet), stops
//! before a step when `spec.upgrade.paused` is set, sends `upgrade step <id>` and then the
//! playbook phases per host, records the installed version after `kubeadm-apply`, and
//! reports an upgrade summary. The failures a plan names: phase `blocked` is a planner
//! blocker on that Node (nothing runs); any other phase fails that Node in it (left cordoned).

use std::{collections::BTreeMap, sync::atomic::Ordering};

use kubegrid_api::NodeVersions;
use kubegrid_controller::runner::{
    HostOutcome, Job, RunOutcome, RunResult, UpgradeSummary, node_facts,
};
use kubegrid_engine::progress::{Observer, Progress};
use kubegrid_journal::{FinalStatus, Journal, OperationId};

use crate::scripted::{ScriptedRunner, host_facts};

/// One planned step: its id, Node and the playbook phases it runs there.
struct Step {
    id: String,
    node: String,
    phases: &'static [&'static str],
    apply: bool,
}

impl ScriptedRunner {
    /// Runs an upgrade job as the engine would.
    pub(crate) async fn upgrade(
        &self,
        job: &Job,
        journal: &Journal,
        observer: &dyn Observer,
        op: OperationId,
        failing: &[(&'static str, &'static str, &'static str)],
    ) -> kubegrid_controller::Result<RunResult> {
        let target = job
            .manifest
            .cluster()
            .spec
            .kubernetes_version
            .trim_start_matches('v')
            .to_string();
        let nodes: Vec<(String, bool)> = job
            .manifest
            .nodes()
            .iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let cp = n
                    .spec
                    .roles_column()
                    .is_some_and(|r| r.contains("control-plane"));
                (name, cp)
            })
            .collect();
        let installed = journal
            .installed_version(&job.cluster)
            .await?
            .unwrap_or_default();
        let kubelet = |node: &str| {
            self.upgraded
                .lock()
                .unwrap()
                .get(node)
                .cloned()
                .unwrap_or_else(|| "1.31.4".into())
        };
        let mut steps = Vec::new();
        if let Some((cp, _)) = nodes.iter().find(|(_, cp)| *cp)
            && installed != target
        {
            steps.push(Step {
                id: format!("kubeadm-apply/{cp}/{target}"),
                node: cp.clone(),
                phases: &["kubeadm-apply"],
                apply: true,
            });
        }
        for (node, cp) in &nodes {
            if kubelet(node) != target {
                steps.push(Step {
                    id: format!("roll/{node}/{target}"),
                    node: node.clone(),
                    phases: if *cp {
                        &["node-kubelet"]
                    } else {
                        &["kubeadm-node", "node-kubelet"]
                    },
                    apply: false,
                });
            }
        }
        let mut summary = UpgradeSummary {
            planned: steps.iter().map(|s| s.id.clone()).collect(),
            ..UpgradeSummary::default()
        };
        summary.blockers = failing
            .iter()
            .filter(|(_, phase, _)| *phase == "blocked")
            .map(|(node, _, why)| format!("{node}: {why}"))
            .collect();
        let mut failed: Option<(String, String, String)> = None;
        let paused = job
            .upgrade
            .as_ref()
            .map(|u| u.paused.clone())
            .expect("an upgrade job");
        let mut gated = false;
        if summary.blockers.is_empty() {
            for step in &steps {
                if paused.load(Ordering::SeqCst) {
                    summary.paused = true;
                    break;
                }
                self.steps_run.lock().unwrap().push(step.id.clone());
                observer.event(&Progress::PhaseStarted {
                    phase: format!("upgrade step {}", step.id),
                    hosts: 1,
                });
                // Like the engine: every Node's versions are read again before a step.
                for (node, _) in &nodes {
                    observer.event(&Progress::TaskStarted {
                        host: node.clone(),
                        phase: "upgrade-state".into(),
                        task: "read component versions".into(),
                    });
                    observer.event(&Progress::HostDone {
                        host: node.clone(),
                        phase: "upgrade-state".into(),
                        ok: true,
                        changed: 0,
                        error: None,
                    });
                }
                for phase in step.phases {
                    observer.event(&Progress::PhaseStarted {
                        phase: phase.to_string(),
                        hosts: 1,
                    });
                    observer.event(&Progress::TaskStarted {
                        host: step.node.clone(),
                        phase: phase.to_string(),
                        task: "stand-in task".into(),
                    });
                    if !step.apply && !gated {
                        // Mid-roll: a test can look at the status here, or pause the roll.
                        gated = true;
                        let mut gate = self.gate.clone();
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    let failure = failing
                        .iter()
                        .find(|(h, p, _)| *h == step.node && p == phase)
                        .map(|(_, _, e)| e.to_string());
                    observer.event(&Progress::HostDone {
                        host: step.node.clone(),
                        phase: phase.to_string(),
                        ok: failure.is_none(),
                        changed: 1,
                        error: failure.clone(),
                    });
                    observer.event(&Progress::PhaseFinished {
                        phase: phase.to_string(),
                    });
                    if let Some(why) = failure {
                        failed = Some((step.node.clone(), phase.to_string(), why));
                        break;
                    }
                }
                if let Some((node, phase, why)) = &failed {
                    summary.stopped = Some(format!(
                        "step {} failed: {node} failed in {phase}: {why}",
                        step.id
                    ));
                    summary
                        .left
                        .insert(node.clone(), "cordoned: failed after its drain".into());
                    break;
                }
                if step.apply {
                    journal.put_installed_version(&job.cluster, &target).await?;
                } else {
                    self.upgraded
                        .lock()
                        .unwrap()
                        .insert(step.node.clone(), target.clone());
                }
                summary.done.push(step.id.clone());
            }
        }
        let outcome = if !summary.blockers.is_empty() {
            RunOutcome::PreflightFailed(summary.blockers.clone())
        } else if failed.is_some() {
            RunOutcome::HostsFailed
        } else {
            RunOutcome::Succeeded
        };
        let hosts = nodes
            .iter()
            .map(|(name, _)| {
                let failure = failed.as_ref().filter(|(n, _, _)| n == name);
                HostOutcome {
                    name: name.clone(),
                    ok: failure.is_none(),
                    failed_phase: failure.map(|(_, p, _)| p.clone()),
                    error: failure.map(|(_, _, e)| e.clone()),
                    facts: Some(node_facts(&host_facts(name))),
                    versions: Some(NodeVersions {
                        kubelet: Some(format!("v{}", kubelet(name))),
                        containerd: Some("v1.7.24".into()),
                    }),
                }
            })
            .collect();
        let status = if outcome == RunOutcome::Succeeded {
            FinalStatus::Succeeded
        } else {
            FinalStatus::Failed
        };
        journal.finish(op, status, None).await?;
        Ok(RunResult {
            operation: op.0,
            outcome,
            hosts,
            removed: Vec::new(),
            kubeconfig: None,
            host_keys: BTreeMap::new(),
            upgrade: Some(summary),
            certs: None,
            serving: None,
        })
    }
}
