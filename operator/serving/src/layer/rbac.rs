//! The layer's ServiceAccounts and RBAC, each verb for a reason:
//! - the controller reads LLMServices, writes their status and finalizer, applies and
//!   deletes the Deployments, StatefulSets, Services, PodDisruptionBudgets and KEDA
//!   ScaledObjects they become, records Events, and holds its leader Lease;
//! - the cache reads LLMServices and ModelPrewarms and writes their status, reads and labels
//!   its own Node, and holds one coordinator Lease per model.

use serde_json::{Value, json};

use super::{CACHE, CONTROLLER, labels};

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn account(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name)},
    })
}

fn bind(kind: &str, name: &str, namespace: &str) -> Value {
    let binding = if kind == "ClusterRole" {
        "ClusterRoleBinding"
    } else {
        "RoleBinding"
    };
    let mut metadata = json!({"name": name, "labels": labels(name)});
    if kind == "Role" {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": binding,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    })
}

fn role(kind: &str, name: &str, namespace: &str, rules: Vec<Value>) -> Value {
    let mut metadata = json!({"name": name, "labels": labels(name)});
    if kind == "Role" {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "rules": rules,
    })
}

const READ: &[&str] = &["get", "list", "watch"];
const APPLY: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// The ServiceAccounts, roles and bindings of the controller and the cache.
pub fn rbac(namespace: &str) -> Vec<Value> {
    let controller = vec![
        rule(
            &["serving.kubegrid.io"],
            &["llmservices"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &["serving.kubegrid.io"],
            &["llmservices/status"],
            &["get", "patch", "update"],
        ),
        rule(
            &["serving.kubegrid.io"],
            &["llmservices/finalizers"],
            &["update"],
        ),
        rule(&["apps"], &["deployments", "statefulsets"], APPLY),
        rule(&[""], &["services"], APPLY),
        rule(&["policy"], &["poddisruptionbudgets"], APPLY),
        rule(&["keda.sh"], &["scaledobjects"], APPLY),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
    ];
    let cache = vec![
        rule(
            &["serving.kubegrid.io"],
            &["llmservices", "modelprewarms"],
            READ,
        ),
        rule(
            &["serving.kubegrid.io"],
            &["llmservices/status", "modelprewarms/status"],
            &["get", "update"],
        ),
        rule(&[""], &["nodes"], &["get", "patch"]),
    ];
    let lease = |name: &str, verbs: &[&str]| {
        role(
            "Role",
            name,
            namespace,
            vec![rule(&["coordination.k8s.io"], &["leases"], verbs)],
        )
    };
    vec![
        account(CONTROLLER, namespace),
        role("ClusterRole", CONTROLLER, namespace, controller),
        bind("ClusterRole", CONTROLLER, namespace),
        lease(CONTROLLER, &["get", "create", "update"]),
        bind("Role", CONTROLLER, namespace),
        account(CACHE, namespace),
        role("ClusterRole", CACHE, namespace, cache),
        bind("ClusterRole", CACHE, namespace),
        // A follower watches its model's Lease instead of reading it again and again.
        lease(CACHE, &["get", "list", "watch", "create", "update"]),
        bind("Role", CACHE, namespace),
    ]
}
