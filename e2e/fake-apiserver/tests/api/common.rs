//! Shared fixtures: kubegrid's Cluster resource, seen through kube's dynamic API.

use std::time::Duration;

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::{Value, json};

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `clusters.kubegrid.io`, which has a status subresource in the fake.
pub fn clusters() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubegrid.io", "v1alpha1", "Cluster"),
        "clusters",
    )
}

/// The Clusters of `namespace`.
pub fn cluster_api(client: Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &clusters())
}

/// A Cluster named `name` with `spec`.
pub fn cluster(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &clusters()).data(json!({ "spec": spec }))
}

/// The API error `result` failed with, as `(code, reason)`.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Runs `future`, failing the test when it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}
