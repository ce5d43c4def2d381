//! The HTTPS front: a client in another process's shoes (one kubeconfig, one endpoint) reaches
//! the real server's kubegrid.io groups and the fake's Secrets through it, watches stream
//! through it, and it counts the requests per side.

use crate::common::{
    assert_each_on_its_side, cluster_object, cluster_resource, create_secret, server_with_crds,
};
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api,
    api::{DynamicObject, PostParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::Front;

#[tokio::test]
async fn the_front_serves_both_sides_over_https_and_streams_watches() {
    let test = "the_front_serves_both_sides_over_https_and_streams_watches";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let fake = FakeCluster::new();
    let front = Front::start(&server, &fake).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("front.kubeconfig");
    front.write_kubeconfig(&server, "op-a", &path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{}/", front.url()));
    let client = kube::Client::try_from(config).unwrap();

    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "fleet", &cluster_resource());
    // A watch opened before the Cluster exists sees it arrive: the stream passes through.
    let mut events = clusters
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap()
        .boxed();
    clusters
        .create(&PostParams::default(), &cluster_object("gpu"))
        .await
        .unwrap();
    let added = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Added(object) = event {
                return object;
            }
        }
        panic!("the watch ended without an ADDED event");
    })
    .await
    .expect("an ADDED event within 20 s");
    assert_eq!(added.metadata.name.as_deref(), Some("gpu"));

    create_secret(client).await;
    // The Secret is in the fake only, the Cluster on the real server only.
    assert_each_on_its_side(&server, &fake).await;
    // The client is named by its certificate on the fake's side.
    assert!(
        fake.state()
            .client_requests
            .iter()
            .any(|(client, request)| client == "op-a" && request.contains("/secrets")),
        "the fake saw op-a's Secret request"
    );
    // The watch and the create went to the real server, the Secret to the fake.
    let tally = front.tally();
    assert_eq!((tally.real, tally.fake), (2, 1), "{:?}", front.seen());
    let seen = front.seen();
    assert!(
        seen.iter()
            .any(|s| s.real && s.method == "GET" && s.path.contains("watch=true")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| !s.real
            && s.method == "POST"
            && s.path.starts_with("/api/v1/namespaces/fleet/secrets")),
        "{seen:?}"
    );
    drop(front);
    server.stop().await;
}
