//! The KEDA ScaledObject that scales an LLMService through its scale subresource.

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::metadata;
use crate::{KedaScaling, LLMService};

/// The router's waiting requests (kubegrid-router exports it with vLLM's labels).
pub const ROUTER_PENDING: &str = "kubegrid_router_pending_requests";
/// vLLM's running requests, which keep a service awake (see [`activity_query`]).
const RUNNING: &str = "vllm:num_requests_running";
/// The activity trigger's threshold: far above any real count, so it never asks for more
/// replicas than the demand trigger does; it only keeps the service active.
const ACTIVITY_THRESHOLD: &str = "1000000";

/// `sum(metric{model_name, namespace}) or vector(0)`: summed over every replica, selected by
/// vLLM's own `model_name` label (the served model name, which the controller sets to the
/// LLMService's name) and the namespace Prometheus scraped it in. `or vector(0)` makes "no
/// replica reports" read as 0 rather than as a failed trigger, so the fallback applies only
/// when Prometheus itself cannot be read.
fn summed(metric: &str, svc: &LLMService) -> String {
    format!(
        "(sum({metric}{{model_name=\"{}\",namespace=\"{}\"}}) or vector(0))",
        svc.name_any(),
        svc.namespace().unwrap_or_default(),
    )
}

/// The Prometheus query of `svc`'s demand: the trigger metric and, for a service that
/// scales to zero, the requests its router holds, which exist while no replica does.
pub fn query(svc: &LLMService, keda: &KedaScaling) -> String {
    let demand = summed(&keda.trigger.prometheus.metric, svc);
    if super::router::scales_to_zero(svc) {
        format!("{demand} + {}", summed(ROUTER_PENDING, svc))
    } else {
        demand
    }
}

/// For a service that scales to zero: requests running on vLLM or held by the router. KEDA
/// idles a service only when every trigger is inactive, so this keeps it up while requests
/// run even with nothing queued.
pub fn activity_query(svc: &LLMService) -> String {
    format!("{} + {}", summed(RUNNING, svc), summed(ROUTER_PENDING, svc))
}

/// The ScaledObject for `svc`, whose `spec.scaling.keda` is `keda`: bounds from
/// `spec.scaling`, the idle count, the fallback, and the Prometheus trigger. `None` when the
/// LLMService does not ask for KEDA.
pub fn scaled_object(svc: &LLMService) -> Option<Value> {
    let scaling = svc.spec.scaling.as_ref()?;
    let keda = scaling.keda.as_ref()?;
    let mut triggers = vec![json!({
        "type": "prometheus",
        "name": "demand",
        "metadata": {
            "serverAddress": keda.trigger.prometheus.server_address,
            "query": query(svc, keda),
            "threshold": keda.threshold,
            // Any demand at all wakes an idle service.
            "activationThreshold": "0",
        },
    })];
    if super::router::scales_to_zero(svc) {
        triggers.push(json!({
            "type": "prometheus",
            "name": "activity",
            "metadata": {
                "serverAddress": keda.trigger.prometheus.server_address,
                "query": activity_query(svc),
                "threshold": ACTIVITY_THRESHOLD,
                "activationThreshold": "0",
            },
        }));
    }
    let mut spec = json!({
        "scaleTargetRef": {
            "apiVersion": LLMService::api_version(&()),
            "kind": LLMService::kind(&()),
            "name": svc.name_any(),
        },
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": triggers,
    });
    if let Some(idle) = keda.idle_replica_count {
        spec["idleReplicaCount"] = json!(idle);
    }
    if let Some(f) = &keda.fallback {
        spec["fallback"] = json!({"failureThreshold": f.failure_threshold, "replicas": f.replicas});
    }
    Some(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(svc, &svc.name_any(), &[]),
        "spec": spec,
    }))
}
