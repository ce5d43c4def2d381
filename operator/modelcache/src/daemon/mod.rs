//! The node daemon: for each model it is asked to cache, one daemon per cluster coordinates
//! (downloads from the source, verifies, seeds) and the others follow (copy through the
//! fan-out, from the coordinator and from each other).
//!
//! ```text
//!            Lease model-<key> (leaseTransitions = epoch)
//!                 │ holder: node@control-address
//!   coordinator ──┴─ hub download (resumable, verified) ─► <commit>/<path> ─► fan-out seed
//!        ▲  control API: join → {epoch, commit, files + piece manifests, peers}
//!   followers ── check epoch ≥ the Lease's ─► fan-out fetch ─► link ─► ready marker
//! ```
//!
//! A coordinator that loses its Lease stops at once (its work is dropped and its control
//! API answers 409); whoever takes the Lease next has a higher epoch, resumes from what it
//! has on disk, and followers refuse any answer from a lower epoch than the Lease shows.

mod control;
mod coordinate;
mod follow;
mod grow;
mod metrics;
mod resume;

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub use control::{EPOCH_HEADER, Join, LONG_POLL, Published, PublishedFile};
use kubegrid_lease::LeaseConfig;
use kubegrid_serving::ModelSource;
pub use metrics::{METRIC_NAMES, Metrics};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    error::{Error, Result},
    hub::Hub,
    layout::ModelDir,
};

/// How a daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The address other nodes reach this one at; both servers listen on it.
    pub advertise: IpAddr,
    /// The fan-out port (0: any).
    pub fanout_port: u16,
    /// The control API's port (0: any).
    pub control_port: u16,
    /// Where models are kept (`/var/lib/kubegrid/models`).
    pub root: PathBuf,
    /// The namespace of the coordinators' Leases.
    pub namespace: String,
    /// The token every fan-out request carries, the same on every node.
    pub token: String,
    /// How long a coordinator's Lease lasts without renewal.
    pub lease_duration: Duration,
    /// The source of models.
    pub hub: Hub,
    /// Upload and download limits of the fan-out, bytes per second.
    pub upload_limit: Option<u64>,
    /// See `upload_limit`.
    pub download_limit: Option<u64>,
    /// The most bytes of models kept on this node; models nothing wants are evicted, least
    /// recently used first, to make room (None: no limit).
    pub capacity: Option<u64>,
    /// Publish each file to followers only once it has verified whole, instead of piece by
    /// piece as it downloads (see `grow`): followers then start a file only once the
    /// coordinator has it.
    pub whole_files: bool,
}

/// Counters a test or the metrics endpoint reads.
#[derive(Debug)]
pub struct Counters {
    /// Bytes received from the source (the hub).
    pub from_source: AtomicU64,
    /// Bytes received from the fan-out (the coordinator and other peers).
    pub from_peers: AtomicU64,
    /// Coordinator answers refused for a stale epoch.
    pub stale_answers: AtomicU64,
    /// Failed attempts to coordinate or follow (a download, a check, a copy).
    pub failures: AtomicU64,
    changed: watch::Sender<u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            from_source: AtomicU64::new(0),
            from_peers: AtomicU64::new(0),
            stale_answers: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            changed: watch::channel(0).0,
        }
    }
}

impl Counters {
    /// Waits until `check` holds, looking again after every change of a counter.
    pub async fn wait_until(&self, check: impl Fn(&Counters) -> bool) {
        let mut changes = self.changed.subscribe();
        while !check(self) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Adds `n` to `counter` (one of this struct's) and wakes the waiters.
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        self.changed.send_modify(|v| *v += 1);
    }
}

/// How far a node's copy of a model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Verified bytes on this node.
    pub bytes: u64,
    /// The model's size; 0 until its coordinator has resolved it.
    pub size: u64,
    /// The commit, once ready here.
    pub commit: Option<String>,
}

/// A running daemon. Dropping it stops every model task and both servers.
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<String, ModelTask>>,
    control_task: tokio::task::JoinHandle<()>,
}

/// A model's task on this node and the commit it made ready, by model key.
type ModelTask = (watch::Receiver<Option<String>>, tokio::task::JoinHandle<()>);

/// What the model tasks share.
pub(crate) struct Shared {
    pub cfg: Config,
    pub client: kube::Client,
    pub fanout: kubegrid_fanout::Node,
    pub control: SocketAddr,
    pub board: Arc<control::Board>,
    pub counters: Counters,
    pub metrics: Arc<Metrics>,
    pub http: reqwest::Client,
    /// The keys of the models this daemon is asked for: in use, never evicted.
    pub wanted: Mutex<HashSet<String>>,
    /// The latest manifest of each blob this node copies as a follower, by sha256: a head
    /// start on the file under way if it becomes the coordinator (see `resume`).
    pub copying: Mutex<HashMap<String, Arc<kubegrid_fanout::PieceManifest>>>,
}

impl Shared {
    /// Makes room for model `key` of `size` bytes within the capacity, when there is one.
    pub(crate) fn make_room(&self, key: &str, size: u64) -> Result<()> {
        let Some(capacity) = self.cfg.capacity else {
            return Ok(());
        };
        let in_use = self.wanted.lock().expect("wanted lock").clone();
        crate::evict::make_room(&self.cfg.root, capacity, key, size, &in_use).map(|_| ())
    }

    /// Marks `model` ready at `commit` on this node: to the model's waiters and the metrics.
    pub(crate) fn made_ready(
        &self,
        model: &ModelSource,
        ready: &watch::Sender<Option<String>>,
        commit: &str,
    ) {
        self.metrics.made_ready(&model.uri);
        ready.send_replace(Some(commit.to_string()));
    }

    /// This daemon's identity in a Lease: `node@control-address`.
    pub(crate) fn identity(&self) -> String {
        format!("{}@{}", self.cfg.node, self.control)
    }
}

impl Daemon {
    /// Starts the fan-out node and the control API on `cfg.advertise`.
    pub async fn start(cfg: Config, client: kube::Client) -> Result<Self> {
        let fanout = kubegrid_fanout::Node::start(kubegrid_fanout::NodeConfig {
            token: cfg.token.clone(),
            listen: SocketAddr::new(cfg.advertise, cfg.fanout_port),
            upload_limit: cfg.upload_limit,
            download_limit: cfg.download_limit,
        })
        .await
        .map_err(|e| Error::Serve {
            what: "fan-out",
            problem: e.to_string(),
        })?;
        let listener = TcpListener::bind(SocketAddr::new(cfg.advertise, cfg.control_port))
            .await
            .map_err(|e| Error::Serve {
                what: "control API",
                problem: e.to_string(),
            })?;
        let control = listener.local_addr().map_err(|e| Error::Serve {
            what: "control API",
            problem: e.to_string(),
        })?;
        let board = Arc::new(control::Board::new(&cfg.token));
        let metrics = Arc::new(Metrics::new(&cfg.node));
        let control_task = tokio::spawn(control::serve(
            listener,
            Arc::clone(&board),
            Arc::clone(&metrics),
        ));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(LONG_POLL + Duration::from_secs(10))
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(Self {
            shared: Arc::new(Shared {
                cfg,
                client,
                fanout,
                control,
                board,
                counters: Counters::default(),
                metrics,
                http,
                wanted: Mutex::new(HashSet::new()),
                copying: Mutex::new(HashMap::new()),
            }),
            tasks: Mutex::new(HashMap::new()),
            control_task,
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// The metrics (also served on `GET /metrics` of the control port).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The control API's address, where `/metrics` and `/healthz` are served too.
    pub fn control_addr(&self) -> SocketAddr {
        self.shared.control
    }

    /// The fan-out node's address.
    pub fn fanout_addr(&self) -> SocketAddr {
        self.shared.fanout.addr()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.cfg.node
    }

    /// This daemon's identity in the coordinators' Leases.
    pub fn identity(&self) -> String {
        self.shared.identity()
    }

    /// Starts caching `model` on this node, unless it is under way already, and returns
    /// a receiver of its commit once ready. The model's task keeps running afterwards,
    /// standing for coordinator and serving its copy to other nodes, until the daemon is
    /// dropped.
    pub fn want(&self, model: &ModelSource) -> watch::Receiver<Option<String>> {
        let dir = ModelDir::new(&self.shared.cfg.root, &model.uri);
        let key = kubegrid_serving::names::cache_key(&model.uri);
        self.shared
            .wanted
            .lock()
            .expect("wanted lock")
            .insert(key.clone());
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let entry = tasks.entry(key).or_insert_with(|| {
            crate::evict::touch(dir.path());
            let (tx, rx) = watch::channel(dir.ready_commit());
            let task = tokio::spawn(run(Arc::clone(&self.shared), model.clone(), dir, tx));
            (rx, task)
        });
        entry.0.clone()
    }

    /// This node's copy of `model`, when the daemon was asked for it.
    pub fn progress(&self, model: &ModelSource) -> Option<Progress> {
        let key = kubegrid_serving::names::cache_key(&model.uri);
        let commit = self
            .tasks
            .lock()
            .expect("tasks lock")
            .get(&key)?
            .0
            .borrow()
            .clone();
        let (bytes, size, _) = self.shared.metrics.progress(&model.uri);
        Some(Progress {
            bytes,
            size,
            commit,
        })
    }

    /// The keys of the models this daemon is asked for and holds ready.
    pub fn ready_keys(&self) -> Vec<String> {
        self.tasks
            .lock()
            .expect("tasks lock")
            .iter()
            .filter(|(_, (ready, _))| ready.borrow().is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Stops caching `model` on this node: its task ends, its coordinator Lease (if held)
    /// is handed back, and its copy stays on disk, now evictable, with now as its last use.
    pub async fn forget(&self, model: &ModelSource) {
        let key = kubegrid_serving::names::cache_key(&model.uri);
        self.shared.wanted.lock().expect("wanted lock").remove(&key);
        let task = self.tasks.lock().expect("tasks lock").remove(&key);
        if let Some((_, task)) = task {
            self.stop(key, task).await;
        }
        crate::evict::touch(ModelDir::new(&self.shared.cfg.root, &model.uri).path());
        tracing::info!(model = %model.uri, "no longer wanted here; kept until evicted");
    }

    /// Ends a model's task and hands back its Lease.
    async fn stop(&self, key: String, task: tokio::task::JoinHandle<()>) {
        task.abort();
        // Dropped with the task: its election, so it cannot take the Lease again.
        let _ = task.await;
        let lease = lease_config(&self.shared, &key);
        if let Err(e) = kubegrid_lease::release(&self.shared.client, &lease).await {
            tracing::warn!(lease = %lease.name, "{e}");
        }
    }

    /// Stops every model task and hands back the coordinator Leases this node holds, so
    /// that another node takes over at once rather than when the Lease expires. The
    /// servers stop when the daemon is dropped.
    pub async fn shutdown(&self) {
        let tasks: Vec<(String, ModelTask)> =
            self.tasks.lock().expect("tasks lock").drain().collect();
        for (_, (_, task)) in &tasks {
            task.abort();
        }
        for (key, (_, task)) in tasks {
            self.stop(key, task).await;
        }
    }

    /// [`Daemon::want`], then waits until the model is ready here and returns its commit.
    pub async fn cache(&self, model: &ModelSource) -> Result<String> {
        let mut ready = self.want(model);
        let commit = ready
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Stopped {
                model: model.uri.clone(),
            })?;
        Ok(commit.clone().unwrap_or_default())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.control_task.abort();
        for (_, (_, task)) in self.tasks.lock().expect("tasks lock").drain() {
            task.abort();
        }
    }
}

/// The election of the coordinator of the model `key`.
fn lease_config(shared: &Shared, key: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: shared.cfg.lease_duration,
        renew_interval: shared.cfg.lease_duration / 3,
        retry_interval: (shared.cfg.lease_duration / 5).max(Duration::from_millis(100)),
        ..LeaseConfig::new(&shared.cfg.namespace, lease_name(key), shared.identity())
    }
}

/// One model's task: elect, then coordinate or follow, again after every change of leader.
async fn run(
    shared: Arc<Shared>,
    model: ModelSource,
    dir: ModelDir,
    ready: watch::Sender<Option<String>>,
) {
    let key = kubegrid_serving::names::cache_key(&model.uri);
    let held =
        follow::local_copy(&dir).map(|(_, files)| files.iter().map(|f| f.manifest.size).sum());
    shared
        .metrics
        .started(&model.uri, ready.borrow().is_some(), held);
    let lease = lease_config(&shared, &key);
    let (tx, mut epoch) = watch::channel::<Option<i32>>(None);
    // Aborted with this task: a killed daemon must stop renewing its Lease.
    let election = AbortOnDrop(tokio::spawn(kubegrid_lease::elect(
        shared.client.clone(),
        lease.clone(),
        tx,
    )));
    // Failures in a row: each waits twice as long, up to MAX_BACKOFF, so a source that serves
    // a corrupt file is not asked for it again and again.
    let mut failures = 0u32;
    loop {
        let leading = *epoch.borrow_and_update();
        let result = match leading {
            Some(e) => {
                shared.metrics.epoch(&model.uri, e, true);
                let result = tokio::select! {
                    result = coordinate::run(&shared, &model, &dir, e, &ready) => result,
                    _ = epoch.changed() => Ok(()),
                };
                shared.board.withdraw(&key);
                shared.metrics.not_leading(&model.uri);
                result
            }
            None => tokio::select! {
                result = follow::run(&shared, &model, &dir, &lease, &ready) => result,
                _ = epoch.changed() => Ok(()),
            },
        };
        if let Err(err) = result {
            failures = failures.saturating_add(1);
            shared.counters.add(&shared.counters.failures, 1);
            shared.metrics.failure(&model.uri);
            let wait = lease
                .retry_interval
                .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
                .min(MAX_BACKOFF);
            tracing::warn!(model = %model.uri, epoch = ?leading, failures, "{err}; trying again in {wait:?}");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = epoch.changed() => {}
            }
        }
        if election.0.is_finished() {
            tracing::warn!(model = %model.uri, "the election ended; the model task stops");
            return;
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The longest wait after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The Lease a model's coordinator holds.
pub fn lease_name(key: &str) -> String {
    format!("kubegrid-model-{key}")
}
