//! One replica, the whole controller (watches, finalizers, status, events), each scenario on
//! the fake and with the Clusters and Nodes on a real API server (`on_both!`).

use std::{sync::Arc, time::Duration};

use kubegrid_controller::runner::JobKind;
use serde_json::json;

use crate::common::*;

on_both!(
    a_new_cluster_goes_progressing_then_ready,
    a_host_failure_degrades_the_cluster_naming_the_host_and_retries_with_backoff,
    a_missing_secret_gives_a_clear_condition_and_no_host_is_touched,
    a_bundle_that_does_not_fit_the_spec_is_refused_before_any_host,
    deletion_with_orphan_leaves_the_hosts_alone,
    deletion_with_reset_resets_every_host_and_retries_until_it_succeeds,
    a_deleted_node_leaves_the_cluster_and_is_released,
);

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

/// Waits until Cluster `gpu` is Ready=True.
async fn wait_ready(api: &Bed) {
    eventually(api, "Ready", |f| {
        condition(f, "Ready").filter(|c| status_of(c) == Some(true))
    })
    .await;
}

fn status_of(c: &serde_json::Value) -> Option<bool> {
    c["status"].as_str().map(|s| s == "True")
}

async fn a_new_cluster_goes_progressing_then_ready(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), false, never_fails()).await;
    let (_stop, _task, metrics) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    // Held halfway: Progressing, with per-node progress in the Nodes' status.
    let progressing = eventually(api, "Progressing=True", |f| {
        condition(f, "Progressing").filter(|c| status_of(c) == Some(true))
    })
    .await;
    assert_eq!(progressing["reason"], "Installing", "{progressing}");
    assert_eq!(cluster(api)["status"]["phase"], "Provisioning");
    eventually(api, "gpu-1 shows its current step", |f| {
        let s = node_of(f, "gpu-1")["status"].clone();
        (s["currentStep"] == "container-runtime / stand-in task" && s["phase"] == "Installing")
            .then_some(())
    })
    .await;
    assert_eq!(
        condition(api, "Ready").and_then(|c| status_of(&c)),
        Some(false)
    );
    bed.gate.send(true).unwrap();
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| status_of(c) == Some(true))
    })
    .await;
    let c = cluster(api);
    assert_eq!(c["status"]["phase"], "Ready", "{c:#}");
    assert_eq!(c["status"]["nodes"]["ready"], 2);
    assert_eq!(c["status"]["nodes"]["total"], 2);
    assert_eq!(c["status"]["kubernetesVersion"], "v1.31.4");
    assert_eq!(c["status"]["operation"]["kind"], "install", "{c:#}");
    assert_eq!(
        condition(api, "Progressing").and_then(|c| status_of(&c)),
        Some(false)
    );
    assert_eq!(
        condition(api, "Degraded").and_then(|c| status_of(&c)),
        Some(false)
    );
    for name in ["cp-1", "gpu-1"] {
        let n = node_of(api, name);
        assert_eq!(n["status"]["phase"], "Ready", "{n:#}");
        assert_eq!(n["status"]["desiredState"], "Present");
        assert_eq!(n["status"]["hostKey"], "ssh-ed25519 SHA256:stand-in");
        let times = n["status"]["phaseTimes"].as_array().expect("phase times");
        assert_eq!(times.len(), 2, "{n:#}");
        assert!(
            n["metadata"]["finalizers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "kubegrid.io/node")
        );
    }
    let kubeconfig = api
        .get_object("v1", "Secret", NS, "gpu-kubeconfig")
        .expect("kubeconfig Secret");
    assert_eq!(
        kubeconfig["metadata"]["ownerReferences"][0]["kind"],
        "Cluster"
    );
    assert!(kubeconfig["data"]["value"].is_string());
    let events = events(api);
    for reason in ["OperationStarted", "PhaseStarted", "OperationSucceeded"] {
        assert!(
            events.iter().any(|e| e.starts_with(reason)),
            "no {reason} event in {events:#?}"
        );
    }
    // Ready and unchanged: no second operation, whatever the status writes trigger. A touch
    // of the Cluster's metadata causes a reconcile; once it has been counted, still one run.
    let reconciles = |m: &kubegrid_controller::metrics::Metrics| {
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix("kubegrid_reconciles_total{kind=\"Cluster\"} "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = reconciles(&metrics);
    let mut touched = cluster(api);
    touched["metadata"]["labels"] = json!({"touched": "yes"});
    api.put(touched).await;
    within("a reconcile after the touch", async {
        while reconciles(&metrics) < before + 1 {
            api.wait_for(|f| Some(f.resource_version())).await;
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(bed.calls().len(), 1, "{:#?}", bed.calls());
    let text = metrics.render();
    assert!(
        text.contains("kubegrid_hosts{cluster=\"fleet/gpu\",phase=\"Ready\"} 2"),
        "{text}"
    );
    assert!(text.contains("kubegrid_operation_phase_duration_seconds_count{operation=\"install\",phase=\"container-runtime\"} 1"), "{text}");
}

async fn a_host_failure_degrades_the_cluster_naming_the_host_and_retries_with_backoff(
    backend: Backend,
) {
    let plan: Arc<Plan> = Arc::new(|_, n| {
        if n < 2 {
            vec![("gpu-1", "container-runtime", "containerd: exit status 1")]
        } else {
            Vec::new()
        }
    });
    let bed = Bed::on(backend, fake(true, "Orphan"), true, plan).await;
    let (_stop, _task, metrics) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    // The condition and the one-line status message are written together.
    let (degraded, summary) = eventually(api, "Degraded=True", |f| {
        condition(f, "Degraded")
            .filter(|c| status_of(c) == Some(true))
            .map(|c| (c, cluster(f)["status"].clone()))
    })
    .await;
    assert_eq!(summary["phase"], "Degraded", "{summary:#}");
    let summary = summary["message"].clone();
    assert_eq!(degraded["reason"], "HostsFailed");
    assert!(
        summary
            .as_str()
            .is_some_and(|m| m.contains("gpu-1 failed in container-runtime")),
        "{summary}"
    );
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("gpu-1 failed in container-runtime: containerd: exit status 1"),
        "{message}"
    );
    let failed = node_of(api, "gpu-1");
    assert_eq!(failed["status"]["phase"], "Failed", "{failed:#}");
    assert!(
        failed["status"]["lastError"]
            .as_str()
            .unwrap()
            .contains("containerd: exit status 1")
    );
    assert!(
        events(api)
            .iter()
            .any(|e| e.starts_with("HostFailed: gpu-1 failed in container-runtime")),
        "{:#?}",
        events(api)
    );
    // Retries back off and the third run succeeds.
    eventually(api, "Ready after retries", |f| {
        condition(f, "Ready").filter(|c| status_of(c) == Some(true))
    })
    .await;
    let calls = bed.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let gap1 = calls[1].started - calls[0].ended.unwrap();
    let gap2 = calls[2].started - calls[1].ended.unwrap();
    assert!(
        gap1 >= Duration::from_millis(100),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(200),
        "second retry after {gap2:?}: the delay doubles"
    );
    assert_eq!(node_of(api, "gpu-1")["status"]["phase"], "Ready");
    assert_eq!(
        condition(api, "Degraded").and_then(|c| status_of(&c)),
        Some(false)
    );
    assert!(
        metrics
            .render()
            .contains("kubegrid_reconcile_failures_total{category=\"hosts\"} 2")
    );
}

async fn a_missing_secret_gives_a_clear_condition_and_no_host_is_touched(backend: Backend) {
    let bed = Bed::on(backend, fake(false, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    let ready = eventually(api, "Ready=False SecretMissing", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "SecretMissing")
    })
    .await;
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("Secret gpu-ssh"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        message
            .contains("kubectl -n fleet create secret generic gpu-ssh --from-file=ssh-privatekey="),
        "{message}"
    );
    assert!(bed.calls().is_empty(), "an operation ran without its key");
    // Creating the Secret is enough: the retry picks it up.
    api.put(secret(
        "gpu-ssh",
        "ssh-privatekey",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
    ))
    .await;
    eventually(api, "Ready=True once the Secret exists", |f| {
        condition(f, "Ready").filter(|c| status_of(c) == Some(true))
    })
    .await;
}

async fn a_bundle_that_does_not_fit_the_spec_is_refused_before_any_host(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let manifest = bed.dir.path().join("bundles/bundle/manifest.yaml");
    std::fs::write(&manifest, bundle_manifest(&["kubeadm"])).unwrap();
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    let ready = eventually(api, "Ready=False BundleInvalid", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "BundleInvalid")
    })
    .await;
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("does not fit the spec"), "{message}");
    assert!(
        message.contains("in phase kubernetes-packages: binary kubeadm"),
        "{message}"
    );
    assert!(message.contains("the bundle has: "), "{message}");
    assert!(
        bed.calls().is_empty(),
        "an operation ran with a bundle that lacks kubeadm"
    );
    // A bundle that fits is picked up by the retry.
    std::fs::write(&manifest, bundle_manifest(&[])).unwrap();
    eventually(api, "Ready=True once the bundle fits", |f| {
        condition(f, "Ready").filter(|c| status_of(c) == Some(true))
    })
    .await;
}

async fn ready_then_delete(
    backend: Backend,
    policy: &str,
    plan: Arc<Plan>,
) -> (Bed, tokio::sync::oneshot::Sender<()>) {
    let bed = Bed::on(backend, fake(true, policy), true, plan).await;
    let (stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    wait_ready(api).await;
    assert!(api.delete_object(API, "Cluster", NS, "gpu").await);
    // Held by its finalizer until the operator lets it go.
    eventually(api, "the Cluster is gone", |f| {
        cluster(f).is_null().then_some(())
    })
    .await;
    // Nodes are released too; deleting them now removes them at once.
    for name in ["cp-1", "gpu-1"] {
        let n = node_of(api, name);
        assert!(
            n["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{n:#}"
        );
    }
    (bed, stop)
}

async fn deletion_with_orphan_leaves_the_hosts_alone(backend: Backend) {
    let (bed, _stop) = ready_then_delete(backend, "Orphan", Arc::new(|_, _| Vec::new())).await;
    let calls = bed.calls();
    assert!(calls.iter().all(|c| c.kind == JobKind::Apply), "{calls:#?}");
    assert!(events(&bed.fake).iter().any(|e| e.starts_with("Orphaned")));
}

async fn deletion_with_reset_resets_every_host_and_retries_until_it_succeeds(backend: Backend) {
    let plan: Arc<Plan> = Arc::new(|job, n| {
        if job.kind == JobKind::Reset && n == 0 {
            vec![("cp-1", "reset", "kubeadm reset: exit status 1")]
        } else {
            Vec::new()
        }
    });
    let (bed, _stop) = ready_then_delete(backend, "Reset", plan).await;
    let resets: Vec<_> = bed
        .calls()
        .into_iter()
        .filter(|c| c.kind == JobKind::Reset)
        .collect();
    assert_eq!(resets.len(), 2, "the failed reset is retried: {resets:#?}");
    for r in &resets {
        assert_eq!(r.nodes, ["cp-1", "gpu-1"]);
    }
    let events = events(&bed.fake);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("ResetFailed") && e.contains("cp-1")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Reset: deletionPolicy Reset: 2 host(s) reset")),
        "{events:#?}"
    );
}

async fn a_deleted_node_leaves_the_cluster_and_is_released(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    wait_ready(api).await;
    assert!(api.delete_object(API, "Node", NS, "gpu-1").await);
    eventually(api, "gpu-1 removed", |f| {
        node_of(f, "gpu-1").is_null().then_some(())
    })
    .await;
    let calls = bed.calls();
    let last = calls.last().unwrap();
    assert_eq!(
        last.nodes,
        ["cp-1"],
        "the operation after the deletion acts on the rest: {calls:#?}"
    );
    eventually(api, "one Node counted", |f| {
        (cluster(f)["status"]["nodes"]["total"] == 1).then_some(())
    })
    .await;
}

// On the fake only: the real server's CEL transition rules refuse the edit at admission (the
// CRD tests check that); this is the operator's own check, for a server that runs no rules.
#[tokio::test]
async fn an_immutable_field_change_is_refused_in_code_too() {
    let bed = Bed::new(fake(true, "Orphan"), true, never_fails());
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    wait_ready(api).await;
    // The stand-in API server runs no CEL rules, like an old one: the operator must refuse.
    let mut c = cluster(api);
    c["spec"]["network"]["podCIDR"] = json!("10.250.0.0/16");
    api.put(c).await;
    let ready = eventually(api, "Ready=False ImmutableFieldChanged", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "ImmutableFieldChanged")
    })
    .await;
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("spec.network.podCIDR"), "{message}");
    assert!(message.contains("10.244.0.0/16"), "{message}");
    assert_eq!(
        bed.calls().len(),
        1,
        "an operation ran with a changed pod network"
    );
}
