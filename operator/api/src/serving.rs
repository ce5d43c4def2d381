//! `spec.serving` of a Cluster: the vLLM serving layer kubegrid deploys into the cluster once
//! it is installed (the serving controller, its CRDs and the node model cache), from the
//! kubegrid image the bundle carries.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The namespace the layer goes into when the spec names none.
pub const DEFAULT_SERVING_NAMESPACE: &str = "kubegrid-serving";
/// Longest `cacheCapacity` the schema accepts (a regex reads it: the CEL cost budget).
pub const MAX_CACHE_CAPACITY_LEN: usize = 24;

/// The serving layer: after every install or change, kubegrid applies the serving
/// controller, the `LLMService` and `ModelPrewarm` CRDs and the model-cache DaemonSet on the
/// GPU Nodes, all running the kubegrid image from the bundle (pinned by digest), and reports
/// whether they became ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingSpec {
    /// The namespace of the controller, the cache and their Leases (default
    /// `kubegrid-serving`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = crate::validate::serving::namespace_rule())]
    pub namespace: Option<String>,
    /// The disk each GPU Node's model cache may fill, as a quantity (`500Gi`): models nothing
    /// uses are evicted least recently used first to make room, a model in use never is.
    /// Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 24))]
    #[x_kube(validation = crate::validate::serving::capacity_rule())]
    pub cache_capacity: Option<String>,
    /// Also apply PodMonitors (monitoring.coreos.com/v1) for the cache and the vLLM pods; the
    /// cluster needs the Prometheus Operator's CRDs for them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_monitors: bool,
    /// Also deploy KEDA, from the bundle's rendered chart with its images pinned by digest,
    /// so that LLMServices with `scaling.keda` scale. Leave it off when the cluster runs KEDA
    /// already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keda: bool,
}

impl ServingSpec {
    /// The namespace the layer goes into.
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(DEFAULT_SERVING_NAMESPACE)
    }
}

/// `status.serving`: what the last operation deployed of the serving layer, and what it saw of
/// its health. Written from the operation's `serving-layer` and `serving-ready` checks only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingStatus {
    /// The namespace the layer was applied into.
    pub namespace: String,
    /// The kubegrid image it runs, pinned by digest.
    pub image: String,
    /// Every object was applied.
    pub deployed: bool,
    /// The controller was available and the cache ready on every GPU Node when last checked
    /// (false also when the check did not run).
    pub ready: bool,
    /// The KEDA release applied with the layer (`spec.serving.keda`); unset when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keda: Option<String>,
    /// What the last step reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
