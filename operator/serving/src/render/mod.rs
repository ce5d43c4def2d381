//! The objects an LLMService becomes, rendered as JSON for server-side apply. Pure: the
//! same spec always gives the same objects, which the golden tests pin.

mod keda;
mod pod;
mod router;
mod workloads;

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

pub use keda::{ROUTER_PENDING, activity_query, query, scaled_object};
pub use pod::{DEFAULT_SHM, GPU_RESOURCE, template};
pub use router::{
    ROUTER_LABEL, backend_name, backend_service, router_deployment, router_disruption_budget,
    router_labels, router_name, router_service, scales_to_zero,
};
pub use workloads::{deployment, disruption_budget, replica_service, service, stateful_set};

use crate::{LLMService, names};

/// `metadata` for an object `name` of `svc`: its namespace, labels (plus `extra`) and an
/// owner reference that makes the LLMService its controller, so Kubernetes' garbage
/// collector removes what the controller did not.
pub(crate) fn metadata(svc: &LLMService, name: &str, extra: &[(&str, String)]) -> Value {
    let mut labels = names::labels(&svc.name_any());
    for (k, v) in extra {
        labels.insert((*k).into(), v.clone());
    }
    json!({
        "name": name,
        "namespace": svc.namespace(),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": LLMService::api_version(&()),
            "kind": LLMService::kind(&()),
            "name": svc.name_any(),
            "uid": svc.uid(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    })
}
