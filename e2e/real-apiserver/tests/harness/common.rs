//! What the harness tests share: a server with kubegrid's CRDs, and a valid Cluster.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::ApiResource,
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{RealApiServer, mirror::kubegrid_resources};
use serde_json::json;

/// A real server with kubegrid's CRDs Established, or `None` (SKIPPED) without the build
/// outside CI.
pub(crate) async fn server_with_crds(test: &str) -> Option<RealApiServer> {
    let server = RealApiServer::for_test(test).await?;
    server.apply_crds(&kubegrid_api::crds()).await.unwrap();
    Some(server)
}

/// kubegrid.io Clusters.
pub(crate) fn cluster_resource() -> ApiResource {
    kubegrid_resources()
        .into_iter()
        .find(|r| r.kind == "Cluster")
        .unwrap()
}

/// A Cluster the CRD's schema and rules accept, in namespace `fleet`.
pub(crate) fn cluster_object(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": "fleet"},
        "spec": {
            "kubernetesVersion": "v1.31.4",
            "controlPlaneEndpoint": {"address": "10.213.99.11"},
            "network": {"podCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12"},
            "containerRuntime": {"containerd": {"version": "1.7"}},
            "ssh": {"user": "root", "privateKeySecretRef": {"name": "gpu-ssh"}},
        }
    }))
    .unwrap()
}

/// Creates Secret `gpu-ssh` in `fleet` through `client`.
pub(crate) async fn create_secret(client: kube::Client) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gpu-ssh", "namespace": "fleet"},
        "stringData": {"ssh-privatekey": "stand-in"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, "fleet")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Asserts that Secret `gpu-ssh` is in the fake only and Cluster `gpu` on the real server
/// only, where the server gave it what the fake would not (a uid).
pub(crate) async fn assert_each_on_its_side(server: &RealApiServer, fake: &FakeCluster) {
    assert!(
        fake.get_object("v1", "Secret", "fleet", "gpu-ssh")
            .is_some()
    );
    assert!(
        fake.get_object("kubegrid.io/v1alpha1", "Cluster", "fleet", "gpu")
            .is_none()
    );
    let direct: Api<DynamicObject> =
        Api::namespaced_with(server.client(), "fleet", &cluster_resource());
    assert!(direct.get("gpu").await.unwrap().metadata.uid.is_some());
}
