//! The vLLM pod template, the same in both scaling modes.

use serde_json::{Value, json};

use crate::{
    LLMService, ModelUri, drain,
    names::{self, CACHED_LABEL_PREFIX, CURRENT_LINK, MODEL_MOUNT, MODEL_ROOT, READY_MARKER},
    verify,
};

/// `/dev/shm`'s size unless the spec sets `engine.shmSize`: NCCL and vLLM's workers put
/// tensors there, and the container runtime's 64 MiB default breaks tensor parallelism.
pub const DEFAULT_SHM: &str = "8Gi";
/// The GPU resource the NVIDIA device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// How long the startup probe lets vLLM load a model before the kubelet restarts it: large
/// models take many minutes to read and compile (10 s × 180 = 30 min).
const STARTUP_FAILURES: i32 = 180;
/// Seconds of grace beyond the drain, for vLLM's own shutdown after SIGTERM (and for the
/// router's shutdown delay before its drain).
pub(super) const SHUTDOWN_SECONDS: i32 = 30;

/// The pod template of `svc`'s replicas, with `extra` labels (a service-mode replica's
/// index) on top of the LLMService's own.
pub fn template(svc: &LLMService, name: &str, extra: &[(&str, String)]) -> Value {
    let spec = &svc.spec;
    let engine = &spec.engine;
    let mut labels = names::labels(name);
    for (k, v) in extra {
        labels.insert((*k).into(), v.clone());
    }
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
    let model = Model::of(svc);
    let mut args = vec![
        model.path.clone(),
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
    let mut template = json!({
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
            "initContainers": [model.init],
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
                "volumeMounts": [model.mount, {"name": "shm", "mountPath": "/dev/shm"}],
            }],
            "volumes": [
                model.volume,
                {"name": "shm", "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": engine.shm_size.as_deref().unwrap_or(DEFAULT_SHM),
                }},
            ],
        },
    });
    if let Some(affinity) = model.affinity {
        template["spec"]["affinity"] = affinity;
    }
    template
}

/// Where a pod's model comes from, and what holds vLLM until it is there.
struct Model {
    /// The directory vLLM serves.
    path: String,
    volume: Value,
    mount: Value,
    init: Value,
    /// None where no node is better than another.
    affinity: Option<Value>,
}

impl Model {
    /// A `pvc://` model is the claim itself, mounted read-only and checked file by file by
    /// `verify-model`; any other is the node cache's directory, with an init container that
    /// waits for its ready marker and a preference for nodes that already hold it.
    fn of(svc: &LLMService) -> Self {
        let spec = &svc.spec;
        let image = &spec.engine.image;
        if let Ok(ModelUri::Pvc { claim, path }) = ModelUri::parse(&spec.model.uri) {
            let mut mount = json!({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": true});
            if !path.is_empty() {
                mount["subPath"] = json!(path);
            }
            return Self {
                path: MODEL_MOUNT.into(),
                volume: json!({"name": "model", "persistentVolumeClaim": {
                    "claimName": claim,
                    "readOnly": true,
                }}),
                init: json!({
                    "name": "verify-model",
                    "image": image,
                    "workingDir": MODEL_MOUNT,
                    "command": verify::command(&spec.model.files),
                    "volumeMounts": [mount.clone()],
                }),
                mount,
                affinity: None,
            };
        }
        let key = names::cache_key(&spec.model.uri);
        let mount = json!({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": true});
        Self {
            path: format!("{MODEL_MOUNT}/{CURRENT_LINK}"),
            volume: json!({"name": "model", "hostPath": {
                "path": format!("{MODEL_ROOT}/{key}"),
                "type": "DirectoryOrCreate",
            }}),
            init: json!({
                "name": "wait-for-model",
                "image": image,
                // The node cache writes the marker only after every file verified.
                "command": ["sh", "-c", format!(
                    "until [ -f {MODEL_MOUNT}/{READY_MARKER} ]; do sleep 5; done; \
                     echo model ready: commit $(cat {MODEL_MOUNT}/{READY_MARKER})"
                )],
                "volumeMounts": [mount.clone()],
            }),
            mount,
            affinity: Some(
                json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "preference": {"matchExpressions": [{
                        "key": format!("{CACHED_LABEL_PREFIX}{key}"),
                        "operator": "In",
                        "values": ["ready"],
                    }]},
                }]}}),
            ),
        }
    }
}
