//! What an upgrade roll needs from the Kubernetes API besides the drain: each Node's
//! readiness and cordon, which PodDisruptionBudgets cover pods on which Nodes, uncordoning,
//! and waiting for a Node to be Ready again after its kubelet restarted.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use k8s_openapi::{
    api::{
        core::v1::{Node, Pod},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};

use crate::{
    FIELD_MANAGER,
    error::{Error, Result},
    poll::{Attempt, poll_until},
};

/// A Node as an upgrade sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCondition {
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// A PodDisruptionBudget and the Nodes that run pods it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Nodes running a pod it selects, sorted.
    pub nodes: Vec<String>,
}

/// Every Node's readiness and cordon, by name.
pub async fn node_conditions(client: &Client) -> Result<BTreeMap<String, NodeCondition>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list =
        nodes
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::ListForUpgrade {
                what: "Nodes",
                source,
            })?;
    Ok(list
        .items
        .iter()
        .map(|n| (n.name_any(), condition(n)))
        .collect())
}

fn condition(node: &Node) -> NodeCondition {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    NodeCondition {
        ready,
        unschedulable,
    }
}

/// Every PodDisruptionBudget, with the Nodes its pods run on.
pub async fn budgets(client: &Client) -> Result<Vec<Budget>> {
    let pdbs: Api<PodDisruptionBudget> = Api::all(client.clone());
    let pdbs = pdbs
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::ListForUpgrade {
            what: "PodDisruptionBudgets",
            source,
        })?
        .items;
    if pdbs.is_empty() {
        return Ok(Vec::new());
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let pods = pods
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::ListForUpgrade {
            what: "pods",
            source,
        })?
        .items;
    Ok(pdbs
        .iter()
        .map(|pdb| {
            let namespace = pdb.namespace().unwrap_or_default();
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
            let nodes: BTreeSet<String> = pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
                .filter(|p| selector.is_some_and(|s| selects(s, p.labels())))
                .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                .collect();
            Budget {
                namespace,
                name: pdb.name_any(),
                disruptions_allowed: pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed),
                nodes: nodes.into_iter().collect(),
            }
        })
        .collect())
}

/// Whether a label selector selects `labels`. An empty selector selects everything, as the
/// policy/v1 API defines it for PodDisruptionBudgets.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator this version does not know selects nothing, as the apiserver
            // would refuse such a selector outright.
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Marks the Node schedulable again.
pub async fn uncordon(client: &Client, node: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "spec": { "unschedulable": null } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    nodes
        .patch(node, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| Error::UncordonNode {
            node: node.into(),
            source,
        })
}

/// Sets (`Some`) or removes (`None`) one annotation of a Node.
pub async fn annotate_node(
    client: &Client,
    node: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    nodes
        .patch(node, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| Error::AnnotateNode {
            node: node.into(),
            key: key.into(),
            source,
        })
}

/// One annotation of a Node, `None` when it has none of that key.
pub async fn node_annotation(client: &Client, node: &str, key: &str) -> Result<Option<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.get(node).await.map_err(|source| Error::GetNode {
        node: node.into(),
        source,
    })?;
    Ok(n.annotations().get(key).cloned())
}

/// Waits until the Node reports Ready, looking every `interval`, for at most `timeout`.
pub async fn wait_ready(
    client: &Client,
    node: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    poll_until(timeout, interval, || async {
        match nodes.get(node).await {
            Ok(n) if condition(&n).ready => Attempt::Done(()),
            Ok(_) => Attempt::Retry("its Ready condition is not True".into()),
            Err(e) => Attempt::Retry(crate::error::describe(&e)),
        }
    })
    .await
    .map_err(|seen| Error::NodeNotReady {
        node: node.into(),
        waited: timeout,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let app = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["batch".into()]),
            }]),
        };
        assert!(selects(&app, &labels(&[("app", "web")])));
        assert!(selects(&app, &labels(&[("app", "web"), ("tier", "front")])));
        assert!(!selects(
            &app,
            &labels(&[("app", "web"), ("tier", "batch")])
        ));
        assert!(!selects(&app, &labels(&[("app", "db")])));
        assert!(selects(&LabelSelector::default(), &labels(&[("x", "y")])));
        let exists = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "gpu".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        assert!(selects(&exists, &labels(&[("gpu", "")])));
        assert!(!selects(&exists, &labels(&[])));
    }
}
