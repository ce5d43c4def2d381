//! The daemon following LLMServices: two daemons in one process, their Leases and the
//! LLMServices on the TEST STAND-IN API server (e2e/fake-apiserver), the model on the TEST
//! STAND-IN hub (e2e/hub-standin).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, Retry},
    services::{FollowConfig, follow},
};
use serde_json::{Value, json};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const PATIENCE: Duration = Duration::from_secs(60);

fn llmservice(name: &str, uri: &str, args: &[&str]) -> Value {
    json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}")},
        "spec": {
            "model": {"uri": uri},
            "engine": {"image": "vllm/vllm-openai:v0.11.0", "args": args},
        },
    })
}

/// The hub stand-in with acme/llama and acme/other (the same files): the source folder, the
/// hub and the model's size.
async fn hub() -> (tempfile::TempDir, StandIn, u64) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let src = tempfile::tempdir().unwrap();
    let shard: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let files = [
        ("model.safetensors", shard.as_slice()),
        ("config.json", br#"{"model_type":"llama"}"#.as_slice()),
    ];
    let mut refs = Vec::new();
    for (i, (path, bytes)) in files.iter().enumerate() {
        let on_disk = src.path().join(format!("f{i}"));
        std::fs::write(&on_disk, bytes).unwrap();
        refs.push((*path, on_disk));
    }
    let size: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let hub = StandIn::start().await.unwrap();
    let refs: Vec<(&str, &Path)> = refs.iter().map(|(p, d)| (*p, d.as_path())).collect();
    hub.add("acme/llama", "main", COMMIT, &refs);
    hub.add("acme/other", "main", COMMIT, &refs);
    (src, hub, size)
}

/// Daemons on nodes gpu-a and gpu-b following the resources on `fake` (each copies at most
/// 2 MiB/s from the fan-out), reporting every 100 ms.
async fn nodes(
    fake: &FakeCluster,
    hub: &StandIn,
    roots: &Path,
) -> Vec<tokio::task::JoinHandle<kubegrid_modelcache::Result<()>>> {
    let mut running = Vec::new();
    for node in ["gpu-a", "gpu-b"] {
        let cfg = Config {
            node: node.into(),
            advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
            fanout_port: 0,
            control_port: 0,
            root: roots.join(node),
            namespace: "kubegrid-system".into(),
            token: "t0ken".into(),
            lease_duration: Duration::from_millis(1500),
            hub: Hub::new(&hub.url(), Retry::default()).unwrap(),
            upload_limit: None,
            download_limit: Some(2 << 20),
            capacity: None,
            whole_files: false,
        };
        let daemon = Arc::new(Daemon::start(cfg, fake.client_as(node)).await.unwrap());
        let follow_cfg = FollowConfig {
            keep: Vec::new(),
            namespace: None,
            report_every: Duration::from_millis(100),
        };
        running.push(tokio::spawn(follow(
            Arc::clone(&daemon),
            fake.client_as(node),
            follow_cfg,
        )));
    }
    running
}

#[tokio::test]
async fn nodes_cache_the_models_llmservices_name_and_report_their_copies_in_status() {
    let (_src, hub, size) = hub().await;
    let fake = FakeCluster::new();
    fake.enable_status_subresource("serving.kubegrid.io", "llmservices");
    fake.put(node("gpu-a", &json!({"gpu": "h100"})));
    fake.put(node("gpu-b", &json!({"gpu": "h100"})));
    // The serving controller's fields, which the cache must keep.
    let mut served = llmservice("llama", "hf://acme/llama@main", &[]);
    served["status"] = json!({"replicas": 2, "selector": "app=llama"});
    fake.put(served);
    // A spec the serving controller refuses (it sets a flag kubegrid manages): its model
    // is not cached, whatever it names.
    fake.put(llmservice(
        "refused",
        "hf://acme/other@main",
        &["--port", "9000"],
    ));
    // Writers race: the first two status writes lose, as to another node.
    let status_path = "/apis/serving.kubegrid.io/v1alpha1/namespaces/ml/llmservices/llama/status";
    fake.fail_next("PUT", status_path, 409, 2);

    let roots = tempfile::tempdir().unwrap();
    let running = nodes(&fake, &hub, roots.path()).await;

    // While copying (2 MiB/s into each node's fan-out), a node reports part of the model,
    // its rate and an ETA.
    let partial = tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| {
            let svc = f.get_object("serving.kubegrid.io/v1alpha1", "LLMService", "ml", "llama")?;
            svc["status"]["cache"]
                .as_array()?
                .iter()
                .find(|c| {
                    let bytes = c["bytes"].as_u64().unwrap_or(0);
                    c["ready"] == false
                        && bytes > 0
                        && bytes < size
                        && c["size"] == size
                        && c["bytesPerSecond"].as_u64() > Some(0)
                })
                .cloned()
        }),
    )
    .await
    .expect("a node reported progress");
    assert!(partial["etaSeconds"].as_u64().is_some(), "{partial}");

    let status = tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| {
            let svc = f.get_object("serving.kubegrid.io/v1alpha1", "LLMService", "ml", "llama")?;
            let cache = svc["status"]["cache"].as_array()?;
            (cache.len() == 2 && cache.iter().all(|c| c["ready"] == true))
                .then(|| svc["status"].clone())
        }),
    )
    .await
    .expect("both nodes report a ready copy");
    let nodes: Vec<&str> = status["cache"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["gpu-a", "gpu-b"]);
    for c in status["cache"].as_array().unwrap() {
        assert_eq!(c["bytes"], size, "{c}");
        assert_eq!(c["size"], size, "{c}");
        assert!(c.get("etaSeconds").is_none(), "{c}");
    }
    assert_eq!(status["modelCommit"], COMMIT);
    assert_eq!(status["replicas"], 2, "the controller's fields are kept");
    assert_eq!(status["selector"], "app=llama");

    let refused = fake
        .get_object(
            "serving.kubegrid.io/v1alpha1",
            "LLMService",
            "ml",
            "refused",
        )
        .unwrap();
    assert!(refused["status"]["cache"].is_null(), "{refused}");
    let log = hub.log();
    assert!(
        log.iter()
            .all(|line| !format!("{line:?}").contains("acme/other")),
        "the refused spec's model was fetched: {log:?}"
    );
    assert_eq!(hub.egress(), size, "one download for both nodes");
    // Both nodes carry the label serving pods prefer.
    let key = kubegrid_serving::names::cache_key("hf://acme/llama@main");
    let label = format!("{}{key}", kubegrid_serving::names::CACHED_LABEL_PREFIX);
    let labelled = |f: &FakeCluster, n: &str| {
        f.state()
            .nodes
            .get(n)
            .is_some_and(|o| o["metadata"]["labels"][&label] == "ready")
    };
    tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| (labelled(f, "gpu-a") && labelled(f, "gpu-b")).then_some(())),
    )
    .await
    .expect("both nodes labelled as holding the model");
    // The LLMService deleted: nothing wants the model here any more, so the nodes stop
    // coordinating it (the Lease is handed back) and keep the copy until evicted.
    fake.delete_object("serving.kubegrid.io/v1alpha1", "LLMService", "ml", "llama");
    let lease = kubegrid_modelcache::daemon::lease_name(&key);
    tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| {
            let l = f.get_object("coordination.k8s.io/v1", "Lease", "kubegrid-system", &lease)?;
            l["spec"]["holderIdentity"]
                .as_str()
                .is_none_or(str::is_empty)
                .then_some(())
        }),
    )
    .await
    .expect("the coordinator Lease handed back once no LLMService names the model");
    // And the label goes: the copy may be evicted at any time now.
    tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| (!labelled(f, "gpu-a") && !labelled(f, "gpu-b")).then_some(())),
    )
    .await
    .expect("the nodes' labels removed");
    for node in ["gpu-a", "gpu-b"] {
        let dir = kubegrid_modelcache::layout::ModelDir::new(
            &roots.path().join(node),
            "hf://acme/llama@main",
        );
        assert_eq!(
            dir.ready_commit().as_deref(),
            Some(COMMIT),
            "{node} keeps its copy"
        );
    }
    for task in running {
        assert!(!task.is_finished(), "the follow task ended");
        task.abort();
    }
}

fn node(name: &str, labels: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
}

/// The ModelPrewarm's status once `check` holds for its cache entries.
async fn prewarm_status(fake: &FakeCluster, check: impl Fn(&[Value]) -> bool) -> Value {
    tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| {
            let p = f.get_object("serving.kubegrid.io/v1alpha1", "ModelPrewarm", "ml", "warm")?;
            check(p["status"]["cache"].as_array()?).then(|| p["status"].clone())
        }),
    )
    .await
    .expect("the prewarm's status in time")
}

#[tokio::test]
async fn a_prewarm_caches_the_model_on_the_nodes_its_selector_picks() {
    let (_src, hub, size) = hub().await;
    let fake = FakeCluster::new();
    fake.enable_status_subresource("serving.kubegrid.io", "modelprewarms");
    fake.put(node("gpu-a", &json!({"gpu": "h100"})));
    fake.put(node("gpu-b", &json!({"gpu": "l4"})));
    fake.put(json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "ModelPrewarm",
        "metadata": {"name": "warm", "namespace": "ml", "uid": "uid-warm"},
        "spec": {"model": {"uri": "hf://acme/llama@main"}, "nodeSelector": {"gpu": "h100"}},
    }));
    let roots = tempfile::tempdir().unwrap();
    let running = nodes(&fake, &hub, roots.path()).await;
    let one = |c: &[Value]| c.len() == 1 && c[0]["ready"] == true;
    let status = prewarm_status(&fake, one).await;
    assert_eq!(status["cache"][0]["node"], "gpu-a");
    assert_eq!(status["cache"][0]["bytes"], size);
    assert_eq!(status["readyNodes"], 1);
    assert_eq!(status["modelCommit"], COMMIT);
    // gpu-b is not an h100: it holds nothing of the model.
    let key = kubegrid_serving::names::cache_key("hf://acme/llama@main");
    assert!(!roots.path().join("gpu-b").join(&key).join("ready").exists());
    // Labelled h100, it caches the model too (copied in-cluster, the hub asked once).
    fake.put(node("gpu-b", &json!({"gpu": "h100"})));
    let both = |c: &[Value]| c.len() == 2 && c.iter().all(|e| e["ready"] == true);
    let status = prewarm_status(&fake, both).await;
    assert_eq!(status["readyNodes"], 2);
    assert_eq!(hub.egress(), size, "one download for both nodes");
    for task in running {
        task.abort();
    }
}
