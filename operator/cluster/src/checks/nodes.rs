//! `nodes-ready` and the labels kubegrid puts on Nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};

use super::{
    CONTROL_PLANE_LABEL, CheckOptions, CheckResult, ExpectedNode, NODES_READY, ROLE_CONTROL_PLANE,
    ROLE_WORKER, WORKER_LABEL, timed,
};
use crate::{
    FIELD_MANAGER,
    error::{Error, Result, describe},
    poll::{Attempt, poll_until},
};

/// Checks that every expected node exists, is Ready and carries its role
/// labels, labels and taints, waiting up to [`CheckOptions::nodes_timeout`].
pub async fn check_nodes_ready(
    client: &Client,
    opts: &CheckOptions,
    expected: &[ExpectedNode],
) -> CheckResult {
    timed(NODES_READY, async {
        let wanted: Vec<&ExpectedNode> = expected
            .iter()
            .filter(|node| node.is_kubernetes_node())
            .collect();
        if wanted.is_empty() {
            return Err(
                "no control-plane or worker node is expected; expected at least one".into(),
            );
        }
        let api: Api<Node> = Api::all(client.clone());
        let outcome = poll_until(opts.nodes_timeout, opts.poll_interval, || {
            let api = api.clone();
            let wanted = &wanted;
            async move {
                let seen = match api.list(&ListParams::default()).await {
                    Ok(list) => list.items,
                    Err(err) => {
                        return Attempt::Retry(format!("could not list nodes: {}", describe(&err)));
                    }
                };
                let problems: Vec<String> = wanted
                    .iter()
                    .flat_map(|node| {
                        let found = seen
                            .iter()
                            .find(|n| n.metadata.name.as_deref() == Some(&node.name));
                        node_problems(node, found)
                    })
                    .collect();
                if problems.is_empty() {
                    Attempt::Done(())
                } else {
                    Attempt::Retry(problems.join("; "))
                }
            }
        })
        .await;
        let names: Vec<&str> = wanted.iter().map(|node| node.name.as_str()).collect();
        match outcome {
            Ok(()) => Ok(format!(
                "{} node(s) Ready with the expected roles, labels and taints: {}",
                names.len(),
                names.join(", ")
            )),
            Err(last) => Err(format!("after {:?}: {last}", opts.nodes_timeout)),
        }
    })
    .await
}

/// What is wrong with one node, each entry naming the node, what was seen and what was expected.
pub(crate) fn node_problems(expected: &ExpectedNode, seen: Option<&Node>) -> Vec<String> {
    let name = &expected.name;
    let Some(node) = seen else {
        return vec![format!(
            "node {name}: not registered, expected a Node named {name}"
        )];
    };
    let mut problems = Vec::new();
    let ready = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(condition) if condition.status == "True" => {}
        Some(condition) => problems.push(format!(
            "node {name}: Ready={} ({}: {}), expected Ready=True",
            condition.status,
            condition.reason.as_deref().unwrap_or("no reason"),
            condition.message.as_deref().unwrap_or("no message"),
        )),
        None => problems.push(format!(
            "node {name}: no Ready condition yet, expected Ready=True"
        )),
    }

    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    for (role, label) in [
        (ROLE_CONTROL_PLANE, CONTROL_PLANE_LABEL),
        (ROLE_WORKER, WORKER_LABEL),
    ] {
        if expected.has_role(role) && !labels.contains_key(label) {
            problems.push(format!(
                "node {name}: label {label} absent, expected it for role {role}"
            ));
        }
    }
    for (key, want) in &expected.labels {
        match labels.get(key) {
            Some(value) if value == want => {}
            Some(value) => problems.push(format!(
                "node {name}: label {key}={value}, expected {key}={want}"
            )),
            None => problems.push(format!(
                "node {name}: label {key} absent, expected {key}={want}"
            )),
        }
    }

    let taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|spec| spec.taints.as_deref())
        .unwrap_or(&[]);
    for (key, value, effect) in &expected.taints {
        let present = taints.iter().any(|taint| {
            taint.key == *key
                && taint.effect == *effect
                && taint.value.as_deref().unwrap_or("") == value.as_deref().unwrap_or("")
        });
        if !present {
            let seen: Vec<String> = taints
                .iter()
                .map(|t| format_taint(&t.key, t.value.as_deref(), &t.effect))
                .collect();
            problems.push(format!(
                "node {name}: taint {} absent (seen [{}]), expected it",
                format_taint(key, value.as_deref(), effect),
                seen.join(", ")
            ));
        }
    }
    problems
}

fn format_taint(key: &str, value: Option<&str>, effect: &str) -> String {
    match value {
        Some(value) if !value.is_empty() => format!("{key}={value}:{effect}"),
        _ => format!("{key}:{effect}"),
    }
}

/// Puts the worker role label and the user's labels on every expected Node.
///
/// kubelets may not set `node-role.kubernetes.io/*` labels on themselves (the
/// NodeRestriction admission plugin refuses them), so kubegrid sets them
/// through the API. A merge patch only adds or overwrites the listed keys,
/// which makes this safe to repeat. Control-plane labels are left to kubeadm.
pub async fn label_nodes(client: &Client, expected: &[ExpectedNode]) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    for node in expected.iter().filter(|node| node.is_kubernetes_node()) {
        let mut labels = node.labels.clone();
        if node.has_role(ROLE_WORKER) {
            labels.insert(WORKER_LABEL.into(), String::new());
        }
        if labels.is_empty() {
            continue;
        }
        let patch = serde_json::json!({ "metadata": { "labels": &labels } });
        api.patch(&node.name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::LabelNode {
                node: node.name.clone(),
                labels: labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                source,
            })?;
        tracing::debug!(node = %node.name, labels = labels.len(), "labelled node");
    }
    Ok(())
}
