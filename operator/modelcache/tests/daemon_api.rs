//! The node daemon's interfaces: the control API's token, `/metrics`, and the Leases it
//! hands back at shutdown (setup in `common`).

#[expect(dead_code, reason = "these tests use part of the shared setup")]
mod common;

use common::{Bed, COMMIT, URI, ready, sample};

#[tokio::test]
async fn joins_without_the_cache_token_are_refused() {
    let bed = Bed::new().await;
    let coordinator = bed.daemon("gpu-a").await;
    assert_eq!(ready(&coordinator, &bed.model()).await, COMMIT);
    let key = kubegrid_serving::names::cache_key(URI);
    let identity = coordinator.identity();
    let control = identity.split_once('@').unwrap().1;
    let url = format!("http://{control}/v1/models/{key}/join");
    let body = serde_json::json!({"id": "intruder", "addr": "127.0.0.1:1"});
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong"), Some("t0ken")] {
        let mut request = client.post(&url).json(&body);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 401, "{auth:?}");
    }
    let answer = client
        .post(&url)
        .bearer_auth("t0ken")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let published: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(published["commit"], COMMIT);
    assert_eq!(published["epoch"], 0);
}

#[tokio::test]
async fn metrics_show_each_nodes_bytes_by_source_progress_epoch_and_readiness() {
    let bed = Bed::new().await;
    let (a, b) = (bed.daemon("gpu-a").await, bed.daemon("gpu-b").await);
    let model = bed.model();
    tokio::join!(ready(&a, &model), ready(&b, &model));
    let (coordinator, _) = bed.holder().unwrap();
    let client = reqwest::Client::new();
    let size = bed.size() as f64;
    for (node, daemon) in [("gpu-a", &a), ("gpu-b", &b)] {
        // No token: Prometheus and the kubelet scrape as they are.
        let base = format!("http://{}", daemon.control_addr());
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let get = |name: &str| sample(&text, name, node);
        let leads = node == coordinator;
        let (source, peers) = if leads { (size, 0.0) } else { (0.0, size) };
        assert_eq!(
            get("kubegrid_model_cache_source_bytes_total").unwrap_or(0.0),
            source,
            "{node}:\n{text}"
        );
        assert_eq!(
            get("kubegrid_model_cache_peer_bytes_total").unwrap_or(0.0),
            peers,
            "{node}"
        );
        assert_eq!(
            get("kubegrid_model_cache_model_size_bytes"),
            Some(size),
            "{node}"
        );
        assert_eq!(
            get("kubegrid_model_cache_cached_bytes"),
            Some(size),
            "{node}"
        );
        assert_eq!(get("kubegrid_model_cache_ready"), Some(1.0), "{node}");
        assert_eq!(
            get("kubegrid_model_cache_coordinator_epoch"),
            Some(0.0),
            "{node}"
        );
        assert_eq!(
            get("kubegrid_model_cache_coordinating"),
            Some(f64::from(u8::from(leads))),
            "{node}"
        );
        assert!(
            get("kubegrid_model_cache_time_to_ready_seconds").is_some_and(|s| s > 0.0),
            "{node}"
        );
    }
    // Every name the dashboard may use is exported, the counters from 0.
    let text = a.metrics().render();
    for name in kubegrid_modelcache::daemon::METRIC_NAMES {
        let family = name.trim_end_matches("_total");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{name} missing:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_coordinator_shut_down_hands_its_lease_back_at_once() {
    let bed = Bed::new().await;
    let coordinator = bed.daemon("gpu-a").await;
    assert_eq!(ready(&coordinator, &bed.model()).await, COMMIT);
    assert_eq!(bed.holder().map(|(h, _)| h).as_deref(), Some("gpu-a"));
    coordinator.shutdown().await;
    // Released, not left to expire: the Lease names nobody the moment shutdown returns.
    let key = kubegrid_serving::names::cache_key(URI);
    let lease = bed
        .fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            &kubegrid_modelcache::daemon::lease_name(&key),
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_none_or(str::is_empty),
        "{lease}"
    );
    // The next node takes it at the next epoch and finishes on its own.
    let next = bed.daemon("gpu-b").await;
    assert_eq!(ready(&next, &bed.model()).await, COMMIT);
    assert_eq!(bed.holder(), Some(("gpu-b".to_string(), 1)));
}
