//! The vLLM pod template, the same in both scaling modes.

use serde_json::{Value, json};

use crate::{
    LLMService, drain,
    names::{self, CACHED_LABEL_PREFIX, CURRENT_LINK, MODEL_MOUNT, MODEL_ROOT, READY_MARKER},
};

/// `/dev/shm`'s size unless the spec sets `engine.shmSize`: NCCL and vLLM's workers put
/// tensors there, and the container runtime's 64 MiB default breaks tensor parallelism.
pub const DEFAULT_SHM: &str = "8Gi";
/// The GPU resource the NVIDIA device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// How long the startup probe lets vLLM load a model before the kubelet restarts it: large
/// models take many minutes to read and compile (10 s × 180 = 30 min).
const STARTUP_FAILURES: i32 = 180;
/// Seconds of grace beyond the drain, for vLLM's own shutdown after SIGTERM.
const SHUTDOWN_SECONDS: i32 = 30;

/// The pod template of `svc`'s replicas, with `extra` labels (a service-mode replica's
/// index) on top of the LLMService's own.
pub fn template(svc: &LLMService, name: &str, extra: &[(&str, String)]) -> Value {
    let spec = &svc.spec;
    let engine = &spec.engine;
    let mut labels = names::labels(name);
    for (k, v) in extra {
        labels.insert((*k).into(), v.clone());
    }
    let key = names::cache_key(&spec.model.uri);
    let gpus = engine.gpus().to_string();
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(r) = &engine.resources {
        requests.extend(r.requests.iter().map(|(k, v)| (k.clone(), json!(v))));
        limits.extend(r.limits.iter().map(|(k, v)| (k.clone(), json!(v))));
    }
    // Extended resources must be in limits; requests default to them but are set too so the
    // object reads the same as the scheduler sees it.
    requests.insert(GPU_RESOURCE.into(), json!(gpus));
    limits.insert(GPU_RESOURCE.into(), json!(gpus));
    let mut args = vec![
        format!("{MODEL_MOUNT}/{CURRENT_LINK}"),
        "--served-model-name".into(),
        name.into(),
        "--tensor-parallel-size".into(),
        engine.tensor_parallel_size.to_string(),
        "--pipeline-parallel-size".into(),
        engine.pipeline_parallel_size.to_string(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        engine.port.to_string(),
    ];
    args.extend(engine.args.iter().cloned());
    let health = |period: i32, failures: i32| {
        json!({
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        })
    };
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "runtimeClassName": engine.runtime_class_name,
            // A Service named like a vLLM env var prefix (`vllm`) would inject VLLM_PORT
            // as `tcp://…`, which vLLM reads as its own setting and crashes on.
            "enableServiceLinks": false,
            // vLLM never talks to the Kubernetes API.
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": engine.drain_timeout_seconds + SHUTDOWN_SECONDS,
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "preference": {"matchExpressions": [{
                    "key": format!("{CACHED_LABEL_PREFIX}{key}"),
                    "operator": "In",
                    "values": ["ready"],
                }]},
            }]}},
            "initContainers": [{
                "name": "wait-for-model",
                "image": engine.image,
                // The node cache writes the marker only after every file verified.
                "command": ["sh", "-c", format!(
                    "until [ -f {MODEL_MOUNT}/{READY_MARKER} ]; do sleep 5; done; \
                     echo model ready: commit $(cat {MODEL_MOUNT}/{READY_MARKER})"
                )],
                "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT, "readOnly": true}],
            }],
            "containers": [{
                "name": "vllm",
                "image": engine.image,
                "command": ["vllm", "serve"],
                "args": args,
                "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}],
                "resources": {"requests": requests, "limits": limits},
                "startupProbe": health(10, STARTUP_FAILURES),
                "readinessProbe": health(5, 3),
                "livenessProbe": health(10, 6),
                "lifecycle": {"preStop": {"exec": {
                    "command": drain::command(engine.port, engine.drain_timeout_seconds),
                }}},
                "volumeMounts": [
                    {"name": "model", "mountPath": MODEL_MOUNT, "readOnly": true},
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
            }],
            "volumes": [
                {"name": "model", "hostPath": {
                    "path": format!("{MODEL_ROOT}/{key}"),
                    "type": "DirectoryOrCreate",
                }},
                {"name": "shm", "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": engine.shm_size.as_deref().unwrap_or(DEFAULT_SHM),
                }},
            ],
        },
    })
}
