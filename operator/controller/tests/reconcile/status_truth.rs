//! Status says only what happened: the installed version comes from the journal, the
//! versions on each Node from the hosts, and a version change on an installed Cluster
//! waits while `spec.upgrade.paused` is set (no upgrade runs) with its Ready condition and
//! version as they were (upgrades.rs has the upgrades that run).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use crate::common::*;

on_both!(
    status_carries_the_installed_versions_and_the_operation,
    a_version_change_while_paused_waits_and_nothing_runs,
    removal_shows_absent_and_removing_and_deletion_shows_deleting_while_they_run,
    a_cluster_with_a_missing_secret_stays_pending,
    a_failed_reset_reports_a_reset_operation,
    status_shows_the_serving_layer_the_operation_reported,
);

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

async fn status_carries_the_installed_versions_and_the_operation(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    let c = cluster(api);
    let status = &c["status"];
    assert_eq!(status["kubernetesVersion"], "v1.31.4", "{c:#}");
    assert_eq!(status["operation"]["kind"], "install", "{c:#}");
    assert_eq!(status["operation"]["id"], bed.calls()[0].operation, "{c:#}");
    let started = status["operation"]["startedAt"]
        .as_str()
        .expect("startedAt");
    assert!(started.ends_with('Z') && started.contains('T'), "{started}");
    assert_eq!(
        status["observedGeneration"], c["metadata"]["generation"],
        "{c:#}"
    );
    for type_ in ["Ready", "Progressing", "Degraded"] {
        let cond = condition(api, type_).expect(type_);
        assert!(cond["lastTransitionTime"].is_string(), "{cond}");
        assert_eq!(
            cond["observedGeneration"], c["metadata"]["generation"],
            "{cond}"
        );
    }
    for name in ["cp-1", "gpu-1"] {
        let n = node_of(api, name);
        let s = &n["status"];
        assert_eq!(
            s["versions"],
            json!({"kubelet": "v1.31.4", "containerd": "v1.7.24"}),
            "{n:#}"
        );
        assert!(s["lastTransitionTime"].is_string(), "{n:#}");
        assert_eq!(s["operation"], status["operation"]["id"], "{n:#}");
        let facts = &s["facts"];
        assert_eq!(facts["os"], "debian 12", "{n:#}");
        assert_eq!(facts["kernel"], "6.1.0-13-amd64", "{n:#}");
        assert_eq!(facts["arch"], "amd64", "{n:#}");
        assert_eq!(facts["cpus"], 16, "{n:#}");
        assert_eq!(facts["memoryMiB"], 64_000, "{n:#}");
        // Product names where the PCI id is known, the ids otherwise.
        assert_eq!(
            facts["gpus"],
            json!([
                {"model": "H100 SXM5 80GB", "count": 2},
                {"model": "NVIDIA 10de:2302", "count": 1},
            ]),
            "{n:#}"
        );
        // What detection found, as the host reported it.
        let gpu = &facts["gpu"];
        assert_eq!(gpu["driverVersion"], "550.127.05", "{n:#}");
        assert_eq!(gpu["nvidiaLoaded"], true, "{n:#}");
        assert_eq!(gpu["secureBoot"], "Disabled", "{n:#}");
        assert_eq!(gpu["kernelHeaders"], true, "{n:#}");
        assert_eq!(gpu["kvm"], "NoDevice", "{n:#}");
        let timing = &s["phaseTimes"][0];
        assert!(
            timing["phase"].is_string()
                && timing["startedAt"].is_string()
                && timing["finishedAt"].is_string()
                && timing["durationMs"].is_u64(),
            "{n:#}"
        );
    }
}

async fn a_version_change_while_paused_waits_and_nothing_runs(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    let mut c = cluster(api);
    c["spec"]["kubernetesVersion"] = json!("v1.32.0");
    c["spec"]["upgrade"] = json!({"paused": true});
    api.put(c).await;
    let upgrading = eventually(api, "Upgrading=False Paused", |f| {
        condition(f, "Upgrading").filter(|c| c["reason"] == "Paused")
    })
    .await;
    assert_eq!(upgrading["status"], "False");
    let message = upgrading["message"].as_str().unwrap();
    assert!(
        message.contains("spec.upgrade.paused is true")
            && message.contains("Kubernetes v1.31.4 → v1.32.0"),
        "{message}"
    );
    let c = cluster(api);
    assert_eq!(c["status"]["phase"], "Ready", "{c:#}");
    assert_eq!(c["status"]["kubernetesVersion"], "v1.31.4", "{c:#}");
    assert_eq!(
        condition(api, "Ready").map(|c| c["status"].clone()),
        Some(json!("True")),
        "the cluster still runs"
    );
    assert!(
        events(api).iter().any(|e| e.starts_with("UpgradePaused")),
        "{:#?}",
        events(api)
    );
    assert_eq!(bed.calls().len(), 1, "an operation ran while paused");
    // Back to the installed version: nothing waits any more.
    let mut c = cluster(api);
    c["spec"]["kubernetesVersion"] = json!("v1.31.4");
    api.put(c).await;
    eventually(api, "Upgrading=False UpToDate", |f| {
        condition(f, "Upgrading").filter(|c| c["reason"] == "UpToDate")
    })
    .await;
}

async fn removal_shows_absent_and_removing_and_deletion_shows_deleting_while_they_run(
    backend: Backend,
) {
    let bed = Bed::on(backend, fake(true, "Reset"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    // Held halfway from now on, so what runs can be seen.
    bed.gate.send(false).unwrap();
    assert!(api.delete_object(API, "Node", NS, "gpu-1").await);
    eventually(api, "gpu-1 Absent and Removing", |f| {
        let s = node_of(f, "gpu-1")["status"].clone();
        (s["desiredState"] == "Absent" && s["phase"] == "Removing").then_some(())
    })
    .await;
    bed.gate.send(true).unwrap();
    eventually(api, "a NodePhaseChanged Event for the drain", |f| {
        events(f)
            .iter()
            .any(|e| e.starts_with("NodePhaseChanged: gpu-1 is Draining"))
            .then_some(())
    })
    .await;
    eventually(api, "gpu-1 released", |f| {
        node_of(f, "gpu-1").is_null().then_some(())
    })
    .await;
    eventually(api, "Ready=True with one Node", |f| {
        (cluster(f)["status"]["nodes"]["total"] == 1).then_some(())
    })
    .await;
    bed.gate.send(false).unwrap();
    assert!(api.delete_object(API, "Cluster", NS, "gpu").await);
    let c = eventually(api, "phase Deleting", |f| {
        let c = cluster(f);
        (c["status"]["phase"] == "Deleting").then_some(c)
    })
    .await;
    let progressing = c["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["reason"], "Resetting", "{c:#}");
    bed.gate.send(true).unwrap();
    eventually(api, "the Cluster is gone", |f| {
        cluster(f).is_null().then_some(())
    })
    .await;
}

async fn a_cluster_with_a_missing_secret_stays_pending(backend: Backend) {
    let bed = Bed::on(backend, fake(false, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let c = eventually(&bed, "phase Pending", |f| {
        let c = cluster(f);
        (c["status"]["phase"] == "Pending").then_some(c)
    })
    .await;
    assert_eq!(
        c["status"]["nodes"],
        json!({"total": 2, "ready": 0}),
        "{c:#}"
    );
    assert!(
        c["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpu-ssh")),
        "{c:#}"
    );
    assert!(
        c["status"]["kubernetesVersion"].is_null(),
        "nothing installed: {c:#}"
    );
}

async fn a_failed_reset_reports_a_reset_operation(backend: Backend) {
    let plan: Arc<Plan> = Arc::new(|job, n| {
        if job.kind == kubegrid_controller::runner::JobKind::Reset && n < 2 {
            vec![("cp-1", "reset", "kubeadm reset: exit status 1")]
        } else {
            Vec::new()
        }
    });
    let bed = Bed::on(backend, fake(true, "Reset"), true, plan).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    assert!(api.delete_object(API, "Cluster", NS, "gpu").await);
    let c = eventually(api, "a reset operation in status", |f| {
        let c = cluster(f);
        (c["status"]["operation"]["kind"] == "reset").then_some(c)
    })
    .await;
    assert!(c["status"]["operation"]["startedAt"].is_string(), "{c:#}");
    eventually(api, "the Cluster is gone", |f| {
        cluster(f).is_null().then_some(())
    })
    .await;
}

async fn status_shows_the_serving_layer_the_operation_reported(backend: Backend) {
    let fake = fake(true, "Orphan");
    let mut spec = fake
        .get_object(API, "Cluster", NS, "gpu")
        .expect("the Cluster")["spec"]
        .clone();
    spec["containerRuntime"]["runtimes"] = json!(["runc", "nvidia"]);
    spec["gpu"] = json!({"driver": {"source": "preinstalled"}});
    spec["serving"] = json!({"namespace": "llm", "cacheCapacity": "500Gi"});
    fake.put(json!({
        "apiVersion": API, "kind": "Cluster",
        "metadata": {"name": "gpu", "namespace": NS},
        "spec": spec,
    }));
    let bed = Bed::on(backend, fake, true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let api = &bed;
    eventually(api, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    let c = cluster(api);
    assert_eq!(
        c["status"]["serving"],
        json!({
            "namespace": "llm",
            "image": crate::scripted::SCRIPTED_SERVING_IMAGE,
            "deployed": true,
            "ready": true,
            "message": "scripted: the runner applied nothing",
        }),
        "{c:#}"
    );
    // Without spec.serving the next apply neither applies nor checks the layer, so its old
    // report goes.
    let mut c = cluster(api);
    let generation = c["metadata"]["generation"].clone();
    c["spec"].as_object_mut().unwrap().remove("serving");
    api.put(c).await;
    let c = eventually(api, "the apply of the new generation", |f| {
        let c = cluster(f);
        (c["status"]["observedGeneration"] != generation
            && c["status"]["observedGeneration"].is_number())
        .then_some(c)
    })
    .await;
    assert!(c["status"]["serving"].is_null(), "{c:#}");
}
