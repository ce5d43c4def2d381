//! Scale from zero: the router in front of an LLMService whose KEDA `idleReplicaCount` is 0.
//!
//! At zero replicas vLLM reports nothing, so its metrics cannot wake the service. With a
//! router, the LLMService's Service (`<name>`, what clients and `status.endpoint` use)
//! selects the router's pods instead of vLLM's; the router forwards to `<name>-backend`,
//! which selects vLLM's pods, and holds requests while that has no ready endpoint, counting
//! them in `kubegrid_router_pending_requests{model_name, namespace}`, which the ScaledObject
//! adds to vLLM's queue. The router is never scaled by KEDA, so the signal exists at zero.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::{Value, json};

use super::metadata;
use crate::{LLMService, names};

/// The label the router's pods carry, with the LLMService's name.
pub const ROUTER_LABEL: &str = "serving.kubegrid.io/router";

/// Whether `svc` asks to scale to zero, and so gets a router.
pub fn scales_to_zero(svc: &LLMService) -> bool {
    svc.spec
        .scaling
        .as_ref()
        .and_then(|s| s.keda.as_ref())
        .is_some_and(|k| k.idle_replica_count == Some(0))
}

/// The router's Deployment name.
pub fn router_name(svc: &LLMService) -> String {
    format!("{}-router", svc.name_any())
}

/// The Service of the replicas the router forwards to.
pub fn backend_name(svc: &LLMService) -> String {
    format!("{}-backend", svc.name_any())
}

/// The labels (and selector) of `svc`'s router pods: not the LLMService's own, so that
/// `status.selector`, the scale subresource and the disruption budget count vLLM's pods only.
pub fn router_labels(svc: &LLMService) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "kubegrid-router".into()),
        ("app.kubernetes.io/instance".into(), svc.name_any()),
        ("app.kubernetes.io/managed-by".into(), "kubegrid".into()),
        (ROUTER_LABEL.into(), svc.name_any()),
    ])
}

fn router_selector(svc: &LLMService) -> BTreeMap<String, String> {
    BTreeMap::from([(ROUTER_LABEL.into(), svc.name_any())])
}

/// The router's Deployment: two replicas of the kubegrid `image` (pinned by digest), no API
/// access, non-root, read-only root filesystem, ready when `/healthz` answers; a stopping
/// router drains its requests for the engine's drain timeout.
pub fn router_deployment(svc: &LLMService, image: &str) -> Value {
    let name = svc.name_any();
    let port = svc.spec.engine.port;
    // The requests a stopping router still carries get as long as a stopping replica's.
    let drain = svc.spec.engine.drain_timeout_seconds;
    let mut meta = metadata(svc, &router_name(svc), &[]);
    meta["labels"] = json!(router_labels(svc));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": router_selector(svc)},
            "template": {
                "metadata": {"labels": router_labels(svc)},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    // The 5 s shutdown delay, the drain, and the last 503s written.
                    "terminationGracePeriodSeconds": drain + super::pod::SHUTDOWN_SECONDS,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "router",
                        "image": image,
                        "command": ["/kubegrid"],
                        "args": [
                            "serving-router",
                            format!("--listen=0.0.0.0:{port}"),
                            format!("--backend={}:{port}", backend_name(svc)),
                            format!("--model-name={name}"),
                            format!("--drain-timeout={drain}"),
                            "--log-format=json",
                        ],
                        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"cpu": "2", "memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// At most one of the two router pods down at a time for voluntary disruptions, so a node
/// drain never leaves a service that is scaled to zero without its request path.
pub fn router_disruption_budget(svc: &LLMService) -> Value {
    let mut meta = metadata(svc, &router_name(svc), &[]);
    meta["labels"] = json!(router_labels(svc));
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": router_selector(svc)}},
    })
}

/// The Service in front of every replica when a router takes `<name>`: what the router
/// forwards to.
pub fn backend_service(svc: &LLMService) -> Value {
    let name = svc.name_any();
    super::workloads::service_object(svc, &backend_name(svc), &[], names::selector_labels(&name))
}

/// `<name>` in front of the router's pods (their port is named `http` too).
pub fn router_service(svc: &LLMService) -> Value {
    super::workloads::service_object(svc, &svc.name_any(), &[], router_selector(svc))
}
