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
    certificate_expiry: Family<Labels, Gauge>,
    // The label sets of `certificate_expiry` per cluster, so a certificate gone from the
    // hosts loses its series.
    certificate_labels: Mutex<std::collections::BTreeMap<String, Vec<Labels>>>,
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
        let certificate_expiry = Family::<Labels, Gauge>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When each certificate on each Node expires (unix seconds), as the operator last read it; per Node and catalog name the earliest",
            certificate_expiry.clone(),
        );
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
            certificate_expiry,
            certificate_labels: Mutex::new(std::collections::BTreeMap::new()),
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

    /// Sets when each of `cluster`'s certificates expires: `(node, certificate, unix
    /// seconds)`. Series of `cluster` absent from `series` are removed.
    pub fn certificate_expiry(&self, cluster: &str, series: &[(String, String, i64)]) {
        let mut known = self
            .certificate_labels
            .lock()
            .expect("metrics lock poisoned");
        let now: Vec<Labels> = series
            .iter()
            .map(|(node, certificate, _)| {
                vec![
                    ("cluster".to_string(), cluster.to_string()),
                    ("node".to_string(), node.clone()),
                    ("certificate".to_string(), certificate.clone()),
                ]
            })
            .collect();
        for gone in known
            .get(cluster)
            .into_iter()
            .flatten()
            .filter(|l| !now.contains(l))
        {
            self.certificate_expiry.remove(gone);
        }
        for (labels, (_, _, at)) in now.iter().zip(series) {
            self.certificate_expiry.get_or_create(labels).set(*at);
        }
        if now.is_empty() {
            known.remove(cluster);
        } else {
            known.insert(cluster.to_string(), now);
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

    #[test]
    fn certificate_series_follow_the_last_read_and_vanish_with_their_certificate() {
        let m = Metrics::new();
        let s = |node: &str, cert: &str, at: i64| (node.to_string(), cert.to_string(), at);
        m.certificate_expiry(
            "default/gpu",
            &[
                s("cp-1", "apiserver", 1_800_000_000),
                s("cp-1", "etcd-server", 1_700_000_000),
            ],
        );
        m.certificate_expiry("default/other", &[s("x-1", "apiserver", 5)]);
        m.certificate_expiry("default/gpu", &[s("cp-1", "apiserver", 1_900_000_000)]);
        let text = m.render();
        assert!(
            text.contains("kubegrid_certificate_expiry_timestamp_seconds{cluster=\"default/gpu\",node=\"cp-1\",certificate=\"apiserver\"} 1900000000"),
            "{text}"
        );
        assert!(
            !text.contains("etcd-server"),
            "a certificate gone keeps its series:\n{text}"
        );
        assert!(
            text.contains("node=\"x-1\""),
            "another cluster's series went:\n{text}"
        );
        m.certificate_expiry("default/gpu", &[]);
        assert!(!m.render().contains("default/gpu"));
    }
}
