//! The serving layer's own objects, what a cluster runs to serve LLMServices: the serving
//! controller (a Deployment, one replica acting through a Lease), the node model cache (a
//! DaemonSet on GPU nodes, host networking for the fan-out), their ServiceAccounts and RBAC,
//! and optionally PodMonitors for Prometheus. Pure, like [`crate::render`]: the same options
//! give the same objects, which the golden test pins.
//!
//! The CRDs come from [`crate::crd`] and [`crate::prewarm_crd`]; the fan-out token Secret
//! ([`token_secret`]) is apart because its value is generated per cluster.

mod rbac;
mod workloads;

use serde_json::{Value, json};

pub use rbac::rbac;
pub use workloads::{cache_daemon_set, controller_deployment};

/// The Secret holding the cache's fan-out token (key `token`).
pub const TOKEN_SECRET: &str = "kubegrid-model-cache-token";
/// The optional Secret whose keys become the cache's environment: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL_S3` and
/// `KUBEGRID_S3_PATH_STYLE` for `s3://` models. The layer never writes it.
pub const S3_SECRET: &str = "kubegrid-model-cache-s3";
/// The serving controller's name (Deployment, ServiceAccount, Lease).
pub const CONTROLLER: &str = "kubegrid-serving-controller";
/// The node model cache's name (DaemonSet, ServiceAccount).
pub const CACHE: &str = "kubegrid-model-cache";
/// The cache's fan-out port on every GPU node.
pub const FANOUT_PORT: i32 = 9461;
/// The cache's control port: joins, `/metrics` and `/healthz`.
pub const CONTROL_PORT: i32 = 9462;

/// What the serving layer is deployed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// The namespace of the controller, the cache and their Leases.
    pub namespace: String,
    /// The kubegrid image, pinned by digest (`repo@sha256:…`): it runs both.
    pub image: String,
    /// The cache's `--capacity` (a quantity), if any.
    pub cache_capacity: Option<String>,
    /// The label GPU nodes carry (`key=value`), where the cache runs.
    pub gpu_node_label: (String, String),
    /// Render PodMonitors (monitoring.coreos.com/v1) for the cache and the vLLM pods.
    pub pod_monitors: bool,
}

impl LayerOptions {
    /// Options with kubegrid's defaults for `image`: namespace `kubegrid-serving`, the cache
    /// on nodes labelled `nvidia.com/gpu.present=true` (NVIDIA's GPU feature discovery), no
    /// capacity, no PodMonitors.
    pub fn new(image: &str) -> Self {
        Self {
            namespace: "kubegrid-serving".into(),
            image: image.into(),
            cache_capacity: None,
            gpu_node_label: ("nvidia.com/gpu.present".into(), "true".into()),
            pod_monitors: false,
        }
    }
}

/// The labels of the layer's objects; `component` is the controller's or the cache's name.
pub(crate) fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": "kubegrid-serving",
        "app.kubernetes.io/managed-by": "kubegrid",
    })
}

/// Every object of the layer but the CRDs and the token Secret, in apply order: the
/// namespace, RBAC, the workloads, then the PodMonitors when asked.
pub fn objects(opts: &LayerOptions) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": opts.namespace, "labels": labels("kubegrid-serving")},
    })];
    out.extend(rbac(&opts.namespace));
    out.push(controller_deployment(opts));
    out.push(cache_daemon_set(opts));
    if opts.pod_monitors {
        out.extend(pod_monitors(&opts.namespace));
    }
    out
}

/// The cache's fan-out token Secret; `token` is random per cluster.
pub fn token_secret(namespace: &str, token: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": namespace, "labels": labels(CACHE)},
        "type": "Opaque",
        "stringData": {"token": token},
    })
}

/// PodMonitors for the cache daemons (port `control`), for every LLMService's vLLM pods and
/// for the routers of those that scale to zero (port `http`, in any namespace), keeping
/// Prometheus' `namespace` label that the KEDA query and the dashboard select on.
fn pod_monitors(namespace: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": CACHE, "namespace": namespace, "labels": labels(CACHE)},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": CACHE}},
                "podMetricsEndpoints": [{"port": "control", "path": "/metrics"}],
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "kubegrid-vllm", "namespace": namespace, "labels": labels("kubegrid-vllm")},
            "spec": {
                "namespaceSelector": {"any": true},
                "selector": {"matchExpressions": [{
                    "key": crate::names::SERVICE_LABEL,
                    "operator": "Exists",
                }]},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "kubegrid-router", "namespace": namespace, "labels": labels("kubegrid-router")},
            "spec": {
                "namespaceSelector": {"any": true},
                "selector": {"matchExpressions": [{
                    "key": crate::render::ROUTER_LABEL,
                    "operator": "Exists",
                }]},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
            },
        }),
    ]
}
