//! The node daemon, several in one process on loopback: their coordinator Leases on the
//! TEST STAND-IN API server (e2e/fake-apiserver), the model on the TEST STAND-IN hub
//! (e2e/hub-standin). Each daemon has its own model root and its own named API client.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::Duration,
};

use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, Retry},
    layout::ModelDir,
};
use kubegrid_serving::ModelSource;

const COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
const URI: &str = "hf://acme/llama@main";
const PATIENCE: Duration = Duration::from_secs(60);
/// Three 2 MiB weight shards and a config.
const SHARD: usize = 2 << 20;

struct Bed {
    fake: FakeCluster,
    hub: StandIn,
    _src: tempfile::TempDir,
    roots: tempfile::TempDir,
    files: Vec<(String, Vec<u8>)>,
}

impl Bed {
    async fn new() -> Self {
        // RUST_LOG=info shows the daemons' decisions (epochs, refusals, takeovers).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let src = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..3u8 {
            let bytes: Vec<u8> = (0..SHARD)
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                .collect();
            files.push((format!("model-0000{i}-of-00003.safetensors"), bytes));
        }
        files.push(("config.json".into(), br#"{"model_type":"llama"}"#.to_vec()));
        let mut on_disk = Vec::new();
        for (i, (_, bytes)) in files.iter().enumerate() {
            let path = src.path().join(format!("f{i}"));
            std::fs::write(&path, bytes).unwrap();
            on_disk.push(path);
        }
        let hub = StandIn::start().await.unwrap();
        let refs: Vec<(&str, &Path)> = files
            .iter()
            .zip(&on_disk)
            .map(|((p, _), d)| (p.as_str(), d.as_path()))
            .collect();
        hub.add("acme/llama", "main", COMMIT, &refs);
        Self {
            fake: FakeCluster::new(),
            hub,
            _src: src,
            roots: tempfile::tempdir().unwrap(),
            files,
        }
    }

    fn root(&self, node: &str) -> PathBuf {
        self.roots.path().join(node)
    }

    async fn daemon(&self, node: &str) -> Daemon {
        self.daemon_with(node, None).await
    }

    /// A daemon whose fan-out downloads at most `rate` bytes per second.
    async fn daemon_limited(&self, node: &str, rate: u64) -> Daemon {
        self.daemon_with(node, Some(rate)).await
    }

    async fn daemon_with(&self, node: &str, download_limit: Option<u64>) -> Daemon {
        let hub = Hub::new(
            &self.hub.url(),
            Retry {
                attempts: 3,
                backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
            },
        )
        .unwrap();
        let cfg = Config {
            node: node.into(),
            advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
            fanout_port: 0,
            control_port: 0,
            root: self.root(node),
            namespace: "kubegrid-system".into(),
            token: "t0ken".into(),
            lease_duration: Duration::from_millis(1500),
            hub,
            upload_limit: None,
            download_limit,
            capacity: None,
        };
        Daemon::start(cfg, self.fake.client_as(node)).await.unwrap()
    }

    fn model(&self) -> ModelSource {
        ModelSource {
            uri: URI.into(),
            files: Vec::new(),
            size_limit: Some("1Gi".into()),
        }
    }

    fn size(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Every file of node `node`'s ready copy equals the source.
    fn assert_copy(&self, node: &str) {
        let dir = ModelDir::new(&self.root(node), URI);
        assert_eq!(dir.ready_commit().as_deref(), Some(COMMIT), "{node} ready");
        for (path, bytes) in &self.files {
            let through = dir.path().join("current").join(path);
            assert!(std::fs::read(&through).unwrap() == *bytes, "{node}: {path}");
        }
    }

    /// The holder of the model's Lease and its epoch.
    fn holder(&self) -> Option<(String, i64)> {
        let key = kubegrid_serving::names::cache_key(URI);
        let lease = self.fake.get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            &kubegrid_modelcache::daemon::lease_name(&key),
        )?;
        let holder = lease["spec"]["holderIdentity"]
            .as_str()?
            .split('@')
            .next()?
            .to_string();
        Some((
            holder,
            lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0),
        ))
    }
}

async fn ready(daemon: &Daemon, model: &ModelSource) -> String {
    tokio::time::timeout(PATIENCE, daemon.cache(model))
        .await
        .expect("ready in time")
        .unwrap()
}

#[tokio::test]
async fn one_coordinator_downloads_each_file_once_and_every_node_ends_verified() {
    let bed = Bed::new().await;
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        daemons.push(bed.daemon(n).await);
    }
    let model = bed.model();
    let (a, b, c) = tokio::join!(
        ready(&daemons[0], &model),
        ready(&daemons[1], &model),
        ready(&daemons[2], &model)
    );
    assert_eq!([a, b, c], [COMMIT; 3].map(String::from));
    for n in nodes {
        bed.assert_copy(n);
    }
    let log = bed.hub.log();
    assert_eq!(
        log.len(),
        bed.files.len(),
        "one hub request per file: {log:?}"
    );
    assert_eq!(bed.hub.egress(), bed.size(), "hub egress = 1.0 × the model");
    let from_source: Vec<u64> = daemons
        .iter()
        .map(|d| d.counters().from_source.load(Ordering::Relaxed))
        .collect();
    assert_eq!(
        from_source.iter().filter(|b| **b > 0).count(),
        1,
        "only the coordinator asks the hub: {from_source:?}"
    );
    assert_eq!(from_source.iter().sum::<u64>(), bed.size());
    let (coordinator, epoch) = bed.holder().unwrap();
    assert_eq!(epoch, 0);
    for (n, d) in nodes.iter().zip(&daemons) {
        let peers = d.counters().from_peers.load(Ordering::Relaxed);
        if *n == coordinator {
            assert_eq!(peers, 0);
        } else {
            assert_eq!(peers, bed.size(), "{n} copied everything in-cluster");
        }
    }
}

#[tokio::test]
async fn a_killed_coordinator_is_replaced_at_a_higher_epoch_that_resumes_without_refetching() {
    let bed = Bed::new().await;
    // 4 MiB/s: the 6 MiB of shards take about 1.5 s, long enough to kill mid-way.
    bed.hub.limit_rate(Some(4 << 20));
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        daemons.push(Some(bed.daemon(n).await));
    }
    let model = bed.model();
    for d in daemons.iter().flatten() {
        d.want(&model);
    }
    // Kill the coordinator once it is half-way through the second shard.
    tokio::time::timeout(PATIENCE, bed.hub.wait_sent((SHARD + SHARD / 2) as u64))
        .await
        .unwrap();
    let (killed, _) = bed.holder().unwrap();
    let index = nodes.iter().position(|n| *n == killed).unwrap();
    daemons[index] = None;
    let survivors: Vec<&Daemon> = daemons.iter().flatten().collect();
    for d in &survivors {
        assert_eq!(ready(d, &model).await, COMMIT);
    }
    let (coordinator, epoch) = bed.holder().unwrap();
    assert_ne!(coordinator, killed);
    assert_eq!(epoch, 1, "the new coordinator's epoch is higher");
    for n in nodes.iter().filter(|n| **n != killed) {
        bed.assert_copy(n);
    }
    // Per file, the hub sent its bytes once, plus at most what the killed download had got.
    for (path, bytes) in &bed.files {
        let requests: Vec<_> = bed
            .hub
            .log()
            .into_iter()
            .filter(|a| &a.path == path)
            .collect();
        let sent: u64 = requests.iter().map(|a| a.sent).sum();
        let interrupted: u64 = requests
            .iter()
            .filter(|a| a.start + a.sent < bytes.len() as u64)
            .map(|a| a.sent)
            .sum();
        assert!(
            sent <= bytes.len() as u64 + interrupted,
            "{path}: {requests:?}"
        );
        assert!(
            interrupted == 0 || requests.len() == 2,
            "{path}: {requests:?}"
        );
    }
}

/// A stand-in for a coordinator that lost its Lease without knowing it: it answers every
/// join with its old epoch. Counts the answers it gave.
async fn stale_coordinator(
    epoch: i32,
) -> (std::net::SocketAddr, tokio::sync::watch::Receiver<u32>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    let body = serde_json::json!({
        "epoch": epoch, "coordinator": format!("gpu-old@{addr}"), "commit": COMMIT,
        "seed": "127.0.0.1:9", "files": [], "complete": false, "peers": [],
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-kubegrid-epoch: {epoch}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
            tx.send_modify(|n| *n += 1);
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn answers_from_an_older_epoch_than_the_leases_are_refused() {
    let bed = Bed::new().await;
    let (addr, mut answered) = stale_coordinator(2).await;
    // The Lease moved on to epoch 3 (held by a node that has not answered yet), but its
    // holder record still points at the old coordinator's address, as a follower may read
    // it in between; the old one answers at epoch 2.
    let key = kubegrid_serving::names::cache_key(URI);
    bed.fake.put(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": kubegrid_modelcache::daemon::lease_name(&key), "namespace": "kubegrid-system"},
        "spec": {
            "holderIdentity": format!("gpu-old@{addr}"),
            "leaseTransitions": 3,
            "leaseDurationSeconds": 3600,
            "renewTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        },
    }));
    let follower = bed.daemon("gpu-b").await;
    follower.want(&bed.model());
    tokio::time::timeout(PATIENCE, answered.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    follower
        .counters()
        .wait_until(|c| c.stale_answers.load(Ordering::Relaxed) >= 2)
        .await;
    let dir = ModelDir::new(&bed.root("gpu-b"), URI);
    assert_eq!(
        dir.ready_commit(),
        None,
        "nothing taken from a stale coordinator"
    );
    assert_eq!(follower.counters().from_peers.load(Ordering::Relaxed), 0);
    assert!(bed.hub.log().is_empty());
}

#[tokio::test]
async fn a_follower_restarted_mid_copy_resumes_with_what_it_had() {
    let bed = Bed::new().await;
    let coordinator = bed.daemon("gpu-a").await;
    let model = bed.model();
    assert_eq!(ready(&coordinator, &model).await, COMMIT);
    let first = bed.daemon_limited("gpu-b", 2 << 20).await;
    first.want(&model);
    // One 2 MiB shard copied (about a second at 2 MiB/s), then the daemon dies.
    tokio::time::timeout(
        PATIENCE,
        first
            .counters()
            .wait_until(|c| c.from_peers.load(Ordering::Relaxed) >= SHARD as u64),
    )
    .await
    .unwrap();
    // Its progress shows what it holds, short of ready.
    let text = first.metrics().render();
    let cached = sample(&text, "kubegrid_model_cache_cached_bytes", "gpu-b").unwrap();
    assert!(
        (SHARD as f64..bed.size() as f64).contains(&cached),
        "{cached}:\n{text}"
    );
    assert_eq!(
        sample(&text, "kubegrid_model_cache_ready", "gpu-b"),
        Some(0.0)
    );
    drop(first);
    let second = bed.daemon("gpu-b").await;
    assert_eq!(ready(&second, &model).await, COMMIT);
    bed.assert_copy("gpu-b");
    let again = second.counters().from_peers.load(Ordering::Relaxed);
    assert!(
        again <= bed.size() - SHARD as u64,
        "copied {again} of {} again",
        bed.size()
    );
    assert_eq!(bed.hub.egress(), bed.size(), "the hub sent the model once");
}

#[tokio::test]
async fn a_corrupt_file_at_the_source_is_refused_and_no_node_marks_the_model_ready() {
    let bed = Bed::new().await;
    bed.hub.corrupt("model-00001-of-00003.safetensors");
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        let d = bed.daemon(n).await;
        d.want(&bed.model());
        daemons.push(d);
    }
    // The coordinator's first attempt fails on the corrupt shard.
    let coordinator_failed = daemons.iter().map(|d| {
        d.counters()
            .wait_until(|c| c.failures.load(Ordering::Relaxed) >= 1)
    });
    tokio::time::timeout(PATIENCE, futures_select(coordinator_failed.collect()))
        .await
        .unwrap();
    for n in nodes {
        let dir = ModelDir::new(&bed.root(n), URI);
        assert_eq!(dir.ready_commit(), None, "{n} marked nothing ready");
        assert!(!dir.path().join("current").exists());
        let shard = dir.file(COMMIT, "model-00001-of-00003.safetensors");
        assert!(!shard.exists(), "{n}: the corrupt shard got no name");
    }
}

/// Completes when the first of `futures` does.
async fn futures_select<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    futures::future::select_all(futures).await;
}

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

/// The value of `name` for `node` in an OpenMetrics text (the model label is always URI).
fn sample(text: &str, name: &str, node: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            l.contains(&format!("node=\"{node}\"")) && l.contains(&format!("model=\"{URI}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
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
