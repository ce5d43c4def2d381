//! The Cluster a reconcile gets is the controller's cached copy, which can be older than
//! what the operator last wrote: a real API server delivers a watch event after the write
//! returned (seen on the real server as an operation run twice, and as a finalizer added twice,
//! which failed the reconcile). The fake holds the
//! Clusters' watch events back to make that happen every time. On the fake only: the real
//! server's watch cannot be held.

use std::{sync::Arc, time::Duration};

use kubegrid_controller::metrics::Metrics;

use crate::common::*;

fn reconciles(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("kubegrid_reconciles_total{kind=\"Cluster\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until the operator has started `count` Cluster reconciles in all.
async fn reconciled(bed: &Bed, metrics: &Metrics, count: u64) {
    within("the reconciles", async {
        // Metrics wake nothing: let the operator's tasks run between looks.
        while reconciles(metrics) < count {
            tokio::task::yield_now().await;
        }
    })
    .await;
    bed.settle().await;
}

#[tokio::test]
async fn a_reconcile_on_a_stale_copy_of_the_cluster_does_not_run_the_operation_again() {
    let bed = Bed::new(fake(true, "Orphan"), true, Arc::new(|_, _| Vec::new()));
    let (_stop, _task, metrics) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "Ready", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    // Removing gpu-1 runs a second operation, held halfway: the Cluster's status now says
    // Provisioning, and the operator's watch has seen that.
    bed.gate.send(false).unwrap();
    assert!(bed.delete_object(API, "Node", NS, "gpu-1").await);
    bed.calls_until("the removal runs", |calls| (calls.len() == 2).then_some(()))
        .await;
    // From here the operator's copy of the Cluster stays as it is: the status the operation
    // writes when it ends (Ready) does not reach it. The Node events do, and queue a
    // reconcile that runs on that copy.
    bed.hold_watches("kubegrid.io", "clusters");
    let before = reconciles(&metrics);
    bed.gate.send(true).unwrap();
    eventually(&bed, "Ready with gpu-1 gone", |f| {
        let c = cluster(f);
        (node_of(f, "gpu-1").is_null() && c["status"]["phase"] == "Ready").then_some(())
    })
    .await;
    reconciled(&bed, &metrics, before + 1).await;
    // Once the held events arrive, the next reconcile runs after the stale one ended.
    bed.release_watches("kubegrid.io", "clusters");
    reconciled(&bed, &metrics, before + 2).await;
    let calls = bed.calls();
    assert_eq!(
        calls.len(),
        2,
        "the stale copy's Provisioning status started the operation again: {calls:#?}"
    );
    assert_eq!(cluster(&bed)["status"]["phase"], "Ready");
}

#[tokio::test]
async fn a_reconcile_on_a_copy_without_the_new_finalizer_does_not_fail() {
    let bed = Bed::new(fake(true, "Orphan"), true, Arc::new(|_, _| Vec::new()));
    // From the start the operator's copy of the Cluster never sees its own writes: the
    // finalizer the first reconcile adds stays out of it.
    bed.hold_watches("kubegrid.io", "clusters");
    let (_stop, _task, metrics) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "the Cluster's finalizer", |f| {
        cluster(f)["metadata"]["finalizers"]
            .as_array()
            .filter(|l| l.iter().any(|x| x == "kubegrid.io/cluster"))
            .map(|_| ())
    })
    .await;
    // A Node event queues a reconcile, which runs on that copy.
    let mut touched = node_of(&bed, "gpu-1");
    touched["metadata"]["labels"] = serde_json::json!({"touched": "yes"});
    bed.put(touched).await;
    eventually(&bed, "Ready", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    reconciled(&bed, &metrics, 3).await;
    let text = metrics.render();
    assert!(
        !text.contains("kubegrid_reconcile_failures_total{"),
        "a reconcile failed:\n{text}\nevents: {:#?}",
        events(&bed)
    );
    assert!(
        !events(&bed)
            .iter()
            .any(|e| e.starts_with("ReconcileFailed")),
        "{:#?}",
        events(&bed)
    );
    bed.release_watches("kubegrid.io", "clusters");
    assert_eq!(bed.calls().len(), 1, "{:#?}", bed.calls());
}
