//! The certificates watch: after the install the operator checks every Node's certificates
//! and writes `status.certificates`, the `CertificatesExpiring` condition (its Warning
//! Event once), and the expiry metric; it renews leaves within `renewBefore` unless
//! `autoRenew: false`; `kubegrid.io/rotate-ca` runs a rotation and is removed after it; no
//! key material reaches status or Events. The engine is the scripted runner
//! (`scripted_certs.rs`).

use std::{sync::Arc, time::Duration};

use kubegrid_controller::runner::{CertsJob, RunOutcome};
use serde_json::{Value, json};

use crate::{
    common::*,
    scripted_certs::{Scripted, report},
};

on_both!(
    a_check_after_the_install_writes_status_the_condition_once_and_the_metric,
    a_leaf_within_renew_before_is_renewed_and_the_kubeconfig_secret_rewritten,
    with_auto_renew_off_the_operator_only_warns,
    an_unknown_rotate_ca_value_is_refused_without_an_operation,
    no_key_material_reaches_status_or_events,
);

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

/// [`fake`] with the Nodes on loopback addresses: after a renewal the operator reads what
/// their ports serve, and tests reach nothing but loopback. `certificates` is
/// `spec.certificates`.
fn fake_on_loopback(certificates: Value) -> kubegrid_fake_apiserver::FakeCluster {
    let fake = fake(true, "Orphan");
    fake.put(node("cp-1", "127.0.0.11", "control-plane"));
    fake.put(node("gpu-1", "127.0.0.21", "worker"));
    if !certificates.is_null() {
        let mut c = cluster(&fake);
        c["spec"]["certificates"] = certificates;
        c["spec"]["controlPlaneEndpoint"]["address"] = json!("127.0.0.11");
        fake.put(c);
    }
    fake
}

fn certificates(bed: &Bed) -> Value {
    cluster(bed)["status"]["certificates"].clone()
}

fn count(bed: &Bed, reason: &str) -> usize {
    let prefix = format!("{reason}: ");
    events(bed)
        .iter()
        .filter(|e| e.starts_with(&prefix))
        .count()
}

fn jobs(bed: &Bed) -> Vec<CertsJob> {
    bed.certs
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.job)
        .collect()
}

fn renewals(bed: &Bed) -> usize {
    jobs(bed).iter().filter(|j| **j == CertsJob::Renew).count()
}

/// Scripts every check to report the `apiserver` certificates expiring in `days` days, and
/// every renewal to leave them a year away.
fn expiring_in(bed: &Bed, days: i64) {
    *bed.certs.script.lock().unwrap() = Box::new(move |job, nodes, _| Scripted {
        outcome: RunOutcome::Succeeded,
        report: report(job, nodes, if job == CertsJob::Renew { 365 } else { days }),
        kubeconfig: (job == CertsJob::Renew)
            .then(|| "apiVersion: v1\nkind: Config\n# renewed\n".into()),
    });
}

async fn a_check_after_the_install_writes_status_the_condition_once_and_the_metric(
    backend: Backend,
) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    // Within warnBefore (120 days), not within renewBefore (30 days).
    expiring_in(&bed, 60);
    let (_stop, _task, metrics) = bed.start("op-a", Duration::from_secs(2)).await;
    let status = eventually(&bed, "status.certificates.lastChecked", |f| {
        let c = cluster(f)["status"]["certificates"].clone();
        c["lastChecked"].is_string().then_some(c)
    })
    .await;
    assert_eq!(status["earliestExpiry"]["name"], "apiserver", "{status:#}");
    assert_eq!(
        status["earliestExpiry"]["file"],
        "/etc/kubernetes/pki/apiserver.crt"
    );
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{status:#}");
    for n in nodes {
        assert_eq!(
            (
                n["certificates"].as_u64(),
                n["expiring"].as_u64(),
                n["flagged"].as_u64()
            ),
            (Some(2), Some(1), Some(0)),
            "{n:#}"
        );
    }
    let c = condition(&bed, "CertificatesExpiring").expect("the condition");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("WithinWarnBefore")),
        "{c:#}"
    );
    assert_eq!(
        jobs(&bed),
        [CertsJob::Check { warn_days: 120 }],
        "no renewal outside renewBefore"
    );
    let text = metrics.render();
    assert!(
        text.contains("kubegrid_certificate_expiry_timestamp_seconds{cluster=\"fleet/gpu\",node=\"cp-1\",certificate=\"apiserver\"}"),
        "{text}"
    );
    // A rotation asked for: it runs, the annotation goes, and the hosts are read again.
    let mut c = cluster(&bed);
    c["metadata"]["annotations"]["kubegrid.io/rotate-ca"] = json!("etcd");
    bed.put(c).await;
    eventually(&bed, "the annotation removed", |f| {
        cluster(f)["metadata"]["annotations"]
            .get("kubegrid.io/rotate-ca")
            .is_none()
            .then_some(())
    })
    .await;
    eventually(&bed, "a check after the rotation", |_| {
        (jobs(&bed).len() >= 3).then_some(())
    })
    .await;
    let calls = jobs(&bed);
    assert_eq!(
        calls[1],
        CertsJob::RotateCa(kubegrid_engine::certs::CaKind::Etcd),
        "{calls:?}"
    );
    assert!(matches!(calls[2], CertsJob::Check { .. }), "{calls:?}");
    eventually(&bed, "the rotation's progress in status", |f| {
        let r = cluster(f)["status"]["certificates"]["rotation"].clone();
        (r["phase"] == "done" && r["ca"] == "etcd").then_some(())
    })
    .await;
    assert_eq!(count(&bed, "RotationFinished"), 1, "{:#?}", events(&bed));
    // The condition stayed True through both checks: one Warning.
    assert_eq!(
        count(&bed, "CertificatesExpiring"),
        1,
        "{:#?}",
        events(&bed)
    );
    assert_eq!(bed.calls().len(), 1, "one install: {:#?}", bed.calls());
}

async fn a_leaf_within_renew_before_is_renewed_and_the_kubeconfig_secret_rewritten(
    backend: Backend,
) {
    let bed = Bed::on(backend, fake_on_loopback(Value::Null), true, never_fails()).await;
    expiring_in(&bed, 10);
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let status = eventually(&bed, "status.certificates.lastRenewed", |f| {
        let c = cluster(f)["status"]["certificates"].clone();
        c["lastRenewed"].is_string().then_some(c)
    })
    .await;
    assert_eq!(renewals(&bed), 1, "{:?}", jobs(&bed));
    for e in ["RenewalStarted", "RenewalFinished", "KubeconfigUpdated"] {
        assert_eq!(count(&bed, e), 1, "{e}: {:#?}", events(&bed));
    }
    // The renewal's own read: a year left, nothing expiring within renewBefore.
    assert_eq!(status["nodes"][0]["expiring"], 0, "{status:#}");
    // Nothing listens on the loopback Nodes' ports: never reported as verified.
    let served = status["served"].as_array().unwrap();
    assert_eq!(
        served.len(),
        4,
        "6443 and 2379 on cp-1, 10250 on both: {status:#}"
    );
    for s in served {
        assert_eq!(s["answered"], false, "{s:#}");
        assert!(s.get("matches").is_none(), "{s:#}");
        assert!(
            s["message"].as_str().unwrap().starts_with("did not answer"),
            "{s:#}"
        );
    }
    let finished = events(&bed)
        .into_iter()
        .find(|e| e.starts_with("RenewalFinished: "))
        .unwrap();
    assert!(
        finished.contains("0 of 4 port(s)") && finished.contains("4 did not answer"),
        "{finished}"
    );
    let secret = bed
        .get_object("v1", "Secret", NS, "gpu-kubeconfig")
        .expect("the kubeconfig Secret");
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["value"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(text).unwrap().contains("# renewed"));
    // Renewed a year ahead: nothing within warnBefore (120 days) any more, and the Warning
    // of the check before it was published once.
    let c = condition(&bed, "CertificatesExpiring").unwrap();
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("NoneWithinWarnBefore")),
        "{c:#}"
    );
    assert_eq!(
        count(&bed, "CertificatesExpiring"),
        1,
        "{:#?}",
        events(&bed)
    );
}

async fn with_auto_renew_off_the_operator_only_warns(backend: Backend) {
    let spec = json!({"autoRenew": false});
    let bed = Bed::on(backend, fake_on_loopback(spec), true, never_fails()).await;
    expiring_in(&bed, 10);
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "RenewalDue", |f| {
        events(f)
            .iter()
            .any(|e| e.starts_with("RenewalDue: "))
            .then_some(())
    })
    .await;
    let c = condition(&bed, "CertificatesExpiring").unwrap();
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("autoRenew is false"),
        "{c:#}"
    );
    assert_eq!(renewals(&bed), 0, "{:?}", jobs(&bed));
    assert!(certificates(&bed).get("lastRenewed").is_none());
}

async fn an_unknown_rotate_ca_value_is_refused_without_an_operation(backend: Backend) {
    let fake = fake(true, "Orphan");
    let mut c = cluster(&fake);
    c["metadata"]["annotations"] = json!({"kubegrid.io/rotate-ca": "rsa"});
    fake.put(c);
    let bed = Bed::on(backend, fake, true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let message = eventually(&bed, "the refusal in status", |f| {
        cluster(f)["status"]["certificates"]["message"]
            .as_str()
            .map(String::from)
    })
    .await;
    assert!(
        message.contains("`rsa` is not a CA kubegrid rotates"),
        "{message}"
    );
    assert!(
        message.contains("etcd, kubernetes, front-proxy, service-account"),
        "{message}"
    );
    assert_eq!(count(&bed, "RotationRefused"), 1, "{:#?}", events(&bed));
    assert!(
        !jobs(&bed)
            .iter()
            .any(|j| matches!(j, CertsJob::RotateCa(_))),
        "{:?}",
        jobs(&bed)
    );
    assert_eq!(
        cluster(&bed)["metadata"]["annotations"]["kubegrid.io/rotate-ca"],
        "rsa"
    );
}

async fn no_key_material_reaches_status_or_events(backend: Backend) {
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----";
    let bed = Bed::on(backend, fake_on_loopback(Value::Null), true, never_fails()).await;
    *bed.certs.script.lock().unwrap() = Box::new(move |job, nodes, _| {
        let mut r = report(job, nodes, 10);
        r.flagged.push(kubegrid_engine::certs::Flagged {
            node: "cp-1".into(),
            name: "apiserver".into(),
            file: "/etc/kubernetes/pki/apiserver.crt".into(),
            reason: format!("differs from the journal's: {key}"),
        });
        let outcome = if job == CertsJob::Renew {
            r.blockers.push(format!("cp-1: agent said {key}"));
            RunOutcome::PreflightFailed(vec![key.to_string()])
        } else {
            RunOutcome::Succeeded
        };
        Scripted {
            outcome,
            report: r,
            kubeconfig: None,
        }
    });
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "RenewalFailed and CertificateFlagged", |f| {
        let all = events(f);
        (all.iter().any(|e| e.starts_with("RenewalFailed: "))
            && all.iter().any(|e| e.starts_with("CertificateFlagged: ")))
        .then_some(())
    })
    .await;
    let status = serde_json::to_string(&cluster(&bed)["status"]).unwrap();
    assert!(status.contains("[PEM block left out]"), "{status}");
    let all = events(&bed).join("\n");
    for text in [&status, &all] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("MC4CAQAwBQYDK2VwBCIEIJ"), "{text}");
    }
}
