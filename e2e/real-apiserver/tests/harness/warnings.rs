//! The routing layer records the real server's `Warning` headers, e.g. for an unknown field
//! that the server prunes from a write, so a test can insist that the code under test
//! writes nothing the schema lacks.

use crate::common::{cluster_object, server_with_crds};
use kube::{
    Api,
    api::{DynamicObject, PostParams},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::mirror::kubegrid_resources;
use serde_json::json;

#[tokio::test]
async fn the_routed_client_records_the_real_servers_warnings() {
    let test = "the_routed_client_records_the_real_servers_warnings";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let fake = FakeCluster::new();
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        server.routed_client(&fake, Some("op-a")),
        "fleet",
        &kubegrid_resources()[0],
    );
    let mut cluster = cluster_object("gpu");
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
