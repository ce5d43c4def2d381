//! Watches stream each change as it happens: raw `Api::watch`, kube-runtime's `watcher`
//! (list-then-watch and streaming lists), resuming from a resourceVersion.

use crate::common::{cluster, cluster_api, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::PartialObjectMeta,
    runtime::watcher::{self, Event, watcher},
};
use kubegrid_fake_apiserver::FakeCluster;
use serde_json::json;

fn lease(name: &str, holder: &str) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name, "namespace": "default", "labels": { "app": "kubegrid" } },
        "spec": { "holderIdentity": holder },
    })
}

#[tokio::test]
async fn a_raw_watch_streams_each_change_when_it_happens() {
    let fake = FakeCluster::new();
    fake.put(lease("l1", "a"));
    let api: Api<Lease> = Api::namespaced(fake.client(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().labels("app=kubegrid"), &from)
        .await
        .expect("watch")
        .boxed();

    // The watch outlives each event: every one is read before the next write happens.
    fake.put(lease("l2", "b"));
    let added = within("ADDED", events.try_next()).await.unwrap().unwrap();
    assert!(
        matches!(&added, WatchEvent::Added(l) if l.name_any() == "l2"),
        "{added:?}"
    );

    let mut unlabelled = lease("l3", "c");
    unlabelled["metadata"]["labels"] = json!({});
    fake.put(unlabelled);
    fake.put(lease("l2", "c"));
    let modified = within("MODIFIED", events.try_next())
        .await
        .unwrap()
        .unwrap();
    let WatchEvent::Modified(l2) = modified else {
        panic!("expected MODIFIED l2 (l3 is not selected), got {modified:?}");
    };
    assert_eq!(l2.spec.unwrap().holder_identity.as_deref(), Some("c"));

    api.delete("l2", &DeleteParams::default()).await.unwrap();
    let deleted = within("DELETED", events.try_next()).await.unwrap().unwrap();
    assert!(
        matches!(&deleted, WatchEvent::Deleted(l) if l.name_any() == "l2"),
        "{deleted:?}"
    );
}

#[tokio::test]
async fn a_watch_from_zero_starts_with_what_exists() {
    let fake = FakeCluster::new();
    fake.put(lease("l1", "a"));
    let api: Api<Lease> = Api::namespaced(fake.client(), "default");
    let mut events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let first = within("synthetic ADDED", events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, WatchEvent::Added(l) if l.name_any() == "l1"),
        "{first:?}"
    );
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let fake = FakeCluster::new();
    let api: Api<Lease> = Api::namespaced(fake.client(), "default");
    let rv = fake.resource_version().to_string();
    let events = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap();
    let rest: Vec<_> = within("the stream to end", events.collect()).await;
    assert!(rest.is_empty(), "{rest:?}");
}

async fn runtime_watcher_sees_changes(config: watcher::Config) {
    let fake = FakeCluster::new();
    let api = cluster_api(fake.client(), "default");
    api.create(&PostParams::default(), &cluster("c1", json!({})))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), config).boxed();
    let mut next = async || {
        within("a watcher event", events.try_next())
            .await
            .unwrap()
            .unwrap()
    };

    assert!(matches!(next().await, Event::Init));
    assert!(matches!(next().await, Event::InitApply(c) if c.name_any() == "c1"));
    assert!(matches!(next().await, Event::InitDone));

    api.create(&PostParams::default(), &cluster("c2", json!({ "a": 1 })))
        .await
        .unwrap();
    assert!(matches!(next().await, Event::Apply(c) if c.name_any() == "c2"));
    let patch = json!({ "spec": { "a": 2 } });
    api.patch("c2", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(matches!(next().await, Event::Apply(c) if c.data["spec"]["a"] == 2));
    api.delete("c2", &DeleteParams::default()).await.unwrap();
    assert!(matches!(next().await, Event::Delete(c) if c.name_any() == "c2"));
}

#[tokio::test]
async fn kube_runtime_watcher_sees_added_modified_deleted() {
    runtime_watcher_sees_changes(watcher::Config::default()).await;
}

#[tokio::test]
async fn kube_runtime_streaming_list_watcher_sees_them_too() {
    runtime_watcher_sees_changes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn a_metadata_watcher_gets_partial_objects() {
    let fake = FakeCluster::new();
    fake.put(lease("l1", "a"));
    let api: Api<PartialObjectMeta<Lease>> = Api::namespaced(fake.client(), "default");
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    while names.is_empty() {
        if let Event::InitApply(meta) = within("metadata", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            names.push(meta.name_any());
        }
    }
    assert_eq!(names, ["l1"]);
    let lists =
        fake.requests_matching("GET /apis/coordination.k8s.io/v1/namespaces/default/leases");
    assert!(!lists.is_empty());
}

/// Held watch events (`hold_watches`, a lagging apiserver watch) reach an open watch only
/// after the release, in order; reads see the writes at once.
#[tokio::test]
async fn a_held_watch_delivers_the_held_changes_only_after_the_release() {
    use futures::FutureExt;
    let fake = FakeCluster::new();
    fake.put(lease("l1", "a"));
    let api: Api<Lease> = Api::namespaced(fake.client(), "default");
    let from = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &from)
        .await
        .expect("watch")
        .boxed();
    fake.hold_watches("coordination.k8s.io", "leases");
    fake.put(lease("l2", "b"));
    fake.put(lease("l1", "c"));
    assert_eq!(
        api.get("l1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("c"),
        "reads see the write"
    );
    // The in-process stream answers at once: with both changes held it has nothing.
    assert!(
        events.try_next().now_or_never().is_none(),
        "a held change was delivered"
    );
    fake.release_watches("coordination.k8s.io", "leases");
    let first = within("ADDED", events.try_next()).await.unwrap().unwrap();
    assert!(
        matches!(&first, WatchEvent::Added(l) if l.name_any() == "l2"),
        "{first:?}"
    );
    let second = within("MODIFIED", events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&second, WatchEvent::Modified(l) if l.name_any() == "l1"),
        "{second:?}"
    );
}
