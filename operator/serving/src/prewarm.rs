//! `ModelPrewarm` (`serving.kubegrid.io/v1alpha1`): a model cached on chosen nodes before any
//! LLMService uses it, so the first replica starts from a warm cache. The node model cache
//! (`kubegrid model-cache --follow-llmservices`) acts on it: every node whose labels match
//! `nodeSelector` caches the model and reports its copy in the status, as for an LLMService.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{error::FieldError, model::ModelSource, service::NodeCache};

/// A model to cache on chosen nodes ahead of use.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "serving.kubegrid.io",
    version = "v1alpha1",
    kind = "ModelPrewarm",
    plural = "modelprewarms",
    namespaced,
    category = "kubegrid",
    status = "ModelPrewarmStatus",
    derive = "PartialEq",
    doc = "A model cached on chosen GPU nodes before any LLMService uses it.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.uri"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyNodes"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::prewarm_not_pvc())]
pub struct ModelPrewarmSpec {
    /// The model, as an LLMService names it (the same URI shares the same node copy).
    pub model: ModelSource,
    /// The labels a node must carry to cache the model; empty: every node running the cache.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// What the node caches report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrewarmStatus {
    /// The commit the model's revision resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_commit: Option<String>,
    /// Nodes whose copy is ready.
    #[serde(default)]
    pub ready_nodes: i32,
    /// The model's copy on each node that caches it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<NodeCache>,
}

impl ModelPrewarmSpec {
    /// Every problem with the spec, each naming its field (`spec.…`); empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| {
            out.push(FieldError {
                field: format!("spec.{field}"),
                message,
            });
        };
        crate::validate::model(&mut bad, &self.model);
        if self.model.uri.starts_with("pvc://") {
            bad("model.uri", crate::rules::PREWARM_PVC.into());
        }
        for (key, value) in &self.node_selector {
            let field = format!("nodeSelector[{key:?}]");
            if key.is_empty() || key.len() > 317 {
                bad(&field, "a label key is 1 to 317 characters".into());
            }
            let ok = value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && value
                    .bytes()
                    .next()
                    .is_none_or(|b| b.is_ascii_alphanumeric())
                && value
                    .bytes()
                    .last()
                    .is_none_or(|b| b.is_ascii_alphanumeric());
            if !ok {
                bad(
                    &field,
                    format!(
                        "{value:?} must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                    ),
                );
            }
        }
        out
    }

    /// Whether a node with `labels` caches the model.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}
