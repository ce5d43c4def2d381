//! Workloads and Services: one Deployment in pod mode, one StatefulSet and Service per
//! replica in service mode, the Service in front of all replicas, and the disruption budget.

use kube::ResourceExt;
use serde_json::{Value, json};

use super::{metadata, pod};
use crate::{
    LLMService,
    names::{self, REPLICA_LABEL},
};

/// Pod mode: one Deployment whose pods are the replicas.
pub fn deployment(svc: &LLMService) -> Value {
    let name = svc.name_any();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(svc, &name, &[]),
        "spec": {
            "replicas": svc.spec.replicas,
            "selector": {"matchLabels": names::selector_labels(&name)},
            // GPUs are rarely spare: a rollout replaces a replica before it adds one.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": pod::template(svc, &name, &[]),
        },
    })
}

/// Service mode: replica `index`'s StatefulSet of one pod, with `replicas` 1 (or 0 while it
/// drains before removal).
pub fn stateful_set(svc: &LLMService, index: i32, replicas: i32) -> Value {
    let name = svc.name_any();
    let replica = names::replica(&name, index);
    let extra = [(REPLICA_LABEL, index.to_string())];
    let mut selector = names::selector_labels(&name);
    selector.insert(REPLICA_LABEL.into(), index.to_string());
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(svc, &replica, &extra),
        "spec": {
            "replicas": replicas,
            "serviceName": replica,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": pod::template(svc, &name, &extra),
        },
    })
}

/// The Service in front of every replica, what `status.endpoint` names (unless a router
/// takes the name: [`super::router::router_service`]).
pub fn service(svc: &LLMService) -> Value {
    let name = svc.name_any();
    service_object(svc, &name, &[], names::selector_labels(&name))
}

/// Service mode: replica `index`'s own Service, to reach that replica alone.
pub fn replica_service(svc: &LLMService, index: i32) -> Value {
    let name = svc.name_any();
    let extra = [(REPLICA_LABEL, index.to_string())];
    let mut selector = names::selector_labels(&name);
    selector.insert(REPLICA_LABEL.into(), index.to_string());
    service_object(svc, &names::replica(&name, index), &extra, selector)
}

pub(super) fn service_object(
    svc: &LLMService,
    name: &str,
    extra: &[(&str, String)],
    selector: std::collections::BTreeMap<String, String>,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(svc, name, extra),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": svc.spec.engine.port, "targetPort": "http", "protocol": "TCP"}],
        },
    })
}

/// At most one replica down at a time for voluntary disruptions (node drains, cluster
/// upgrades). `maxUnavailable` rather than `minAvailable`: with one replica, a minimum of
/// one would block every node drain for good.
pub fn disruption_budget(svc: &LLMService) -> Value {
    let name = svc.name_any();
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(svc, &name, &[]),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names::selector_labels(&name)},
        },
    })
}
