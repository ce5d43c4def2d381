//! `status.roles`, which kubectl's `Roles` column prints: each Node's `spec.roles` as one
//! comma-separated string in spec order, written with the Node's status. On the fake and
//! with the Nodes on a real API server (its status subresource and schema).

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::common::*;

on_both!(
    an_operation_writes_each_nodes_roles_comma_separated_in_spec_order,
    a_refused_clusters_nodes_show_their_roles_all_the_same,
    a_converged_cluster_fills_in_missing_or_stale_roles_without_an_operation,
);

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

async fn an_operation_writes_each_nodes_roles_comma_separated_in_spec_order(backend: Backend) {
    // The gate holds the operation halfway: no reconcile converges meanwhile, so what the
    // Nodes show comes from the operation's own status writes.
    let bed = Bed::on(backend, fake_with_two_roles(true), false, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed;
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

async fn a_refused_clusters_nodes_show_their_roles_all_the_same(backend: Backend) {
    // No SSH key Secret: the Cluster is refused before any operation writes a Node status.
    let bed = Bed::on(backend, fake_with_two_roles(false), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed;
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

async fn a_converged_cluster_fills_in_missing_or_stale_roles_without_an_operation(
    backend: Backend,
) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let fake = &bed;
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
    bed.put(gpu).await;
    eventually(fake, "gpu-1's roles written again", |f| {
        (roles(f, "gpu-1") == "worker").then_some(())
    })
    .await;
    assert_eq!(bed.calls().len(), 1, "no operation ran for it");
    assert_eq!(node_of(fake, "gpu-1")["status"]["phase"], "Ready");
}
