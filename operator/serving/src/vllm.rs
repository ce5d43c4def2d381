//! The vLLM metrics kubegrid relies on (the KEDA trigger, the drain, the dashboard), as
//! vLLM's OpenAI server exports them on `/metrics` with the V1 engine (vLLM 0.10 and
//! later): every series carries `model_name`, the served model name. The dashboard test
//! checks every query against this list and the cache daemon's own, so a renamed metric
//! is caught here rather than as an empty panel.

/// A metric's Prometheus type, which decides the sample names a query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One sample, the name itself.
    Gauge,
    /// One sample, `<name>_total` (the name below already ends so).
    Counter,
    /// `<name>_bucket`, `<name>_sum` and `<name>_count`.
    Histogram,
}

/// The metrics by family name and type.
pub const METRICS: &[(&str, Kind)] = &[
    ("vllm:num_requests_running", Kind::Gauge),
    ("vllm:num_requests_waiting", Kind::Gauge),
    ("vllm:kv_cache_usage_perc", Kind::Gauge),
    ("vllm:prompt_tokens_total", Kind::Counter),
    ("vllm:generation_tokens_total", Kind::Counter),
    ("vllm:request_success_total", Kind::Counter),
    ("vllm:time_to_first_token_seconds", Kind::Histogram),
    ("vllm:inter_token_latency_seconds", Kind::Histogram),
    ("vllm:e2e_request_latency_seconds", Kind::Histogram),
    ("vllm:request_queue_time_seconds", Kind::Histogram),
];

/// The label every vLLM series carries the served model's name in.
pub const MODEL_LABEL: &str = "model_name";

/// Every sample name a query may use: gauges and counters as listed, histograms with their
/// three suffixes.
pub fn sample_names() -> Vec<String> {
    METRICS
        .iter()
        .flat_map(|(name, kind)| match kind {
            Kind::Gauge | Kind::Counter => vec![(*name).to_string()],
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
        })
        .collect()
}
