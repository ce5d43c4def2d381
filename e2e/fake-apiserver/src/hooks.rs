//! Test hooks: seeding and reading objects of the generic store, waiting for changes, and
//! injecting failures.

use serde_json::Value;

use crate::{FakeCluster, Partition, kinds::Resource, routes::InjectedFailure, store::ObjectKey};

impl FakeCluster {
    /// Stores `object` whole (status included), as an administrator or another controller
    /// would, and returns it as stored. Its resource comes from `apiVersion` and `kind`
    /// (e.g. `kubegrid.io/v1alpha1` `Cluster`, `v1` `Secret`, `coordination.k8s.io/v1`
    /// `Lease`); the fake fills in `uid`, `creationTimestamp` and `generation` when absent and
    /// sets a new `resourceVersion`; watches see ADDED or MODIFIED. Core `v1` Nodes, Pods and
    /// Namespaces go to the special routes' tables instead ([`FakeCluster::add_node`],
    /// [`FakeCluster::add_pod`]).
    ///
    /// # Panics
    ///
    /// When `object` lacks `apiVersion`, `kind` or `metadata.name`, or its `metadata` is
    /// not an object, or it adds a finalizer to an object being deleted: a broken fixture.
    pub fn put(&self, object: Value) -> Value {
        let api_version = object["apiVersion"].as_str().expect("object apiVersion");
        let kind = object["kind"].as_str().expect("object kind");
        let name = object["metadata"]["name"]
            .as_str()
            .expect("object metadata.name")
            .to_owned();
        match (api_version, kind) {
            ("v1", "Node") => {
                self.add_node(object.clone());
                return object;
            }
            ("v1", "Pod") => {
                self.add_pod(object.clone());
                return object;
            }
            ("v1", "Namespace") => {
                self.state().namespaces.insert(name);
                return object;
            }
            _ => {}
        }
        let key = ObjectKey {
            resource: Resource::of_kind(api_version, kind),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name,
        };
        self.state().store.put(key, object)
    }

    /// The stored object of `api_version` and `kind` named `name` in `namespace` (empty for
    /// cluster-scoped objects).
    pub fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let key = key(api_version, kind, namespace, name);
        self.state().store.get(&key).cloned()
    }

    /// The stored objects of `api_version` and `kind`, in `namespace` or in all of them.
    pub fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let resource = Resource::of_kind(api_version, kind);
        self.state()
            .store
            .list(&resource, namespace)
            .cloned()
            .collect()
    }

    /// Deletes an object as `kubectl delete` would: one with finalizers only gets a
    /// `deletionTimestamp` and stays until a write empties them. Returns whether it existed.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let key = key(api_version, kind, namespace, name);
        self.state().store.delete(&key, &Value::Null).is_ok()
    }

    /// The current resourceVersion: it grows with every write to the object store.
    pub fn resource_version(&self) -> u64 {
        self.state().store.revision()
    }

    /// Gives `plural` in API group `group` a status subresource, as kubegrid.io `clusters`
    /// and `nodes` have from the start.
    pub fn enable_status_subresource(&self, group: &str, plural: &str) -> &Self {
        self.state()
            .store
            .enable_status(Resource::new(group, plural));
        self
    }

    /// Waits until `check` returns `Some`, calling it now and after every write to the
    /// object store (and every partition change and Node patch). Wrap it in
    /// `tokio::time::timeout`.
    pub async fn wait_for<T>(&self, mut check: impl FnMut(&FakeCluster) -> Option<T>) -> T {
        let mut changes = self.state().store.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(self) {
                return found;
            }
            // The sender lives in the state this handle keeps alive, so this never fails;
            // a closed channel would only mean nothing can change any more.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Cuts client `client` ([`FakeCluster::client_as`]) off the API: its requests fail with
    /// a transport error and its open watches end with one, until [`FakeCluster::heal`].
    pub fn partition(&self, client: &str) -> &Self {
        self.partition_with(client, Partition::Refuse)
    }

    /// Cuts client `client` off the way `how` says.
    pub fn partition_with(&self, client: &str, how: Partition) -> &Self {
        let mut state = self.state();
        state.partitions.insert(client.to_owned(), how);
        state.store.notify();
        self
    }

    /// Ends the partition of `client`; its later requests reach the API again.
    pub fn heal(&self, client: &str) -> &Self {
        let mut state = self.state();
        state.partitions.remove(client);
        state.store.notify();
        self
    }

    /// Holds back the watch events of `plural` in API group `group` for every write from now
    /// on: open and new watches deliver them only after [`FakeCluster::release_watches`],
    /// while reads already see the writes. A real apiserver's watch can lag the writes it
    /// acknowledged like this, so a controller's cached copy can be older than what it wrote.
    pub fn hold_watches(&self, group: &str, plural: &str) -> &Self {
        let mut state = self.state();
        let now = state.store.revision();
        state.held_watches.insert(Resource::new(group, plural), now);
        self
    }

    /// Delivers the watch events [`FakeCluster::hold_watches`] held back, and those after.
    pub fn release_watches(&self, group: &str, plural: &str) -> &Self {
        let mut state = self.state();
        state.held_watches.remove(&Resource::new(group, plural));
        state.store.notify();
        self
    }

    /// Fails the next `times` requests whose method is `method` (e.g. `PUT`) and whose path
    /// starts with `path_prefix` with a `Status` of `code`, from any client. Earlier calls
    /// take precedence while their count lasts.
    pub fn fail_next(&self, method: &str, path_prefix: &str, code: u16, times: usize) -> &Self {
        if times > 0 {
            self.state().failures.push(InjectedFailure {
                method: method.to_owned(),
                path_prefix: path_prefix.to_owned(),
                code,
                left: times,
            });
        }
        self
    }

    /// Requests that reached the API from client `client`, as `METHOD path?query`.
    pub fn requests_from(&self, client: &str) -> Vec<String> {
        self.state()
            .client_requests
            .iter()
            .filter(|(name, _)| name == client)
            .map(|(_, line)| line.clone())
            .collect()
    }
}

/// The store's key of an object.
pub(crate) fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        resource: Resource::of_kind(api_version, kind),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}
