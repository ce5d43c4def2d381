//! Failure injection: partitions of named clients, and injected error statuses.

use std::time::Duration;

use crate::common::{api_error, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{PostParams, WatchParams},
};
use kubegrid_fake_apiserver::{FakeCluster, Partition};
use serde_json::json;

fn seed(fake: &FakeCluster) {
    fake.put(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "leader", "namespace": "default" },
    }));
}

#[tokio::test]
async fn a_partitioned_client_is_cut_off_until_healed() {
    let fake = FakeCluster::new();
    seed(&fake);
    let cut: Api<Lease> = Api::namespaced(fake.client_as("a"), "default");
    let other: Api<Lease> = Api::namespaced(fake.client_as("b"), "default");
    cut.get("leader")
        .await
        .expect("reachable before the partition");
    let rv = fake.resource_version().to_string();
    let mut open_watch = cut
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    fake.partition("a");
    let refused = cut.get("leader").await;
    assert!(
        matches!(refused, Err(kube::Error::Service(_))),
        "a transport error, not an API answer: {refused:?}"
    );
    let ended = within("the open watch to fail", open_watch.try_next()).await;
    assert!(ended.is_err(), "{ended:?}");
    other
        .get("leader")
        .await
        .expect("other clients still reach the API");
    assert_eq!(
        fake.requests_from("a").len(),
        2,
        "refused requests never arrive"
    );

    fake.heal("a");
    cut.get("leader").await.expect("reachable after heal");
    assert_eq!(fake.requests_from("a").len(), 3);
}

#[tokio::test]
async fn an_unavailable_partition_answers_503() {
    let fake = FakeCluster::new();
    seed(&fake);
    let cut: Api<Lease> = Api::namespaced(fake.client_as("a"), "default");
    fake.partition_with("a", Partition::Unavailable);
    assert_eq!(api_error(cut.get("leader").await).0, 503);
}

#[tokio::test]
async fn a_hanging_partition_answers_only_with_an_error_after_heal() {
    let fake = FakeCluster::new();
    seed(&fake);
    let cut: Api<Lease> = Api::namespaced(fake.client_as("a"), "default");
    fake.partition_with("a", Partition::Hang);
    let pending = tokio::spawn(async move { cut.get("leader").await });
    // A bounded check that nothing comes back while partitioned (not a wait for a state).
    let early = tokio::time::timeout(Duration::from_millis(200), async {
        while !pending.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        early.is_err(),
        "a hanging request answered during the partition"
    );
    fake.heal("a");
    let result = within("the hung request", pending).await.unwrap();
    assert!(matches!(result, Err(kube::Error::Service(_))), "{result:?}");
    assert!(
        fake.requests_from("a").is_empty(),
        "it never reached the store"
    );
}

#[tokio::test]
async fn fail_next_fails_matching_requests_a_given_number_of_times() {
    let fake = FakeCluster::new();
    seed(&fake);
    let api: Api<Lease> = Api::namespaced(fake.client(), "default");
    let lease = api.get("leader").await.unwrap();
    fake.fail_next("PUT", "/apis/coordination.k8s.io/", 500, 2);
    for _ in 0..2 {
        let failed = api.replace("leader", &PostParams::default(), &lease).await;
        assert_eq!(api_error(failed), (500, "InternalError".into()));
        api.get("leader")
            .await
            .expect("other verbs are not affected");
    }
    api.replace("leader", &PostParams::default(), &lease)
        .await
        .expect("third PUT passes");
}
