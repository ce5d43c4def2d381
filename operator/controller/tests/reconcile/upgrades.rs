//! Upgrades through the reconciler: a version change on an installed Cluster runs the
//! upgrade (the scripted runner rolls like the engine: `kubeadm-apply` on the first
//! control-plane Node, then one Node at a time), with the `Upgrading` condition on the
//! Cluster, the step on each Node, and the installed version moving as the control plane
//! does; blocked, failed and paused upgrades say so.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kubegrid_controller::runner::JobKind;
use serde_json::{Value, json};

use crate::common::*;

on_both!(
    an_upgrade_rolls_node_by_node_with_its_step_on_the_cluster_and_each_node,
    a_blocked_upgrade_changes_nothing_and_names_the_blockers,
    a_failed_step_stops_the_roll_and_the_retry_resumes_where_it_stopped,
    pausing_stops_the_roll_between_nodes_and_unpausing_goes_on,
    a_version_and_a_new_node_together_upgrade_first_then_the_node_joins,
);

/// A bed whose bundle carries Kubernetes 1.31.4 and 1.32.4, running replica `op-a` with
/// the Cluster installed at v1.31.4.
/// Waits for an Event with `reason`. The controller records it after the status write the
/// test waited for, so it can land a moment later (CI once saw the status before the Event).
async fn event_with_reason(bed: &Bed, reason: &str) {
    eventually(bed, &format!("a {reason} Event"), |f| {
        events(f)
            .iter()
            .any(|e| e.starts_with(reason))
            .then_some(())
    })
    .await;
}

async fn installed(backend: Backend, plan: Arc<Plan>) -> (Bed, tokio::sync::oneshot::Sender<()>) {
    let (bed, stop, _) = installed_by(backend, plan).await;
    (bed, stop)
}

/// [`installed`], with the replica's task.
async fn installed_by(
    backend: Backend,
    plan: Arc<Plan>,
) -> (
    Bed,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, plan).await;
    let mut manifest = bundle_manifest(&[]);
    for (i, name) in ["kubeadm", "kubelet", "kubectl"].iter().enumerate() {
        manifest.push_str(&format!(
            "  - {{path: v1.32/{i}, sha256: {}, size: 1, arch: amd64, kind: binary, name: {name}, version: \"1.32.4\"}}\n",
            "b".repeat(64)
        ));
    }
    std::fs::write(
        bed.dir.path().join("bundles/bundle/manifest.yaml"),
        manifest,
    )
    .unwrap();
    let (stop, task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    (bed, stop, task)
}

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

/// Edits the Cluster's spec: `field` set to `value`.
async fn set_spec(bed: &Bed, field: &str, value: Value) {
    let mut c = cluster(bed);
    c["spec"][field] = value;
    bed.put(c).await;
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Waits for the `Upgrading` condition with `status` and `reason`.
async fn upgrading(bed: &Bed, status: &str, reason: &str) -> Value {
    eventually(bed, &format!("Upgrading={status} {reason}"), |f| {
        condition(f, "Upgrading").filter(|c| c["status"] == status && c["reason"] == reason)
    })
    .await
}

fn steps_run(bed: &Bed) -> Vec<String> {
    bed.steps_run.lock().unwrap().clone()
}

async fn an_upgrade_rolls_node_by_node_with_its_step_on_the_cluster_and_each_node(
    backend: Backend,
) {
    let (bed, _stop) = installed(backend, never_fails()).await;
    // Held mid-roll (in the first Node's roll) so that what runs can be seen.
    bed.gate.send(false).unwrap();
    set_spec(&bed, "kubernetesVersion", json!("v1.32.4")).await;
    let cp = eventually(&bed, "cp-1 Upgrading in its kubelet step", |f| {
        let s = node_of(f, "cp-1")["status"].clone();
        let step = text(&s["currentStep"]).to_string();
        (s["phase"] == "Upgrading" && step.starts_with("upgrade roll/cp-1/1.32.4: node-kubelet"))
            .then_some(s)
    })
    .await;
    assert!(cp["lastError"].is_null(), "{cp:#}");
    let up = eventually(&bed, "Upgrading=True naming the roll of cp-1", |f| {
        condition(f, "Upgrading")
            .filter(|c| c["status"] == "True" && text(&c["message"]).contains("roll/cp-1/1.32.4"))
    })
    .await;
    assert_eq!(up["reason"], "Rolling", "{up:#}");
    assert!(
        text(&up["message"]).contains("Kubernetes v1.31.4 → v1.32.4"),
        "{up:#}"
    );
    let c = cluster(&bed);
    // The control plane moved in the step before (kubeadm-apply): the version follows it.
    assert_eq!(c["status"]["kubernetesVersion"], "v1.32.4", "{c:#}");
    assert_eq!(
        c["status"]["phase"], "Ready",
        "the cluster serves while it rolls: {c:#}"
    );
    let progressing = condition(&bed, "Progressing").unwrap();
    assert_eq!(
        (progressing["status"].clone(), progressing["reason"].clone()),
        (json!("True"), json!("Upgrading")),
        "{c:#}"
    );
    let worker = node_of(&bed, "gpu-1")["status"].clone();
    assert_eq!(worker["phase"], "Ready", "not touched yet: {worker:#}");
    assert!(
        !text(&worker["currentStep"]).starts_with("upgrade "),
        "not in the step: {worker:#}"
    );
    assert_eq!(
        steps_run(&bed),
        ["kubeadm-apply/cp-1/1.32.4", "roll/cp-1/1.32.4"]
    );
    bed.gate.send(true).unwrap();
    let done = upgrading(&bed, "False", "Succeeded").await;
    assert!(text(&done["message"]).contains("3 steps done"), "{done:#}");
    assert_eq!(
        steps_run(&bed),
        [
            "kubeadm-apply/cp-1/1.32.4",
            "roll/cp-1/1.32.4",
            "roll/gpu-1/1.32.4"
        ]
    );
    // The install that follows may already be writing its phases here (CI once read cp-1
    // Installing), so the Nodes' end state is checked once it has converged, below; what
    // holds at once is that no Node is left in an upgrade step.
    for name in ["cp-1", "gpu-1"] {
        let n = node_of(&bed, name);
        assert_ne!(n["status"]["phase"], "Upgrading", "{n:#}");
        assert!(
            !text(&n["status"]["currentStep"]).starts_with("upgrade "),
            "{n:#}"
        );
    }
    let events = events(&bed);
    for wanted in [
        "UpgradeStarted: upgrading: Kubernetes v1.31.4 → v1.32.4",
        // (Events with one reason on one object are aggregated: the first step's shows.)
        "UpgradeStep: upgrade step kubeadm-apply/cp-1/1.32.4 started on cp-1",
        "UpgradeSucceeded: operation",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(wanted)),
            "no {wanted}: {events:#?}"
        );
    }
    // Then an install converges at the new version, and the Cluster is Ready there.
    bed.calls_until("an install after the upgrade", |calls| {
        let kinds: Vec<JobKind> = calls.iter().map(|c| c.kind).collect();
        (kinds == [JobKind::Apply, JobKind::Upgrade, JobKind::Apply]
            && calls.iter().all(|c| c.ended.is_some()))
        .then_some(())
    })
    .await;
    let c = eventually(&bed, "Ready at the new generation", |f| {
        let c = cluster(f);
        (c["status"]["observedGeneration"] == c["metadata"]["generation"]
            && c["status"]["operation"]["kind"] == "install")
            .then_some(c)
    })
    .await;
    assert_eq!(c["status"]["kubernetesVersion"], "v1.32.4", "{c:#}");
    assert_eq!(c["status"]["phase"], "Ready", "{c:#}");
    for name in ["cp-1", "gpu-1"] {
        eventually(
            &bed,
            &format!("{name} Ready at v1.32.4 with no step"),
            |f| {
                let s = node_of(f, name)["status"].clone();
                (s["phase"] == "Ready"
                    && s["currentStep"].is_null()
                    && s["versions"]["kubelet"] == "v1.32.4")
                    .then_some(())
            },
        )
        .await;
    }
}

async fn a_blocked_upgrade_changes_nothing_and_names_the_blockers(backend: Backend) {
    let plan: Arc<Plan> = Arc::new(|job, _| {
        if job.kind == JobKind::Upgrade {
            vec![(
                "gpu-1",
                "blocked",
                "Node gpu-1 is NotReady; an upgrade needs every Node Ready",
            )]
        } else {
            Vec::new()
        }
    });
    let (bed, _stop) = installed(backend, plan).await;
    set_spec(&bed, "kubernetesVersion", json!("v1.32.4")).await;
    let blocked = upgrading(&bed, "False", "Blocked").await;
    let message = text(&blocked["message"]);
    assert!(
        message.starts_with("nothing was changed")
            && message.contains("gpu-1: Node gpu-1 is NotReady"),
        "{blocked:#}"
    );
    let c = cluster(&bed);
    assert_eq!(c["status"]["kubernetesVersion"], "v1.31.4", "{c:#}");
    assert_eq!(c["status"]["phase"], "Ready", "{c:#}");
    assert_eq!(
        condition(&bed, "Ready").map(|c| c["status"].clone()),
        Some(json!("True")),
        "the cluster still runs as before"
    );
    assert!(steps_run(&bed).is_empty(), "{:?}", steps_run(&bed));
    for name in ["cp-1", "gpu-1"] {
        assert_eq!(node_of(&bed, name)["status"]["phase"], "Ready");
    }
    event_with_reason(&bed, "UpgradeBlocked").await;
}

async fn a_failed_step_stops_the_roll_and_the_retry_resumes_where_it_stopped(backend: Backend) {
    let failing = Arc::new(AtomicBool::new(true));
    let fails = Arc::clone(&failing);
    let plan: Arc<Plan> = Arc::new(move |job, _| {
        if job.kind == JobKind::Upgrade && fails.load(Ordering::SeqCst) {
            vec![(
                "gpu-1",
                "node-kubelet",
                "kubelet did not come back: exit status 1",
            )]
        } else {
            Vec::new()
        }
    });
    let (bed, _stop) = installed(backend, plan).await;
    set_spec(&bed, "kubernetesVersion", json!("v1.32.4")).await;
    let (c, worker) = eventually(&bed, "Upgrading=False Failed and gpu-1 Failed", |f| {
        let c = cluster(f);
        let worker = node_of(f, "gpu-1")["status"].clone();
        (condition(f, "Upgrading").is_some_and(|u| u["reason"] == "Failed")
            && worker["phase"] == "Failed")
            .then_some((c, worker))
    })
    .await;
    failing.store(false, Ordering::SeqCst);
    let up = c["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Upgrading")
        .cloned()
        .unwrap();
    let message = text(&up["message"]);
    assert!(
        message.contains("step roll/gpu-1/1.32.4 failed: gpu-1 failed in node-kubelet")
            && message.contains("left: gpu-1 cordoned: failed after its drain")
            && message.contains("2 of 3 steps done"),
        "{up:#}"
    );
    assert_eq!(c["status"]["phase"], "Degraded", "{c:#}");
    assert_eq!(c["status"]["operation"]["kind"], "upgrade", "{c:#}");
    assert_eq!(c["status"]["kubernetesVersion"], "v1.32.4", "{c:#}");
    let last_error = text(&worker["lastError"]);
    assert!(
        last_error.contains("node-kubelet: kubelet did not come back")
            && last_error.contains("left cordoned: failed after its drain"),
        "{worker:#}"
    );
    event_with_reason(&bed, "UpgradeFailed").await;
    // The retry plans from the live versions: only the worker's roll is left.
    upgrading(&bed, "False", "Succeeded").await;
    let steps = steps_run(&bed);
    let count = |id: &str| steps.iter().filter(|s| *s == id).count();
    assert_eq!(count("kubeadm-apply/cp-1/1.32.4"), 1, "{steps:?}");
    assert_eq!(count("roll/cp-1/1.32.4"), 1, "{steps:?}");
    assert!(count("roll/gpu-1/1.32.4") >= 2, "{steps:?}");
    eventually(&bed, "gpu-1 Ready again", |f| {
        let s = node_of(f, "gpu-1")["status"].clone();
        (s["phase"] == "Ready" && s["lastError"].is_null()).then_some(())
    })
    .await;
}

async fn pausing_stops_the_roll_between_nodes_and_unpausing_goes_on(backend: Backend) {
    let (bed, _stop) = installed(backend, never_fails()).await;
    bed.gate.send(false).unwrap();
    set_spec(&bed, "kubernetesVersion", json!("v1.32.4")).await;
    eventually(&bed, "cp-1 Upgrading", |f| {
        (node_of(f, "cp-1")["status"]["phase"] == "Upgrading").then_some(())
    })
    .await;
    set_spec(&bed, "upgrade", json!({"paused": true})).await;
    // The running roll learns of it from the operator (a condition, polled).
    let paused = bed
        .calls()
        .iter()
        .find(|c| c.kind == JobKind::Upgrade)
        .and_then(|c| c.paused.clone())
        .expect("the upgrade carries its pause flag");
    within("the roll sees spec.upgrade.paused", async {
        while !paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    bed.gate.send(true).unwrap();
    let up = upgrading(&bed, "False", "Paused").await;
    assert!(
        text(&up["message"]).contains("after 2 of 3 steps (next: roll/gpu-1/1.32.4)"),
        "{up:#}"
    );
    // The Node in its roll finished it; the next one was not touched.
    assert_eq!(
        steps_run(&bed),
        ["kubeadm-apply/cp-1/1.32.4", "roll/cp-1/1.32.4"]
    );
    for name in ["cp-1", "gpu-1"] {
        let n = node_of(&bed, name);
        assert_eq!(n["status"]["phase"], "Ready", "{n:#}");
    }
    event_with_reason(&bed, "UpgradePaused").await;
    let upgrades = |bed: &Bed| {
        bed.calls()
            .iter()
            .filter(|c| c.kind == JobKind::Upgrade)
            .count()
    };
    assert_eq!(upgrades(&bed), 1);
    set_spec(&bed, "upgrade", json!({"paused": false})).await;
    upgrading(&bed, "False", "Succeeded").await;
    assert_eq!(
        steps_run(&bed),
        [
            "kubeadm-apply/cp-1/1.32.4",
            "roll/cp-1/1.32.4",
            "roll/gpu-1/1.32.4"
        ]
    );
    assert_eq!(upgrades(&bed), 2);
}

async fn a_version_and_a_new_node_together_upgrade_first_then_the_node_joins(backend: Backend) {
    let (bed, stop, task) = installed_by(backend, never_fails()).await;
    // Both edits land while no replica runs, so one reconcile sees them together.
    stop.send(()).unwrap();
    task.await.unwrap();
    bed.put(node("gpu-2", "10.213.99.22", "worker")).await;
    set_spec(&bed, "kubernetesVersion", json!("v1.32.4")).await;
    let (_stop, _task, _) = bed.start("op-b", Duration::from_secs(2)).await;
    upgrading(&bed, "False", "Succeeded").await;
    let calls = bed
        .calls_until("the install after the upgrade", |calls| {
            (calls.len() == 3 && calls.iter().all(|c| c.ended.is_some())).then(|| calls.to_vec())
        })
        .await;
    let kinds: Vec<JobKind> = calls.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [JobKind::Apply, JobKind::Upgrade, JobKind::Apply]);
    // The upgrade rolls the Nodes in the cluster; the new one joins after, at the new version.
    assert_eq!(calls[1].nodes, ["cp-1", "gpu-1"]);
    assert_eq!(calls[2].nodes, ["cp-1", "gpu-1", "gpu-2"]);
    let n = eventually(&bed, "gpu-2 Ready at v1.32.4", |f| {
        let n = node_of(f, "gpu-2");
        (n["status"]["phase"] == "Ready" && n["status"]["versions"]["kubelet"] == "v1.32.4")
            .then_some(n)
    })
    .await;
    assert!(n["status"]["lastError"].is_null(), "{n:#}");
    assert!(
        !steps_run(&bed).iter().any(|s| s.contains("gpu-2")),
        "{:?}",
        steps_run(&bed)
    );
}
