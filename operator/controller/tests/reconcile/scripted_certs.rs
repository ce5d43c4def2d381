//! The scripted runner's certificates operations, shaped like the engine's `certs`
//! operation: journaled as kind `certs`, reporting what the scenario's script says (by
//! default every Node holds an `apiserver` certificate that expires in a year).

use std::sync::Mutex;

use kubegrid_controller::runner::{CertsJob, Job, RunOutcome, RunResult};
use kubegrid_engine::certs::{
    CertRow, CertsReport, JournalMatch, NodeCerts, Renewed, RotationReport,
};
use kubegrid_journal::{FinalStatus, Journal, NewOperation, OperationKind};

use crate::scripted::ScriptedRunner;

/// What one scripted certificates operation reports.
pub struct Scripted {
    /// How it ended.
    pub outcome: RunOutcome,
    /// Its report.
    pub report: CertsReport,
    /// The admin kubeconfig in the journal afterwards.
    pub kubeconfig: Option<String>,
}

/// What a scenario scripts: the report of call `n` (0-based, per action) of each job.
pub type Script = dyn Fn(CertsJob, &[String], usize) -> Scripted + Send + Sync;

/// One certificates call, as it happened.
#[derive(Debug, Clone)]
pub struct CertsCall {
    /// What it was asked.
    pub job: CertsJob,
}

/// The scripted certificates operations of a bed.
pub struct CertsScript {
    /// Every call, in order.
    pub calls: Mutex<Vec<CertsCall>>,
    /// What each reports.
    pub script: Mutex<Box<Script>>,
}

impl Default for CertsScript {
    fn default() -> Self {
        Self {
            calls: Mutex::default(),
            script: Mutex::new(Box::new(|job, nodes, _| Scripted {
                outcome: RunOutcome::Succeeded,
                report: report(job, nodes, 365),
                kubeconfig: None,
            })),
        }
    }
}

/// A report in which every Node holds an `apiserver` certificate (signed by the journal's
/// CA) that expires in `days` days, plus the cluster CA for ten years.
pub fn report(job: CertsJob, nodes: &[String], days: i64) -> CertsReport {
    let at = |days: i64| {
        k8s_openapi::jiff::Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(days * 24))
            .unwrap()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap()
            .to_string()
    };
    let row = |name: &str, file: &str, days: i64, ca: bool| CertRow {
        name: name.into(),
        file: file.into(),
        subject: format!("CN={name}"),
        issuer: "CN=kubernetes".into(),
        not_after: at(days),
        days_left: days,
        ca,
        fingerprint: format!("sha256:{name}{days}"),
        journal: if ca {
            JournalMatch::Matches
        } else {
            JournalMatch::Signed
        },
        ..CertRow::default()
    };
    CertsReport {
        action: match job {
            CertsJob::Check { .. } => "check",
            CertsJob::Renew => "renew",
            CertsJob::RotateCa(_) => "rotate-ca",
        }
        .into(),
        warn_days: 120,
        nodes: nodes
            .iter()
            .map(|n| NodeCerts {
                node: n.clone(),
                reachable: true,
                certificates: vec![
                    row("ca", "/etc/kubernetes/pki/ca.crt", 3650, true),
                    row(
                        "apiserver",
                        "/etc/kubernetes/pki/apiserver.crt",
                        days,
                        false,
                    ),
                ],
            })
            .collect(),
        renewed: match job {
            CertsJob::Renew => nodes
                .iter()
                .map(|n| Renewed {
                    node: n.clone(),
                    name: "apiserver".into(),
                    file: "/etc/kubernetes/pki/apiserver.crt".into(),
                    old_not_after: at(10),
                    new_not_after: at(days),
                })
                .collect(),
            _ => Vec::new(),
        },
        rotation: match job {
            CertsJob::RotateCa(ca) => Some(RotationReport {
                ca,
                phase: "done".into(),
                completed: ["new-ca", "trust-both", "reissue", "drop-old"]
                    .map(String::from)
                    .to_vec(),
                resumed: false,
            }),
            _ => None,
        },
        ..CertsReport::default()
    }
}

impl ScriptedRunner {
    /// Runs a certificates job as the script says, journaled like the engine.
    pub(crate) async fn certs(
        &self,
        certs: CertsJob,
        job: &Job,
        journal: &Journal,
        nodes: Vec<String>,
    ) -> kubegrid_controller::Result<RunResult> {
        let op = journal
            .begin(NewOperation {
                kind: OperationKind::Certs,
                cluster: job.cluster.clone(),
                spec_digest: job.spec_digest.clone(),
                hosts: nodes.clone(),
            })
            .await?;
        let before = {
            let mut calls = self.certs.calls.lock().unwrap();
            let before = calls
                .iter()
                .filter(|c| std::mem::discriminant(&c.job) == std::mem::discriminant(&certs))
                .count();
            calls.push(CertsCall { job: certs });
            before
        };
        let scripted = (self.certs.script.lock().unwrap())(certs, &nodes, before);
        let status = if scripted.outcome == RunOutcome::Succeeded {
            FinalStatus::Succeeded
        } else {
            FinalStatus::Failed
        };
        journal.finish(op, status, None).await?;
        self.tick.send_modify(|n| *n += 1);
        Ok(RunResult {
            operation: op.0,
            outcome: scripted.outcome,
            hosts: Vec::new(),
            removed: Vec::new(),
            kubeconfig: scripted.kubeconfig,
            host_keys: Default::default(),
            upgrade: None,
            certs: Some(scripted.report),
            serving: None,
        })
    }
}
