//! What the daemon tests share: several daemons in one process on loopback, their
//! coordinator Leases on the TEST STAND-IN API server (e2e/fake-apiserver), the model on the
//! TEST STAND-IN hub (e2e/hub-standin). Each daemon has its own model root and its own named
//! API client.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
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

pub const COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
pub const URI: &str = "hf://acme/llama@main";
pub const PATIENCE: Duration = Duration::from_secs(60);
/// Three 2 MiB weight shards and a config (one fan-out piece each: published whole).
pub const SHARD: usize = 2 << 20;

pub struct Bed {
    pub fake: FakeCluster,
    pub hub: StandIn,
    pub _src: tempfile::TempDir,
    pub roots: tempfile::TempDir,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Bed {
    pub async fn new() -> Self {
        Self::with_shards(SHARD).await
    }

    /// A bed whose three weight shards are `shard` bytes each.
    pub async fn with_shards(shard: usize) -> Self {
        // RUST_LOG=info shows the daemons' decisions (epochs, refusals, takeovers).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let src = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..3u8 {
            let bytes: Vec<u8> = (0..shard)
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

    pub fn root(&self, node: &str) -> PathBuf {
        self.roots.path().join(node)
    }

    pub async fn daemon(&self, node: &str) -> Daemon {
        self.daemon_with(node, None).await
    }

    /// A daemon whose fan-out downloads at most `rate` bytes per second.
    pub async fn daemon_limited(&self, node: &str, rate: u64) -> Daemon {
        self.daemon_with(node, Some(rate)).await
    }

    pub async fn daemon_with(&self, node: &str, download_limit: Option<u64>) -> Daemon {
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
            whole_files: false,
        };
        Daemon::start(cfg, self.fake.client_as(node)).await.unwrap()
    }

    pub fn model(&self) -> ModelSource {
        ModelSource {
            uri: URI.into(),
            files: Vec::new(),
            size_limit: Some("1Gi".into()),
        }
    }

    pub fn size(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Every file of node `node`'s ready copy equals the source.
    pub fn assert_copy(&self, node: &str) {
        let dir = ModelDir::new(&self.root(node), URI);
        assert_eq!(dir.ready_commit().as_deref(), Some(COMMIT), "{node} ready");
        for (path, bytes) in &self.files {
            let through = dir.path().join("current").join(path);
            assert!(std::fs::read(&through).unwrap() == *bytes, "{node}: {path}");
        }
    }

    /// The holder of the model's Lease and its epoch.
    pub fn holder(&self) -> Option<(String, i64)> {
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

pub async fn ready(daemon: &Daemon, model: &ModelSource) -> String {
    tokio::time::timeout(PATIENCE, daemon.cache(model))
        .await
        .expect("ready in time")
        .unwrap()
}

/// The value of `name` for `node` in an OpenMetrics text (the model label is always URI).
pub fn sample(text: &str, name: &str, node: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            l.contains(&format!("node=\"{node}\"")) && l.contains(&format!("model=\"{URI}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until `node`'s metric `name` reaches `at_least`; the metrics have no change signal,
/// so they are read every 20 ms, up to [`PATIENCE`].
pub async fn until_metric(daemon: &Daemon, name: &str, node: &str, at_least: f64) {
    let reached = async {
        while sample(&daemon.metrics().render(), name, node).unwrap_or(0.0) < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, reached)
        .await
        .unwrap_or_else(|_| panic!("{node}: {name} did not reach {at_least}"));
}
