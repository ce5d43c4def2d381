//! The generic object store through kube's dynamic and typed APIs: create, get, list,
//! replace with a resourceVersion precondition, the status subresource, generations,
//! patches and finalizers.

use std::{convert::Infallible, sync::Arc};

use crate::common::{api_error, cluster, cluster_api, clusters};
use k8s_openapi::{
    ByteString,
    api::{coordination::v1::Lease, core::v1::Secret},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        finalizer::{Event, finalizer},
    },
};
use kubegrid_fake_apiserver::FakeCluster;
use serde_json::json;

#[tokio::test]
async fn creates_gets_lists_and_deletes_custom_objects() {
    let fake = FakeCluster::new();
    let api = cluster_api(fake.client(), "default");
    let mut first = cluster("c1", json!({ "kubernetesVersion": "1.31.0" }));
    first.labels_mut().insert("team".into(), "a".into());
    let created = api
        .create(&PostParams::default(), &first)
        .await
        .expect("create");
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.namespace().as_deref(), Some("default"));
    let version: u64 = created.resource_version().unwrap().parse().unwrap();
    assert_eq!(version, fake.resource_version());

    let again = api.create(&PostParams::default(), &first).await;
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));

    let mut unnamed = cluster("", json!({}));
    unnamed.metadata.name = None;
    unnamed.metadata.generate_name = Some("gen-".into());
    let generated = api
        .create(&PostParams::default(), &unnamed)
        .await
        .expect("generateName");
    assert!(
        generated.name_any().starts_with("gen-"),
        "{}",
        generated.name_any()
    );
    assert_eq!(generated.name_any().len(), "gen-".len() + 5);

    let elsewhere = cluster_api(fake.client(), "other");
    elsewhere
        .create(&PostParams::default(), &cluster("c9", json!({})))
        .await
        .expect("create in another namespace");

    let names = |list: kube::api::ObjectList<DynamicObject>| {
        list.items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    };
    let team = api
        .list(&ListParams::default().labels("team=a"))
        .await
        .expect("list");
    assert_eq!(names(team), ["c1"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c1"))
        .await
        .expect("list by name");
    assert_eq!(names(by_name), ["c1"]);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let everywhere: Api<DynamicObject> = Api::all_with(fake.client(), &clusters());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    let got = api.get("c1").await.expect("get");
    assert_eq!(got.data["spec"]["kubernetesVersion"], "1.31.0");
    assert_eq!(
        fake.get_object("kubegrid.io/v1alpha1", "Cluster", "default", "c1")
            .expect("stored")["metadata"]["uid"],
        json!(created.uid())
    );
    assert_eq!(api_error(api.get("nope").await), (404, "NotFound".into()));

    api.delete("c1", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(api_error(api.get("c1").await), (404, "NotFound".into()));
    assert!(api.get_opt("c1").await.expect("get_opt").is_none());
}

#[tokio::test]
async fn typed_secrets_and_lease_replace_precondition() {
    let fake = FakeCluster::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "kubegrid");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("ssh".into()),
            ..Default::default()
        },
        data: Some([("id_ed25519".to_owned(), ByteString(b"key".to_vec()))].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let read = secrets.get("ssh").await.expect("get secret");
    assert_eq!(read.data.unwrap()["id_ed25519"].0, b"key");
    assert_eq!(fake.list_objects("v1", "Secret", Some("kubegrid")).len(), 1);

    let leases: Api<Lease> = Api::namespaced(fake.client(), "kubegrid");
    let mut lease = Lease::default();
    lease.metadata.name = Some("leader".into());
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");

    let mut mine = created.clone();
    mine.spec.get_or_insert_default().holder_identity = Some("a".into());
    let renewed = leases
        .replace("leader", &PostParams::default(), &mine)
        .await
        .expect("replace with the read resourceVersion");
    assert_ne!(renewed.resource_version(), created.resource_version());

    // A second writer still holding the first read loses: the precondition is stale.
    let mut theirs = created.clone();
    theirs.spec.get_or_insert_default().holder_identity = Some("b".into());
    let stale = leases
        .replace("leader", &PostParams::default(), &theirs)
        .await;
    assert_eq!(api_error(stale), (409, "Conflict".into()));
    let stored = fake
        .get_object("coordination.k8s.io/v1", "Lease", "kubegrid", "leader")
        .expect("lease");
    assert_eq!(stored["spec"]["holderIdentity"], "a");
}

#[tokio::test]
async fn status_subresource_and_generation_are_kept_apart() {
    let fake = FakeCluster::new();
    let api = cluster_api(fake.client(), "default");
    let mut with_status = cluster("c1", json!({ "kubernetesVersion": "1.31.0" }));
    with_status.data["status"] = json!({ "phase": "Ready" });
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "create ignores status"
    );

    // A main-resource write changes spec (generation moves) but never status.
    let mut changed = created.clone();
    changed.data["spec"]["kubernetesVersion"] = json!("1.32.0");
    changed.data["status"] = json!({ "phase": "Hacked" });
    let replaced = api
        .replace("c1", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert!(replaced.data.get("status").is_none());

    // A status write changes status only; generation stays.
    let patch =
        json!({ "spec": { "kubernetesVersion": "9.9.9" }, "status": { "phase": "Progressing" } });
    let patched = api
        .patch_status("c1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Progressing");
    assert_eq!(patched.data["spec"]["kubernetesVersion"], "1.32.0");
    assert_eq!(patched.metadata.generation, Some(2));

    let mut status_only = patched.clone();
    status_only.data["status"]["phase"] = json!("Ready");
    status_only.data["spec"]["kubernetesVersion"] = json!("0.0.1");
    let replaced = api
        .replace_status("c1", &PostParams::default(), &status_only)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"]["phase"], "Ready");
    assert_eq!(replaced.data["spec"]["kubernetesVersion"], "1.32.0");

    // Metadata-only changes leave the generation alone.
    let labels = json!({ "metadata": { "labels": { "x": "y" } } });
    let labelled = api
        .patch("c1", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    assert_eq!(labelled.data["status"]["phase"], "Ready");

    // Writing what is already there changes nothing: same resourceVersion, no event.
    let before = fake.resource_version();
    let again = api
        .patch("c1", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), labelled.resource_version());
    assert_eq!(fake.resource_version(), before);

    // A Secret has no status subresource.
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "default");
    let missing = secrets
        .patch_status("s", &PatchParams::default(), &Patch::Merge(json!({})))
        .await;
    assert_eq!(api_error(missing).0, 404);
}

#[tokio::test]
async fn apply_creates_and_merges_and_json_patch_tests_hold() {
    let fake = FakeCluster::new();
    let api = cluster_api(fake.client(), "default");
    let apply = PatchParams::apply("kubegrid-test").force();
    let body = json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster",
        "metadata": { "name": "c1" }, "spec": { "a": 1 },
    });
    let created = api
        .patch("c1", &apply, &Patch::Apply(&body))
        .await
        .expect("apply creates");
    assert_eq!(created.data["spec"]["a"], 1);
    let more = json!({ "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster", "metadata": { "name": "c1" }, "spec": { "b": 2 } });
    // Another manager's apply adds to what the first one set.
    let merged = api
        .patch(
            "c1",
            &PatchParams::apply("another-manager").force(),
            &Patch::Apply(&more),
        )
        .await
        .expect("apply merges");
    assert_eq!(merged.data["spec"], json!({ "a": 1, "b": 2 }));
    // The first manager applying without `a` gives it up, as field ownership does on the
    // API server; `b` is the other manager's and stays.
    let less = json!({ "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster", "metadata": { "name": "c1" }, "spec": { "c": 3 } });
    let dropped = api
        .patch("c1", &apply, &Patch::Apply(&less))
        .await
        .expect("apply drops what it no longer sets");
    assert_eq!(dropped.data["spec"], json!({ "b": 2, "c": 3 }));
    let unnamed_manager = api
        .patch("c1", &PatchParams::default(), &Patch::Apply(&more))
        .await;
    assert_eq!(api_error(unnamed_manager).0, 422);

    let failing: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/spec/a", "value": 7 },
        { "op": "replace", "path": "/spec/b", "value": 3 },
    ]))
    .unwrap();
    let refused = api
        .patch("c1", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await;
    assert_eq!(api_error(refused).0, 422);
    assert_eq!(api.get("c1").await.unwrap().data["spec"]["b"], 2);

    let passing: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/spec/c", "value": 3 },
        { "op": "replace", "path": "/spec/b", "value": 3 },
    ]))
    .unwrap();
    let patched = api
        .patch("c1", &PatchParams::default(), &Patch::Json::<()>(passing))
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["b"], 3);
    assert_eq!(patched.metadata.generation, Some(4));
}

/// kube-runtime's `finalizer` helper adds its finalizer with a JSON patch, runs cleanup
/// once the object is deleted and removes it; only then does the object go away.
#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    const FINALIZER: &str = "kubegrid.io/cleanup";
    let fake = FakeCluster::new();
    let api = cluster_api(fake.client(), "default");
    api.create(&PostParams::default(), &cluster("c1", json!({})))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..2 {
        let current = Arc::new(api.get("c1").await.unwrap());
        finalizer(&api, FINALIZER, current, |event| {
            seen.push(matches!(event, Event::Apply(_)));
            async { Ok::<_, Infallible>(Action::await_change()) }
        })
        .await
        .expect("finalizer step");
    }
    assert_eq!(
        seen,
        [true],
        "first call adds the finalizer, second applies"
    );
    assert_eq!(api.get("c1").await.unwrap().finalizers(), [FINALIZER]);

    let pending = api.delete("c1", &DeleteParams::default()).await.unwrap();
    let pending = pending
        .left()
        .expect("a finalized object is returned, not a Status");
    assert!(pending.metadata.deletion_timestamp.is_some());
    // As kube-apiserver does (a real apiextensions-apiserver showed it), setting the
    // deletionTimestamp moves the generation: the object's desired state changed.
    assert_eq!(pending.metadata.generation, Some(2));
    let held = api
        .get("c1")
        .await
        .expect("still there while the finalizer is set");

    // No finalizer may be added to an object being deleted.
    let add = json!({ "metadata": { "finalizers": [FINALIZER, "other/x"] } });
    let refused = api
        .patch("c1", &PatchParams::default(), &Patch::Merge(&add))
        .await;
    assert_eq!(api_error(refused).0, 422);

    let mut cleaned = false;
    finalizer(&api, FINALIZER, Arc::new(held), |event| {
        cleaned = matches!(event, Event::Cleanup(_));
        async { Ok::<_, Infallible>(Action::await_change()) }
    })
    .await
    .expect("cleanup step");
    assert!(cleaned);
    assert!(
        api.get_opt("c1").await.unwrap().is_none(),
        "gone once finalizers are empty"
    );
    assert!(
        fake.get_object("kubegrid.io/v1alpha1", "Cluster", "default", "c1")
            .is_none()
    );
}
