//! Raw writes **for the real-apiserver harness's mirror only** (`kubegrid-real-apiserver`'s
//! `Mirror`): when a test keeps kubegrid's Clusters and Nodes on a real API server, the mirror
//! copies each of them, unchanged, into this store, so the test's synchronous helpers
//! ([`FakeCluster::get_object`], [`FakeCluster::list_objects`]) and waiters
//! ([`FakeCluster::wait_for`]) see the real objects. Nothing the fake serves is involved: the
//! harness's routing layer never sends those groups' requests here.

use serde_json::Value;

use crate::{FakeCluster, hooks::key};

impl FakeCluster {
    /// For the harness's mirror: stores `object` exactly as given (the real server's
    /// `resourceVersion`, `uid`, finalizers, `deletionTimestamp` and status), replacing any
    /// copy, and wakes [`FakeCluster::wait_for`]. Unlike [`FakeCluster::put`], the fake sets
    /// nothing, checks nothing, records no change for its own watches and does not move
    /// [`FakeCluster::resource_version`].
    ///
    /// # Panics
    ///
    /// When `object` lacks `apiVersion`, `kind` or `metadata.name`.
    pub fn mirror_put(&self, object: Value) {
        let field = |value: &Value, what: &str| -> String {
            value
                .as_str()
                .unwrap_or_else(|| panic!("object {what}"))
                .to_owned()
        };
        let key = key(
            &field(&object["apiVersion"], "apiVersion"),
            &field(&object["kind"], "kind"),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            &field(&object["metadata"]["name"], "metadata.name"),
        );
        self.state().store.mirror_put(key, object);
    }

    /// For the harness's mirror: removes the copy of an object the real server deleted, and
    /// wakes [`FakeCluster::wait_for`]. Returns whether there was one.
    pub fn mirror_remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.state()
            .store
            .mirror_remove(&key(api_version, kind, namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::FakeCluster;

    fn real_cluster(rv: &str) -> serde_json::Value {
        json!({
            "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster",
            "metadata": {
                "name": "gpu", "namespace": "fleet", "resourceVersion": rv,
                "uid": "real-uid", "generation": 3, "finalizers": ["kubegrid.io/cluster"],
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {"kubernetesVersion": "v1.31.4"},
            "status": {"phase": "Deleting"},
        })
    }

    #[tokio::test]
    async fn a_mirrored_object_is_stored_unchanged_and_wakes_waiters() {
        let fake = FakeCluster::new();
        let before = fake.resource_version();
        let waiter = {
            let fake = fake.clone();
            tokio::spawn(async move {
                fake.wait_for(|f| f.get_object("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu"))
                    .await
            })
        };
        fake.mirror_put(real_cluster("4711"));
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
        assert_eq!(seen, real_cluster("4711"));
        assert_eq!(
            fake.resource_version(),
            before,
            "the fake's own counter stays"
        );
        fake.mirror_put(real_cluster("4712"));
        assert_eq!(
            fake.get_object("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu"),
            Some(real_cluster("4712"))
        );
        let gone = {
            let fake = fake.clone();
            tokio::spawn(async move {
                fake.wait_for(|f| {
                    f.get_object("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu")
                        .is_none()
                        .then_some(())
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        assert!(fake.mirror_remove("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu"));
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .expect("the waiter woke on the removal")
            .unwrap();
        assert!(!fake.mirror_remove("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu"));
    }
}
