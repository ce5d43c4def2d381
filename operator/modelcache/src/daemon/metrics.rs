//! The daemon's Prometheus metrics, served on `GET /metrics` of the control port in the
//! OpenMetrics text format. Every series but the two node-wide counters is per model
//! (`model` is the LLMService's URI, `node` this node), so a dashboard can show each
//! node's progress, its share of bytes from peers and its time to ready.

use std::{
    collections::HashMap,
    sync::{Mutex, atomic::AtomicU64},
    time::Instant,
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Label pairs; `Vec<(String, String)>` encodes as a label set without a derive.
type Labels = Vec<(String, String)>;

/// Every metric the daemon exports, by the name a query uses (counters with `_total`).
pub const METRIC_NAMES: &[&str] = &[
    "kubegrid_model_cache_source_bytes_total",
    "kubegrid_model_cache_peer_bytes_total",
    "kubegrid_model_cache_model_size_bytes",
    "kubegrid_model_cache_cached_bytes",
    "kubegrid_model_cache_ready",
    "kubegrid_model_cache_time_to_ready_seconds",
    "kubegrid_model_cache_coordinator_epoch",
    "kubegrid_model_cache_coordinating",
    "kubegrid_model_cache_failures_total",
    "kubegrid_model_cache_stale_answers_total",
];

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    node: String,
    source_bytes: Family<Labels, Counter>,
    peer_bytes: Family<Labels, Counter>,
    model_size: Family<Labels, Gauge>,
    cached: Family<Labels, Gauge>,
    ready: Family<Labels, Gauge>,
    time_to_ready: Family<Labels, Gauge<f64, AtomicU64>>,
    epoch: Family<Labels, Gauge>,
    coordinating: Family<Labels, Gauge>,
    failures: Family<Labels, Counter>,
    stale: Family<Labels, Counter>,
    // When each model's task started on this node, for its time to ready.
    started: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric under the `kubegrid_model_cache` prefix for `node`.
    pub fn new(node: &str) -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("kubegrid_model_cache"),
            node: node.to_string(),
            source_bytes: Family::default(),
            peer_bytes: Family::default(),
            model_size: Family::default(),
            cached: Family::default(),
            ready: Family::default(),
            time_to_ready: Family::default(),
            epoch: Family::default(),
            coordinating: Family::default(),
            failures: Family::default(),
            stale: Family::default(),
            started: Mutex::new(HashMap::new()),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "source_bytes",
            "Bytes this node downloaded from the model's source (the hub); only a coordinator downloads",
            metrics.source_bytes.clone(),
        );
        registry.register(
            "peer_bytes",
            "Bytes this node copied in-cluster, from the coordinator and from other nodes",
            metrics.peer_bytes.clone(),
        );
        registry.register(
            "model_size_bytes",
            "The model's size, once its coordinator has resolved it",
            metrics.model_size.clone(),
        );
        registry.register(
            "cached_bytes",
            "Verified bytes of the model on this node (progress; equals model_size_bytes when ready)",
            metrics.cached.clone(),
        );
        registry.register(
            "ready",
            "1 once every file of the model verified and its ready marker is written on this node",
            metrics.ready.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Seconds from this daemon being asked for the model to the model being ready here (absent when it was ready at start)",
            metrics.time_to_ready.clone(),
        );
        registry.register(
            "coordinator_epoch",
            "The epoch (the Lease's leaseTransitions) of the coordinator this node last followed or is",
            metrics.epoch.clone(),
        );
        registry.register(
            "coordinating",
            "1 while this node holds the model's coordinator Lease",
            metrics.coordinating.clone(),
        );
        registry.register(
            "failures",
            "Failed attempts to coordinate or follow the model (a download, a check, a copy)",
            metrics.failures.clone(),
        );
        registry.register(
            "stale_answers",
            "Coordinator answers refused because their epoch was below the Lease's",
            metrics.stale.clone(),
        );
        metrics
    }

    fn labels(&self, model: &str) -> Labels {
        vec![
            ("model".into(), model.to_string()),
            ("node".into(), self.node.clone()),
        ]
    }

    /// The task for `model` started; `held` is the size of a verified copy already here.
    pub(crate) fn started(&self, model: &str, ready_at_start: bool, held: Option<u64>) {
        self.ready
            .get_or_create(&self.labels(model))
            .set(i64::from(ready_at_start));
        if let Some(size) = held {
            self.size(model, size);
        }
        self.cached(model, held.unwrap_or(0));
        // Counters start at 0 rather than appear with their first increment, so that
        // `rate()` and `increase()` see the first bytes and failures too.
        let labels = self.labels(model);
        for family in [
            &self.source_bytes,
            &self.peer_bytes,
            &self.failures,
            &self.stale,
        ] {
            family.get_or_create(&labels).inc_by(0);
        }
        if !ready_at_start {
            self.started
                .lock()
                .expect("metrics lock")
                .insert(model.to_string(), Instant::now());
        }
    }

    /// `n` bytes came from the source.
    pub(crate) fn add_source_bytes(&self, model: &str, n: u64) {
        self.source_bytes
            .get_or_create(&self.labels(model))
            .inc_by(n);
    }

    /// `n` bytes came from peers.
    pub(crate) fn add_peer_bytes(&self, model: &str, n: u64) {
        self.peer_bytes.get_or_create(&self.labels(model)).inc_by(n);
    }

    /// The model's whole size.
    pub(crate) fn size(&self, model: &str, bytes: u64) {
        self.model_size
            .get_or_create(&self.labels(model))
            .set(gauge_value(bytes));
    }

    /// Verified bytes held now.
    pub(crate) fn cached(&self, model: &str, bytes: u64) {
        self.cached
            .get_or_create(&self.labels(model))
            .set(gauge_value(bytes));
    }

    /// The model is ready on this node.
    pub(crate) fn made_ready(&self, model: &str) {
        self.ready.get_or_create(&self.labels(model)).set(1);
        if let Some(at) = self.started.lock().expect("metrics lock").remove(model) {
            self.time_to_ready
                .get_or_create(&self.labels(model))
                .set(at.elapsed().as_secs_f64());
        }
    }

    /// This node follows or is the coordinator at `epoch`; `leading` when it is.
    pub(crate) fn epoch(&self, model: &str, epoch: i32, leading: bool) {
        self.epoch
            .get_or_create(&self.labels(model))
            .set(i64::from(epoch));
        self.coordinating
            .get_or_create(&self.labels(model))
            .set(i64::from(leading));
    }

    /// This node no longer coordinates the model.
    pub(crate) fn not_leading(&self, model: &str) {
        self.coordinating.get_or_create(&self.labels(model)).set(0);
    }

    /// An attempt failed.
    pub(crate) fn failure(&self, model: &str) {
        self.failures.get_or_create(&self.labels(model)).inc();
    }

    /// A stale answer was refused.
    pub(crate) fn stale_answer(&self, model: &str) {
        self.stale.get_or_create(&self.labels(model)).inc();
    }

    /// What this node holds of `model` now: verified bytes, the model's size (0 until
    /// resolved) and whether it is ready.
    pub fn progress(&self, model: &str) -> (u64, u64, bool) {
        let labels = self.labels(model);
        let read = |family: &Family<Labels, Gauge>| {
            family
                .get(&labels)
                .map_or(0, |g| u64::try_from(g.get()).unwrap_or(0))
        };
        (
            read(&self.cached),
            read(&self.model_size),
            read(&self.ready) == 1,
        )
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A byte count as a gauge value; models are far below `i64::MAX` bytes.
fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
