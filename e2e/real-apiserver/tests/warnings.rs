//! The routing layer records the real server's `Warning` headers, e.g. for an unknown field
//! that the server prunes from a write, so a test can insist that the code under test
//! writes nothing the schema lacks.

use kube::{
    Api,
    api::{DynamicObject, PostParams},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{RealApiServer, mirror::kubegrid_resources};
use serde_json::json;

#[tokio::test]
async fn the_routed_client_records_the_real_servers_warnings() {
    let test = "the_routed_client_records_the_real_servers_warnings";
    let Some(server) = RealApiServer::for_test(test).await else {
        return;
    };
    server.apply_crds(&kubegrid_api::crds()).await.unwrap();
    let fake = FakeCluster::new();
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        server.routed_client(&fake, Some("op-a")),
        "fleet",
        &kubegrid_resources()[0],
    );
    let mut cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "gpu", "namespace": "fleet"},
        "spec": {
            "kubernetesVersion": "v1.31.4",
            "controlPlaneEndpoint": {"address": "10.213.99.11"},
            "network": {"podCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12"},
            "containerRuntime": {"containerd": {"version": "1.7"}},
            "ssh": {"user": "root", "privateKeySecretRef": {"name": "gpu-ssh"}},
        }
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    assert_eq!(server.routed_warnings(), Vec::<String>::new());
    cluster.metadata.name = Some("gpu-2".into());
    cluster.data["spec"]["noSuchField"] = json!(1);
    let stored = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    assert!(stored.data["spec"].get("noSuchField").is_none(), "pruned");
    let warnings = server.routed_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("POST /apis/kubegrid.io/v1alpha1/namespaces/fleet/clusters")
            && warnings[0].contains("unknown field")
            && warnings[0].contains("spec.noSuchField"),
        "{warnings:#?}"
    );
    server.stop().await;
}
