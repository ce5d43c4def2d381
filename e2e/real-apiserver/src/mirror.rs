//! The mirror: copies kubegrid's Clusters and Nodes from the real API server, unchanged, into
//! a [`FakeCluster`]'s store, so a test that runs the operator on a [routed
//! client](crate::RealApiServer::routed_client) keeps reading and waiting on them with the
//! fake's synchronous helpers (`get_object`, `list_objects`, `wait_for`).
//!
//! The copy is for the test's own eyes only: the routing layer never sends a kubegrid.io
//! request to the fake, so the operator reads and writes the real objects. Each copy is the
//! real object as the server last reported it (its `resourceVersion`, `uid`, `generation`,
//! finalizers, `deletionTimestamp`, status and `managedFields`), written with
//! [`FakeCluster::mirror_put`] and removed with [`FakeCluster::mirror_remove`] when the real
//! one is gone; both wake the fake's waiters.
//!
//! One watch per resource (all namespaces) follows the changes; it re-lists after a 410
//! Gone or a broken stream. Watch streams of different resources are not ordered with each
//! other, so [`Mirror::sync`] brings every copy up to one consistent list of the server:
//! call it after a write, or after a wait, before looking at several objects together.
//! Copies only move forward: a change is applied only when its `resourceVersion` (etcd's
//! revision, a number on this server) is newer than the last one applied for that object.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use kube::{
    Api,
    api::{DynamicObject, ListParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use kubegrid_fake_apiserver::FakeCluster;

use crate::{Error, Result};

/// kubegrid's Clusters and Nodes (`kubegrid.io/v1alpha1`), what the reconciler scenarios
/// mirror.
pub fn kubegrid_resources() -> Vec<ApiResource> {
    [("Cluster", "clusters"), ("Node", "nodes")]
        .into_iter()
        .map(|(kind, plural)| {
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("kubegrid.io", "v1alpha1", kind),
                plural,
            )
        })
        .collect()
}

/// `apiVersion`, `kind`, namespace, name.
type Key = (String, String, String, String);

/// The last change applied to one object's copy.
#[derive(Debug, Clone, Copy)]
struct Applied {
    revision: u64,
    present: bool,
}

struct Shared {
    client: kube::Client,
    fake: FakeCluster,
    resources: Vec<ApiResource>,
    applied: Mutex<BTreeMap<Key, Applied>>,
}

/// A running mirror; dropping it stops the watches (the copies stay).
pub struct Mirror {
    shared: Arc<Shared>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Mirror {
    /// Copies every object of `resources` that `client` sees into `fake`, then follows their
    /// changes until dropped.
    pub async fn start(
        client: kube::Client,
        fake: &FakeCluster,
        resources: Vec<ApiResource>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            client,
            fake: fake.clone(),
            resources,
            applied: Mutex::default(),
        });
        shared.sync().await?;
        let watches = shared
            .resources
            .iter()
            .map(|resource| tokio::spawn(follow(Arc::clone(&shared), resource.clone())))
            .collect();
        Ok(Self { shared, watches })
    }

    /// Brings every copy up to one list of the server, taken now: each object as listed,
    /// and those no longer listed removed. After it returns, the copies show every write
    /// the server had completed when it was called.
    pub async fn sync(&self) -> Result<()> {
        self.shared.sync().await
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

impl Shared {
    async fn sync(&self) -> Result<()> {
        for resource in &self.resources {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|source| Error::Api {
                    what: format!("list of {} for the mirror", resource.plural),
                    source,
                })?;
            let at = revision(list.metadata.resource_version.as_deref());
            let mut listed = BTreeSet::new();
            for object in list.items {
                listed.insert(self.apply(resource, object, false));
            }
            // Whatever the list lacks was deleted before it was taken.
            let mut applied = self.applied.lock().expect("mirror lock");
            for (key, last) in applied.iter_mut() {
                if key.0 == resource.api_version
                    && key.1 == resource.kind
                    && last.present
                    && last.revision <= at
                    && !listed.contains(key)
                {
                    self.fake.mirror_remove(&key.0, &key.1, &key.2, &key.3);
                    *last = Applied {
                        revision: at,
                        present: false,
                    };
                }
            }
        }
        Ok(())
    }

    /// Applies one object as reported (or its deletion) when it is newer than the copy;
    /// returns its key.
    fn apply(&self, resource: &ApiResource, object: DynamicObject, deleted: bool) -> Key {
        let key = (
            resource.api_version.clone(),
            resource.kind.clone(),
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        let at = revision(object.metadata.resource_version.as_deref());
        let mut applied = self.applied.lock().expect("mirror lock");
        if applied.get(&key).is_some_and(|last| last.revision >= at) {
            return key;
        }
        applied.insert(
            key.clone(),
            Applied {
                revision: at,
                present: !deleted,
            },
        );
        if deleted {
            self.fake.mirror_remove(&key.0, &key.1, &key.2, &key.3);
        } else {
            let mut value = serde_json::to_value(&object).expect("a listed object is JSON");
            // List items may come without their type; the copy is looked up by it.
            value["apiVersion"] = resource.api_version.clone().into();
            value["kind"] = resource.kind.clone().into();
            self.fake.mirror_put(value);
        }
        key
    }
}

/// Follows the changes of `resource` until the mirror is dropped.
async fn follow(shared: Arc<Shared>, resource: ApiResource) {
    let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &resource);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                shared.apply(&resource, object, false);
            }
            Ok(watcher::Event::Delete(object)) => {
                shared.apply(&resource, object, true);
            }
            // A re-list does not say what was deleted while the watch was down; a sync does.
            Ok(watcher::Event::InitDone) => {
                if let Err(error) = shared.sync().await {
                    eprintln!("mirror: re-sync of {} failed: {error}", resource.plural);
                }
            }
            Ok(watcher::Event::Init) => {}
            // The watcher retries with backoff; a test that needs the change times out
            // with its own message.
            Err(error) => eprintln!("mirror: watch of {} failed: {error}", resource.plural),
        }
    }
}

/// The number in a `resourceVersion` of this server (etcd's revision).
fn revision(text: Option<&str>) -> u64 {
    let text = text.unwrap_or_default();
    text.parse().unwrap_or_else(|_| {
        panic!("mirror: resourceVersion {text:?} of the real API server is not a number")
    })
}
