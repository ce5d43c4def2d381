//! The KEDA ScaledObject that scales an LLMService through its scale subresource.

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::metadata;
use crate::{KedaScaling, LLMService};

/// The Prometheus query of `svc`'s demand: its metric summed over every replica, selected
/// by vLLM's own `model_name` label (the served model name, which the controller sets to
/// the LLMService's name) and the namespace Prometheus scraped it in. `or vector(0)` makes
/// "no replica reports" read as 0 rather than as a failed trigger, so the fallback applies
/// only when Prometheus itself cannot be read.
pub fn query(svc: &LLMService, keda: &KedaScaling) -> String {
    format!(
        "sum({}{{model_name=\"{}\",namespace=\"{}\"}}) or vector(0)",
        keda.trigger.prometheus.metric,
        svc.name_any(),
        svc.namespace().unwrap_or_default(),
    )
}

/// The ScaledObject for `svc`, whose `spec.scaling.keda` is `keda`: bounds from
/// `spec.scaling`, the idle count, the fallback, and the Prometheus trigger. `None` when the
/// LLMService does not ask for KEDA.
pub fn scaled_object(svc: &LLMService) -> Option<Value> {
    let scaling = svc.spec.scaling.as_ref()?;
    let keda = scaling.keda.as_ref()?;
    let mut spec = json!({
        "scaleTargetRef": {
            "apiVersion": LLMService::api_version(&()),
            "kind": LLMService::kind(&()),
            "name": svc.name_any(),
        },
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": [{
            "type": "prometheus",
            "metadata": {
                "serverAddress": keda.trigger.prometheus.server_address,
                "query": query(svc, keda),
                "threshold": keda.threshold,
                // Any demand at all wakes an idle service.
                "activationThreshold": "0",
            },
        }],
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
