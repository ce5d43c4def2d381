//! The router's Prometheus metrics (OpenMetrics text on `GET /metrics`). Every series carries
//! `model_name` and `namespace`, the labels vLLM's metrics have once scraped, so one
//! ScaledObject query adds the router's waiting requests to vLLM's queue.

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Label pairs; `Vec<(String, String)>` encodes as a label set without a derive.
type Labels = Vec<(String, String)>;

/// Every metric the router exports, by the name a query uses (counters with `_total`).
pub const METRIC_NAMES: &[&str] = &[
    "kubegrid_router_pending_requests",
    "kubegrid_router_requests_total",
    "kubegrid_router_wait_seconds",
];

/// How a request ended, the `outcome` label of `requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A replica answered (whatever its status).
    Forwarded,
    /// No replica came within the queue timeout.
    TimedOut,
    /// Too many were waiting, or the body was too large.
    Rejected,
    /// The replica's connection failed after the request was sent.
    Failed,
    /// The router stopped before a replica came (its drain time ran out).
    Stopped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::TimedOut => "timed_out",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// The router's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    labels: Labels,
    pending: Family<Labels, Gauge>,
    requests: Family<Labels, Counter>,
    wait: Family<Labels, Histogram>,
}

impl Metrics {
    /// Registers the metrics for `model_name` in `namespace`; the pending gauge exists from
    /// the start (at 0), so a query never finds it missing.
    pub(crate) fn new(model_name: &str, namespace: &str) -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("kubegrid_router"),
            labels: vec![
                ("model_name".into(), model_name.into()),
                ("namespace".into(), namespace.into()),
            ],
            pending: Family::default(),
            requests: Family::default(),
            wait: Family::new_with_constructor(|| {
                // 50 ms to about 27 minutes: a cold start that loads a model takes minutes.
                Histogram::new(exponential_buckets(0.05, 2.0, 16))
            }),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "pending_requests",
            "Requests waiting for a replica of the LLMService (none ready or none running)",
            metrics.pending.clone(),
        );
        registry.register(
            "requests",
            "Requests by outcome: forwarded, timed_out, rejected, failed, stopped",
            metrics.requests.clone(),
        );
        registry.register(
            "wait_seconds",
            "How long requests waited for a replica before being forwarded",
            metrics.wait.clone(),
        );
        metrics.pending.get_or_create(&metrics.labels).set(0);
        metrics
    }

    /// One more (or one less) request waiting; returns the new count.
    pub(crate) fn pending(&self, delta: i64) -> i64 {
        self.pending.get_or_create(&self.labels).inc_by(delta) + delta
    }

    /// A request ended with `outcome`.
    pub(crate) fn ended(&self, outcome: Outcome) {
        let mut labels = self.labels.clone();
        labels.push(("outcome".into(), outcome.label().into()));
        self.requests.get_or_create(&labels).inc();
    }

    /// A request was forwarded after waiting `seconds`.
    pub(crate) fn waited(&self, seconds: f64) {
        self.wait.get_or_create(&self.labels).observe(seconds);
    }

    /// The OpenMetrics text.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
