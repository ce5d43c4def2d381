//! The harness itself: the real server starts, serves kubegrid's CRDs with discovery,
//! refuses clients outside `system:masters`, and the routing layer sends each group to its
//! side.

use crate::common::{
    assert_each_on_its_side, cluster_object, cluster_resource, create_secret, server_with_crds,
};
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_pki::{LeafSpec, Usage};
use kubegrid_real_apiserver::RealApiServer;

/// A client of `server` with a certificate of `group` signed by the server's CA.
async fn client_in_group(server: &RealApiServer, group: &str) -> kube::Client {
    let cert = server
        .ca()
        .issue(&LeafSpec {
            common_name: "someone".into(),
            organizations: vec![group.into()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: Usage::Client,
            validity: std::time::Duration::from_secs(3600),
        })
        .unwrap();
    let text =
        kubegrid_pki::kubeconfig("t", server.url(), server.ca().cert_pem(), "someone", &cert)
            .unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&text).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_real_server_serves_kubegrids_crds_with_discovery_to_masters_only() {
    let test = "the_real_server_serves_kubegrids_crds_with_discovery_to_masters_only";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    // Aggregated discovery, as kubectl 1.36 asks for it, lists the CRDs' groups.
    let request = http::Request::get("/apis")
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .body(Vec::new())
        .unwrap();
    let groups = server.client().request_text(request).await.unwrap();
    assert!(groups.contains("\"kubegrid.io\""), "{groups}");
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(server.client(), "fleet", &cluster_resource());
    clusters
        .create(&PostParams::default(), &cluster_object("gpu"))
        .await
        .unwrap();
    // A certificate outside system:masters is authenticated but not authorized: its
    // SubjectAccessReview has no core API to go to, so the server answers 500.
    let outsider: Api<DynamicObject> = Api::namespaced_with(
        client_in_group(&server, "kubegrid-tenants").await,
        "fleet",
        &cluster_resource(),
    );
    let refused = outsider.get("gpu").await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 500 && s.message.contains("subjectaccessreviews")),
        "{refused:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_routed_client_sends_kubegrid_io_to_the_real_server_and_secrets_to_the_fake() {
    let test = "the_routed_client_sends_kubegrid_io_to_the_real_server_and_secrets_to_the_fake";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let fake = FakeCluster::new();
    let routed = server.routed_client(&fake, Some("op-a"));
    create_secret(routed.clone()).await;
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(routed.clone(), "fleet", &cluster_resource());
    clusters
        .create(&PostParams::default(), &cluster_object("gpu"))
        .await
        .unwrap();
    // The Secret is in the fake only, the Cluster on the real server only.
    assert_each_on_its_side(&server, &fake).await;
    assert!(
        fake.state()
            .client_requests
            .iter()
            .any(|(client, request)| client == "op-a" && request.contains("/secrets")),
        "the fake saw op-a's Secret request"
    );
    server.stop().await;
}
