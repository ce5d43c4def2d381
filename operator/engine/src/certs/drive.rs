//! A certificates operation end to end: facts, the inventory, and for a renewal or rotation
//! the refusals before any change (a Node unreachable, etcd unhealthy, an API server not
//! ready), the roll, the admin kubeconfig, and the inventory again as the report's final word.

use std::time::Instant;

use kubegrid_pki::IssuedCert;

use super::{
    CertsAction, CertsReport,
    api::{READY_TIMEOUT, ReadyCheck},
    inventory::{self, Held},
    renew, rotate,
};
use crate::{
    error::Error,
    operation::{Outcome, PhaseTime, Run},
    phases::{self, Phase},
};

/// Runs a certificates operation after its hosts are connected.
pub(crate) async fn drive(run: &mut Run) -> Result<Outcome, Error> {
    let action = run.req.options.certs.action.clone();
    let warn_days = match &action {
        CertsAction::Check { warn_days } => *warn_days,
        _ => 30,
    };
    let mut report = CertsReport {
        action: action.name().into(),
        warn_days,
        ..CertsReport::default()
    };
    let started = Instant::now();
    phases::Facts.run(run).await?;
    let unreachable: Vec<String> = run
        .reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.name.clone())
        .collect();
    let inventory = inventory::read(run).await;
    let mut held = Held::load(run).await?;
    run.phase_times.push(PhaseTime {
        phase: inventory::PHASE.into(),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    if matches!(action, CertsAction::Check { .. }) {
        inventory::fill(run, &mut report, &inventory, &held);
        run.certs = Some(report);
        return Ok(if unreachable.is_empty() {
            Outcome::Succeeded
        } else {
            Outcome::Unreachable
        });
    }
    if !unreachable.is_empty() {
        report.blockers.push(format!(
            "{} did not answer; a {} changes every Node in turn and must reach all of them",
            unreachable.join(", "),
            action.name()
        ));
        inventory::fill(run, &mut report, &inventory, &held);
        run.certs = Some(report);
        return Ok(Outcome::Unreachable);
    }
    let mut ready = ready_check(run, &held)?;
    blockers(run, &mut report, &ready).await;
    if !report.blockers.is_empty() {
        inventory::fill(run, &mut report, &inventory, &held);
        run.certs = Some(report);
        return Ok(Outcome::PreflightFailed);
    }
    let admin_before = held.by_name.get("admin").map(|a| a.cert_pem.clone());
    let started = Instant::now();
    let finished = match &action {
        CertsAction::Renew { only } => {
            renew::run_renewal(run, &mut report, &inventory, &mut held, only, &ready).await?
        }
        CertsAction::RotateCa { ca } => {
            let client = api_client(run, &held).await;
            let inputs = rotate::Inputs {
                inventory: &inventory,
                held: &mut held,
                ca: *ca,
                ready: &mut ready,
                client: client.as_ref(),
            };
            rotate::run_rotation(run, &mut report, inputs).await?
        }
        CertsAction::Check { .. } => true,
    };
    run.phase_times.push(PhaseTime {
        phase: format!("certs-{}", action.name()),
        wall_ms: started.elapsed().as_millis() as u64,
    });
    if held.by_name.get("admin").map(|a| &a.cert_pem) != admin_before.as_ref() {
        write_admin_kubeconfig(run, &held, &mut report).await?;
    }
    // The report ends with what the hosts hold now.
    let after = inventory::read(run).await;
    let renewed = std::mem::take(&mut report.renewed);
    inventory::fill(run, &mut report, &after, &held);
    report.renewed = renewed;
    run.certs = Some(report);
    Ok(if finished && run.reports.iter().all(|r| r.ok) {
        Outcome::Succeeded
    } else {
        Outcome::HostsFailed
    })
}

/// How a control-plane Node's API server is asked whether it is ready, with the journal's
/// admin certificate and cluster CA (both, while a rotation of it is under way).
fn ready_check(run: &Run, held: &Held) -> Result<ReadyCheck, Error> {
    let missing = |what: &str| Error::Rotation {
        cluster: run.req.cluster.clone(),
        message: format!(
            "kubegrid's journal holds no {what} for this cluster\n  hint: a cluster kubegrid installed has one; run `kubegrid apply` with this spec and journal first"
        ),
    };
    let admin = held
        .by_name
        .get("admin")
        .ok_or_else(|| missing("admin certificate"))?;
    let ca = held
        .by_name
        .get("kubernetes-ca")
        .ok_or_else(|| missing("Kubernetes CA"))?;
    let ca_pem = match held.by_name.get("kubernetes-ca-next") {
        Some(next) => kubegrid_pki::trust_bundle(&ca.cert_pem, Some(&next.cert_pem)),
        None => ca.cert_pem.clone(),
    };
    Ok(ReadyCheck {
        cluster: run.req.cluster.clone(),
        port: run
            .req
            .context
            .kubernetes
            .as_ref()
            .map_or(kubegrid_plan::API_SERVER_BIND_PORT, |k| k.bind_port()),
        ca_pem,
        admin: IssuedCert {
            cert_pem: admin.cert_pem.clone(),
            key_pem: admin.key_pem.clone(),
        },
        timeout: READY_TIMEOUT,
    })
}

/// What refuses a renewal or rotation before any change: an unhealthy etcd member, an API
/// server that is not ready.
async fn blockers(run: &mut Run, report: &mut CertsReport, ready: &ReadyCheck) {
    let etcd = crate::upgrade::state::etcd_health(run).await;
    for (i, ok) in etcd {
        if !ok {
            report.blockers.push(format!(
                "etcd member {} does not answer `etcdctl endpoint health`; restarting members one by one needs every member healthy\n  hint: journalctl -u etcd on {0}",
                run.req.hosts[i].target.host
            ));
        }
    }
    for h in run.req.hosts.iter().filter(|h| h.has_role("control-plane")) {
        if let Err(why) = ready.once(&h.target.address).await {
            report.blockers.push(format!(
                "the API server on {} is not ready: {why}; kubegrid restarts control-plane Nodes one by one and needs each ready before the next\n  hint: check its kube-apiserver static pod",
                h.target.host
            ));
        }
    }
}

/// A client of the cluster's API at its endpoint, for the CA's ConfigMaps; `None` when it
/// cannot be built (the rotation then reports the API step's failure).
async fn api_client(run: &Run, held: &Held) -> Option<kube::Client> {
    let kubeconfig = admin_kubeconfig(run, held).ok()?;
    kubegrid_cluster::connect(&kubeconfig).await.ok()
}

/// The admin kubeconfig from the journal's admin certificate, trusting the cluster CA (and the
/// one being rotated in).
fn admin_kubeconfig(run: &Run, held: &Held) -> Result<String, Error> {
    let k = run
        .req
        .context
        .kubernetes
        .as_ref()
        .ok_or_else(|| Error::Protocol {
            host: run.req.cluster.clone(),
            message: "a certificates operation needs the spec's Kubernetes settings".into(),
        })?;
    let ready = ready_check(run, held)?;
    kubegrid_pki::kubeconfig(
        &run.req.cluster,
        &crate::kubernetes::server_url(&k.endpoint_host, k.endpoint_port),
        &ready.ca_pem,
        kubegrid_pki::ADMIN_USER,
        &ready.admin,
    )
    .map_err(|e| Error::Pki {
        what: "admin kubeconfig".into(),
        source: Box::new(e),
    })
}

/// Keeps the new admin kubeconfig in the journal (the operator's Secret follows it) and writes
/// it where the caller asked.
async fn write_admin_kubeconfig(
    run: &Run,
    held: &Held,
    report: &mut CertsReport,
) -> Result<(), Error> {
    let text = admin_kubeconfig(run, held)?;
    let server = run
        .req
        .context
        .kubernetes
        .as_ref()
        .map(|k| crate::kubernetes::server_url(&k.endpoint_host, k.endpoint_port))
        .unwrap_or_default();
    run.journal
        .put_kubeconfig(&run.req.cluster, &server, &text)
        .await?;
    if let Some(path) = &run.req.options.kubeconfig_out
        && let Err(e) = crate::kubernetes::write_private(path, &text)
    {
        report.errors.push(
            Error::WriteKubeconfig {
                path: path.clone(),
                source: e,
            }
            .to_string(),
        );
    }
    Ok(())
}
