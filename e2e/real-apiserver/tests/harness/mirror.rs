//! The mirror copies the real server's Clusters and Nodes into the fake unchanged, follows
//! their changes (finalizers, deletions) so the fake's waiters wake, and `sync` brings the
//! copies up to the server at once.

use std::time::Duration;

use crate::common::server_with_crds;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::mirror::kubegrid_resources;
use serde_json::{Value, json};

const API: &str = "kubegrid.io/v1alpha1";

/// A Cluster with `finalizers`.
fn cluster_object(name: &str, finalizers: &[&str]) -> DynamicObject {
    let mut cluster = crate::common::cluster_object(name);
    cluster.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    cluster
}

/// Waits (on the fake's change notifications, not a timer) until the copy of Cluster
/// `name` passes `check`.
async fn copy_until(fake: &FakeCluster, name: &str, check: impl Fn(Option<&Value>) -> bool) {
    let waited = fake.wait_for(|f| {
        let copy = f.get_object(API, "Cluster", "fleet", name);
        check(copy.as_ref()).then_some(())
    });
    tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .unwrap_or_else(|_| panic!("the mirror never showed the change of Cluster {name}"));
}

#[tokio::test]
async fn the_mirror_copies_real_objects_unchanged_and_follows_finalizers_and_deletions() {
    let test = "the_mirror_copies_real_objects_unchanged_and_follows_finalizers_and_deletions";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(server.client(), "fleet", &kubegrid_resources()[0]);
    let before = clusters
        .create(&PostParams::default(), &cluster_object("before", &[]))
        .await
        .unwrap();
    let fake = FakeCluster::new();
    let mirror = server.mirror(&fake, kubegrid_resources()).await.unwrap();
    // What existed is copied at start, exactly as the server has it.
    let copy = fake
        .get_object(API, "Cluster", "fleet", "before")
        .expect("copied at start");
    assert_eq!(copy, serde_json::to_value(&before).unwrap());
    assert_eq!(
        copy["spec"]["controlPlaneEndpoint"]["port"], 6443,
        "defaulted"
    );

    // Later changes arrive through the watch and wake the fake's waiters.
    clusters
        .create(
            &PostParams::default(),
            &cluster_object("held", &["kubegrid.io/cluster"]),
        )
        .await
        .unwrap();
    copy_until(&fake, "held", |c| c.is_some()).await;
    clusters
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    copy_until(&fake, "held", |c| {
        c.is_some_and(|c| c["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    let release = json!({"metadata": {"finalizers": null}});
    clusters
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    copy_until(&fake, "held", |c| c.is_none()).await;

    // `sync` shows every completed write at once, without waiting for the watch.
    clusters
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let after = clusters
        .create(&PostParams::default(), &cluster_object("after", &[]))
        .await
        .unwrap();
    mirror.sync().await.unwrap();
    assert!(fake.get_object(API, "Cluster", "fleet", "before").is_none());
    assert_eq!(
        fake.get_object(API, "Cluster", "fleet", "after"),
        Some(serde_json::to_value(&after).unwrap())
    );
    drop(mirror);
    server.stop().await;
}
