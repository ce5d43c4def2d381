//! Prometheus metrics, served on `/metrics` in the OpenMetrics text format.

use std::sync::Mutex;

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

/// A histogram family whose buckets suit phases that take from a second to an hour.
type Durations = Family<Labels, Histogram, fn() -> Histogram>;

fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    phase_seconds: Durations,
    hosts: Family<Labels, Gauge>,
    leader: Gauge,
    // The label sets of `hosts` last set per cluster, so a phase no host is in drops to 0.
    host_labels: Mutex<Vec<Labels>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `kubegrid` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubegrid");
        let reconciles = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let phase_seconds = Durations::new_with_constructor(phase_histogram);
        let hosts = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles started, by resource kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles and operations, by category (spec, secret, bundle, engine, hosts, preflight, unreachable, cluster-checks, kube-api)",
            failures.clone(),
        );
        registry.register(
            "operation_phase_duration_seconds",
            "Wall time of each operation phase, by operation kind and phase",
            phase_seconds.clone(),
        );
        registry.register("hosts", "Hosts by cluster and Node phase", hosts.clone());
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            phase_seconds,
            hosts,
            leader,
            host_labels: Mutex::new(Vec::new()),
        }
    }

    /// Counts a reconcile of `kind`.
    pub fn reconcile(&self, kind: &str) {
        self.reconciles
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }

    /// Counts a failure of `category`.
    pub fn failure(&self, category: &str) {
        self.failures
            .get_or_create(&vec![("category".into(), category.into())])
            .inc();
    }

    /// Records how long `phase` of an operation of `kind` took.
    pub fn phase(&self, kind: &str, phase: &str, seconds: f64) {
        self.phase_seconds
            .get_or_create(&vec![
                ("operation".into(), kind.into()),
                ("phase".into(), phase.into()),
            ])
            .observe(seconds);
    }

    /// Sets how many of `cluster`'s hosts are in each phase; phases absent from `counts`
    /// drop to 0.
    pub fn hosts(&self, cluster: &str, counts: &[(String, i64)]) {
        let mut known = self.host_labels.lock().expect("metrics lock poisoned");
        for labels in known
            .iter()
            .filter(|l| l.first().is_some_and(|(_, c)| c == cluster))
        {
            self.hosts.get_or_create(labels).set(0);
        }
        for (phase, n) in counts {
            let labels = vec![
                ("cluster".to_string(), cluster.to_string()),
                ("phase".to_string(), phase.clone()),
            ];
            self.hosts.get_or_create(&labels).set(*n);
            if !known.contains(&labels) {
                known.push(labels);
            }
        }
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.reconcile("Cluster");
        m.failure("secret");
        m.phase("install", "container-runtime", 3.5);
        m.hosts("default/gpu", &[("Ready".into(), 2), ("Failed".into(), 1)]);
        m.hosts("default/gpu", &[("Ready".into(), 3)]);
        m.set_leader(true);
        let text = m.render();
        for line in [
            "kubegrid_reconciles_total{kind=\"Cluster\"} 1",
            "kubegrid_reconcile_failures_total{category=\"secret\"} 1",
            "kubegrid_operation_phase_duration_seconds_count{operation=\"install\",phase=\"container-runtime\"} 1",
            "kubegrid_hosts{cluster=\"default/gpu\",phase=\"Ready\"} 3",
            "kubegrid_hosts{cluster=\"default/gpu\",phase=\"Failed\"} 0",
            "kubegrid_leader 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
    }
}
