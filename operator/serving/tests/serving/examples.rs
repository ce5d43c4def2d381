//! Specs, good and bad, with the field each bad one must be refused at; the code validation
//! here, the real API server in `real_server`, and both must agree.

use serde_json::{Value, json};

/// A valid service-mode spec with KEDA scaling; each example edits a copy.
pub fn base() -> Value {
    json!({
        "model": {
            "uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main",
            "sizeLimit": "20Gi"
        },
        "engine": {
            "image": "vllm/vllm-openai:v0.11.0",
            "args": ["--max-model-len", "8192"],
            "tensorParallelSize": 2,
            "gpusPerReplica": 2,
            "shmSize": "8Gi"
        },
        "replicas": 2,
        "scaling": {
            "mode": "service",
            "minReplicas": 1,
            "maxReplicas": 4,
            "keda": {
                "trigger": {"prometheus": {"serverAddress": "http://prometheus.monitoring:9090"}},
                "threshold": "5",
                "idleReplicaCount": 0,
                "fallback": {"failureThreshold": 3, "replicas": 1}
            }
        }
    })
}

/// (name, edit of [`base`], the one field refused or `None`).
pub type Example = (&'static str, fn(&mut Value), Option<&'static str>);

pub const EXAMPLES: &[Example] = &[
    ("the base spec", |_| {}, None),
    (
        "a minimal hf spec",
        |s| {
            *s = json!({"model": {"uri": "hf://Qwen/Qwen2.5-0.5B"}, "engine": {"image": "vllm/vllm-openai:v0.11.0"}});
        },
        None,
    ),
    (
        "s3 with its files",
        |s| {
            s["model"] = json!({"uri": "s3://models/llama", "files": [{"path": "config.json", "sha256": "ab".repeat(32), "size": 700}]});
        },
        None,
    ),
    (
        "an unknown scheme",
        |s| s["model"]["uri"] = json!("ftp://host/model"),
        Some("spec.model.uri"),
    ),
    (
        "s3 without files",
        |s| s["model"]["uri"] = json!("s3://models/llama"),
        Some("spec.model.files"),
    ),
    (
        "an uppercase sha256",
        |s| {
            s["model"]["files"] = json!([{"path": "a.safetensors", "sha256": "AB".repeat(32)}]);
        },
        Some("spec.model.files[0].sha256"),
    ),
    (
        "a file path with ..",
        |s| {
            s["model"]["files"] = json!([{"path": "../a", "sha256": "ab".repeat(32)}]);
        },
        Some("spec.model.files[0].path"),
    ),
    (
        "GPUs that do not match the parallelism",
        |s| s["engine"]["gpusPerReplica"] = json!(3),
        Some("spec.engine.gpusPerReplica"),
    ),
    (
        "minReplicas above maxReplicas",
        |s| s["scaling"]["minReplicas"] = json!(5),
        Some("spec.scaling.minReplicas"),
    ),
    (
        "an idle count not below minReplicas",
        |s| s["scaling"]["keda"]["idleReplicaCount"] = json!(1),
        Some("spec.scaling.keda.idleReplicaCount"),
    ),
    (
        "replicas above maxReplicas",
        |s| s["replicas"] = json!(9),
        Some("spec.replicas"),
    ),
    (
        "negative replicas",
        |s| s["replicas"] = json!(-1),
        Some("spec.replicas"),
    ),
    (
        "a threshold that is not a number",
        |s| s["scaling"]["keda"]["threshold"] = json!("five"),
        Some("spec.scaling.keda.threshold"),
    ),
    (
        "a fallback above maxReplicas",
        |s| s["scaling"]["keda"]["fallback"]["replicas"] = json!(10),
        Some("spec.scaling.keda.fallback.replicas"),
    ),
    (
        "a metric name with a space",
        |s| s["scaling"]["keda"]["trigger"]["prometheus"]["metric"] = json!("num requests"),
        Some("spec.scaling.keda.trigger.prometheus.metric"),
    ),
];

/// Each example's spec.
pub fn specs() -> Vec<(&'static str, Value, Option<&'static str>)> {
    EXAMPLES
        .iter()
        .map(|(name, edit, field)| {
            let mut spec = base();
            edit(&mut spec);
            (*name, spec, *field)
        })
        .collect()
}

#[test]
fn the_code_refuses_each_bad_example_at_its_field_and_nothing_else() {
    for (name, spec, field) in specs() {
        let spec: kubegrid_serving::LlmServiceSpec =
            serde_json::from_value(spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors = spec.validate();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            field.into_iter().collect::<Vec<_>>(),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn a_replica_takes_tensor_times_pipeline_gpus_unless_given() {
    let mut spec = base();
    spec["engine"] = json!({"image": "vllm", "tensorParallelSize": 4, "pipelineParallelSize": 2});
    let spec: kubegrid_serving::LlmServiceSpec = serde_json::from_value(spec).unwrap();
    assert_eq!(spec.engine.gpus(), 8);
    assert_eq!(
        spec.engine.runtime_class_name, "nvidia",
        "the default RuntimeClass"
    );
    assert_eq!(spec.engine.port, 8000);
    assert!(spec.validate().is_empty(), "{:?}", spec.validate());
}

#[test]
fn code_errors_say_what_was_seen_and_what_is_expected() {
    let mut spec = base();
    spec["engine"]["gpusPerReplica"] = json!(3);
    let spec: kubegrid_serving::LlmServiceSpec = serde_json::from_value(spec).unwrap();
    let errors = spec.validate();
    assert_eq!(
        errors[0].to_string(),
        "spec.engine.gpusPerReplica: 3 must equal tensorParallelSize × pipelineParallelSize (2): vLLM runs one worker per GPU"
    );
}
