//! [`LlmServiceSpec::validate`]: every check the CRD's CEL rules make, and the ones CEL
//! cannot make cheaply, for a CLI without an API server and for servers without CEL.

use std::collections::BTreeSet;

use crate::{
    ModelSource,
    error::FieldError,
    model::{MAX_FILES, MAX_PATH_LEN, ModelUri, is_dns_subdomain, is_relative_path},
    service::{EngineSpec, LlmServiceSpec, Scaling},
};

impl LlmServiceSpec {
    /// Every problem with the spec, each naming its field (`spec.…`) as the API server
    /// would; empty when the spec is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| {
            out.push(FieldError {
                field: format!("spec.{field}"),
                message,
            });
        };
        model(&mut bad, &self.model);
        if !(0..=1000).contains(&self.replicas) {
            bad(
                "replicas",
                format!("{} must be between 0 and 1000", self.replicas),
            );
        }
        engine(&mut bad, &self.engine);
        if let Some(s) = &self.scaling {
            if self.replicas > s.max_replicas {
                bad(
                    "replicas",
                    format!(
                        "{} must not exceed spec.scaling.maxReplicas ({})",
                        self.replicas, s.max_replicas
                    ),
                );
            }
            scaling(&mut bad, s);
        }
        out
    }
}

/// The checks of `spec.model`, shared by LLMService and ModelPrewarm.
pub(crate) fn model(bad: &mut impl FnMut(&str, String), m: &ModelSource) {
    match ModelUri::parse(&m.uri) {
        Ok(uri) if !uri.lists_hashes() && m.files.is_empty() => bad(
            "model.files",
            "is required for s3://, https:// and pvc:// sources: only Hugging Face metadata lists each file's sha256".into(),
        ),
        Ok(_) => {}
        Err(e) => bad("model.uri", e.to_string()),
    }
    if m.files.len() > MAX_FILES {
        bad(
            "model.files",
            format!("lists {} files; at most {MAX_FILES}", m.files.len()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, f) in m.files.iter().enumerate() {
        if f.path.len() > MAX_PATH_LEN || !is_relative_path(&f.path) {
            bad(
                &format!("model.files[{i}].path"),
                format!(
                    "{:?} must be a relative path of at most {MAX_PATH_LEN} bytes without empty, '.' or '..' segments",
                    f.path
                ),
            );
        } else if !seen.insert(f.path.as_str()) {
            bad(
                &format!("model.files[{i}].path"),
                format!("{:?} is listed twice", f.path),
            );
        }
        if !(f.sha256.len() == 64
            && f.sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            bad(
                &format!("model.files[{i}].sha256"),
                format!("{:?} must be a sha256: 64 lowercase hex digits", f.sha256),
            );
        }
        if f.size.is_some_and(|s| s < 0) {
            bad(
                &format!("model.files[{i}].size"),
                "must not be negative".into(),
            );
        }
    }
    check_quantity(bad, "model.sizeLimit", m.size_limit.as_deref());
}

/// `vllm serve` flags the controller sets from the spec; a second copy in `args` would
/// contradict them (a different served name breaks the KEDA query).
const MANAGED_FLAGS: &[&str] = &[
    "--served-model-name",
    "--host",
    "--port",
    "--tensor-parallel-size",
    "-tp",
    "--pipeline-parallel-size",
    "-pp",
];

fn engine(bad: &mut impl FnMut(&str, String), e: &EngineSpec) {
    if e.image.trim().is_empty() {
        bad("engine.image", "must name the vLLM image".into());
    }
    for (field, v) in [
        ("engine.tensorParallelSize", e.tensor_parallel_size),
        ("engine.pipelineParallelSize", e.pipeline_parallel_size),
    ] {
        if !(1..=64).contains(&v) {
            bad(field, format!("{v} must be between 1 and 64"));
        }
    }
    if let Some(g) = e.gpus_per_replica {
        // i64: the factors are checked above, but not before this runs.
        let want = i64::from(e.tensor_parallel_size) * i64::from(e.pipeline_parallel_size);
        if i64::from(g) != want {
            bad(
                "engine.gpusPerReplica",
                format!(
                    "{g} must equal tensorParallelSize × pipelineParallelSize ({want}): vLLM runs one worker per GPU"
                ),
            );
        }
    }
    if !is_dns_subdomain(&e.runtime_class_name) {
        bad(
            "engine.runtimeClassName",
            format!(
                "{:?} is not a RuntimeClass name (a DNS subdomain)",
                e.runtime_class_name
            ),
        );
    }
    for (i, arg) in e.args.iter().enumerate() {
        let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
        if MANAGED_FLAGS.contains(&flag) {
            bad(
                &format!("engine.args[{i}]"),
                format!(
                    "{flag} is set by kubegrid (from the LLMService's name and spec.engine); remove it"
                ),
            );
        }
    }
    if !(0..=3600).contains(&e.drain_timeout_seconds) {
        bad(
            "engine.drainTimeoutSeconds",
            format!("{} must be between 0 and 3600", e.drain_timeout_seconds),
        );
    }
    if !(1..=65535).contains(&e.port) {
        bad("engine.port", format!("{} is not a TCP port", e.port));
    }
    check_quantity(bad, "engine.shmSize", e.shm_size.as_deref());
    if let Some(r) = &e.resources {
        for (which, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in map {
                let field = format!("engine.resources.{which}.{name}");
                if name.ends_with("/gpu") {
                    bad(
                        &field,
                        "GPUs come from engine.gpusPerReplica, not from resources".into(),
                    );
                } else {
                    check_quantity(bad, &field, Some(q));
                }
            }
        }
    }
}

fn scaling(bad: &mut impl FnMut(&str, String), s: &Scaling) {
    if s.min_replicas > s.max_replicas {
        bad(
            "scaling.minReplicas",
            format!(
                "{} must not exceed maxReplicas ({})",
                s.min_replicas, s.max_replicas
            ),
        );
    }
    let Some(k) = &s.keda else { return };
    if let Some(idle) = k.idle_replica_count
        && idle >= s.min_replicas
    {
        bad(
            "scaling.keda.idleReplicaCount",
            format!(
                "{idle} must be less than minReplicas ({}); KEDA refuses a ScaledObject otherwise",
                s.min_replicas
            ),
        );
    }
    if let Some(f) = &k.fallback
        && f.replicas > s.max_replicas
    {
        bad(
            "scaling.keda.fallback.replicas",
            format!(
                "{} must not exceed maxReplicas ({})",
                f.replicas, s.max_replicas
            ),
        );
    }
    if !is_decimal(&k.threshold) {
        bad(
            "scaling.keda.threshold",
            format!(
                "{:?} must be a decimal number such as 5 or 0.5",
                k.threshold
            ),
        );
    }
    let p = &k.trigger.prometheus;
    if !(p.server_address.starts_with("http://") || p.server_address.starts_with("https://")) {
        bad(
            "scaling.keda.trigger.prometheus.serverAddress",
            format!("{:?} must be an http:// or https:// URL", p.server_address),
        );
    }
    let metric_ok = p.metric.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || matches!(c, '_' | ':') || (i > 0 && c.is_ascii_digit())
    });
    if p.metric.is_empty() || !metric_ok {
        bad(
            "scaling.keda.trigger.prometheus.metric",
            format!(
                "{:?} must be a Prometheus metric name such as vllm:num_requests_waiting",
                p.metric
            ),
        );
    }
}

fn is_decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A positive Kubernetes quantity in the plain forms (`20Gi`, `512M`, `1.5Ti`, `1000000`,
/// `500m`). The schema types these fields as strings, so this is where a typo is caught.
fn check_quantity(bad: &mut impl FnMut(&str, String), field: &str, q: Option<&str>) {
    let Some(text) = q else { return };
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "m",
    ];
    let number = suffixes
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    if !is_decimal(number) || number.bytes().all(|b| b == b'0' || b == b'.') {
        bad(
            field,
            format!("{text:?} must be a positive quantity such as 20Gi or 512Mi"),
        );
    }
}
