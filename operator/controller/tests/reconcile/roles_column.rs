//! `status.roles`, which kubectl's `Roles` column prints: each Node's `spec.roles` as one
//! comma-separated string in spec order, written with the Node's status.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::common::*;

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

/// [`fake`] with `cp-1` holding the roles `etcd` and `control-plane`, in that order (not the
/// sorted one), so the test sees that the order is kept.
fn fake_with_two_roles(with_secret: bool) -> kubegrid_fake_apiserver::FakeCluster {
    let fake = fake(with_secret, "Orphan");
    let mut cp = node("cp-1", "10.213.99.11", "control-plane");
    cp["spec"]["roles"] = json!(["etcd", "control-plane"]);
    fake.put(cp);
    fake
}

fn roles(fake: &kubegrid_fake_apiserver::FakeCluster, name: &str) -> Value {
    node_of(fake, name)["status"]["roles"].clone()
}

#[tokio::test]
async fn an_operation_writes_each_nodes_roles_comma_separated_in_spec_order() {
    // The gate holds the operation halfway: no reconcile converges meanwhile, so what the
    // Nodes show comes from the operation's own status writes.
    let bed = Bed::new(fake_with_two_roles(true), false, never_fails());
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed.fake;
    eventually(fake, "both Nodes have a phase", |f| {
        ["cp-1", "gpu-1"]
            .iter()
            .all(|n| node_of(f, n)["status"]["phase"].is_string())
            .then_some(())
    })
    .await;
    // Written in the same patch as the phase.
    assert_eq!(
        roles(fake, "cp-1"),
        "etcd,control-plane",
        "{:#}",
        node_of(fake, "cp-1")
    );
    assert_eq!(
        roles(fake, "gpu-1"),
        "worker",
        "{:#}",
        node_of(fake, "gpu-1")
    );
    bed.gate.send(true).unwrap();
    eventually(fake, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(
        roles(fake, "cp-1"),
        "etcd,control-plane",
        "{:#}",
        node_of(fake, "cp-1")
    );
    assert_eq!(
        roles(fake, "gpu-1"),
        "worker",
        "{:#}",
        node_of(fake, "gpu-1")
    );
    assert_eq!(bed.calls().len(), 1);
}

#[tokio::test]
async fn a_refused_clusters_nodes_show_their_roles_all_the_same() {
    // No SSH key Secret: the Cluster is refused before any operation writes a Node status.
    let bed = Bed::new(fake_with_two_roles(false), true, never_fails());
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed.fake;
    eventually(fake, "Ready=False SecretMissing", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "SecretMissing")
    })
    .await;
    eventually(fake, "status.roles on both Nodes", |f| {
        (roles(f, "cp-1") == "etcd,control-plane" && roles(f, "gpu-1") == "worker").then_some(())
    })
    .await;
    assert!(bed.calls().is_empty(), "nothing runs: {:?}", bed.calls());
    assert!(
        node_of(fake, "cp-1")["status"]["phase"].is_null(),
        "only the roles are written: {:#}",
        node_of(fake, "cp-1")
    );
}

#[tokio::test]
async fn a_converged_cluster_fills_in_missing_or_stale_roles_without_an_operation() {
    let bed = Bed::new(fake(true, "Orphan"), true, never_fails());
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed.fake;
    eventually(fake, "Ready=True", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    // As an operator from before `status.roles` left it: no roles on a Ready Node.
    let mut gpu = node_of(fake, "gpu-1");
    gpu["status"]
        .as_object_mut()
        .expect("gpu-1 has a status")
        .remove("roles");
    fake.put(gpu);
    eventually(fake, "gpu-1's roles written again", |f| {
        (roles(f, "gpu-1") == "worker").then_some(())
    })
    .await;
    assert_eq!(bed.calls().len(), 1, "no operation ran for it");
    assert_eq!(node_of(fake, "gpu-1")["status"]["phase"], "Ready");
}
