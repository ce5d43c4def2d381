//! The `LLMService` resource: a model served by vLLM, its replicas and how they scale.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use kubegrid_api::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::ModelSource;

/// The RuntimeClass serving pods use unless the spec names another: the NVIDIA runtime that
/// kubegrid's containerd configuration registers.
pub const DEFAULT_RUNTIME_CLASS: &str = "nvidia";

/// The port vLLM's OpenAI-compatible server listens on unless the spec names another.
pub const DEFAULT_PORT: i32 = 8000;

/// How long a stopping replica drains unless the spec says otherwise.
pub const DEFAULT_DRAIN_SECONDS: i32 = 120;

/// The vLLM metric a KEDA trigger reads unless the spec names another: requests waiting in
/// the engine's queue.
pub const DEFAULT_METRIC: &str = "vllm:num_requests_waiting";

/// A model served by vLLM on GPU nodes.
///
/// The scale subresource carries the selector too (`.status.selector`), so `kubectl scale`,
/// a HorizontalPodAutoscaler and KEDA can all drive `spec.replicas`.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) entries repeat keys such as type_ by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "serving.kubegrid.io",
    version = "v1alpha1",
    kind = "LLMService",
    plural = "llmservices",
    namespaced,
    shortname = "llm",
    category = "kubegrid",
    status = "LlmServiceStatus",
    derive = "PartialEq",
    doc = "A model served by vLLM on GPU nodes, with its replicas and how they scale.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.uri"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::replicas_within_scaling())]
pub struct LlmServiceSpec {
    /// The model and where its weights come from.
    pub model: ModelSource,
    /// The vLLM engine that serves it.
    pub engine: EngineSpec,
    /// How many replicas to run (each `engine.gpusPerReplica` GPUs); what the scale
    /// subresource sets.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// How replicas are laid out and scaled automatically; absent, `replicas` is all there is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

fn one() -> i32 {
    1
}

/// The vLLM engine of each replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::gpus_match_parallelism())]
pub struct EngineSpec {
    /// The vLLM image, e.g. `vllm/vllm-openai:v0.11.0`; pin it by digest for repeatable
    /// rollouts.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Extra arguments for `vllm serve` after the model path. The flags kubegrid sets itself
    /// (`--served-model-name`, `--host`, `--port`, `--tensor-parallel-size`,
    /// `--pipeline-parallel-size`) are refused here: the served name is the LLMService's
    /// name, which the KEDA query selects by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// GPUs each layer is split across (`--tensor-parallel-size`).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub tensor_parallel_size: i32,
    /// Stages the layers are split into (`--pipeline-parallel-size`).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub pipeline_parallel_size: i32,
    /// GPUs per replica; must equal tensor × pipeline parallelism, which it defaults to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub gpus_per_replica: Option<i32>,
    /// CPU and memory for the vLLM container; the GPUs come from `gpusPerReplica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The RuntimeClass of serving pods (`nvidia` by default).
    #[serde(default = "default_runtime_class")]
    #[schemars(length(min = 1, max = 253))]
    pub runtime_class_name: String,
    /// The size of the memory-backed `/dev/shm` (NCCL and vLLM's workers use it), a
    /// quantity such as `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub shm_size: Option<String>,
    /// The port vLLM listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The most seconds a stopping replica waits for its running and queued requests to
    /// finish before vLLM gets SIGTERM; the pod's grace period is this plus 30.
    #[serde(default = "default_drain")]
    #[schemars(range(min = 0, max = 3600))]
    pub drain_timeout_seconds: i32,
}

fn default_drain() -> i32 {
    DEFAULT_DRAIN_SECONDS
}

fn default_runtime_class() -> String {
    DEFAULT_RUNTIME_CLASS.into()
}

fn default_port() -> i32 {
    DEFAULT_PORT
}

impl EngineSpec {
    /// GPUs each replica takes.
    pub fn gpus(&self) -> i32 {
        self.gpus_per_replica.unwrap_or(
            self.tensor_parallel_size
                .saturating_mul(self.pipeline_parallel_size),
        )
    }
}

/// Requests and limits of the vLLM container, resource name to quantity (`cpu: "8"`,
/// `memory: 64Gi`). GPUs are not listed here: `gpusPerReplica` sets them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// What the container may use at most.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// How replicas are laid out and scaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::rules::min_not_above_max(),
    validation = crate::rules::idle_below_min(),
    validation = crate::rules::fallback_within_max()
)]
pub struct Scaling {
    /// `pod`: one workload whose pods are the replicas; `service`: one StatefulSet of one pod
    /// and one Service per replica, removed highest index first.
    #[serde(default)]
    pub mode: ScalingMode,
    /// The fewest replicas automatic scaling keeps while there is demand.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,
    /// The most replicas automatic scaling starts.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Scale with KEDA on vLLM's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keda: Option<KedaScaling>,
}

/// How replicas map onto workloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScalingMode {
    /// One Deployment or StatefulSet; its pods are the replicas.
    #[default]
    Pod,
    /// `replicas: N` gives N StatefulSets `<name>-<i>`, each with one pod and a Service.
    Service,
}

/// KEDA scaling on a Prometheus query of vLLM's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KedaScaling {
    /// Where the demand signal comes from.
    pub trigger: Trigger,
    /// The metric value per replica at which another replica is added, as KEDA reads it (a
    /// decimal number).
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = crate::rules::decimal())]
    pub threshold: String,
    /// The replica count while there is no demand at all, below `minReplicas`; `0` scales to
    /// zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub idle_replica_count: Option<i32>,
    /// Replicas to hold while the trigger cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// A KEDA trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// A Prometheus query of the router's or Service's view of vLLM's queue.
    pub prometheus: PrometheusTrigger,
}

/// A Prometheus trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusTrigger {
    /// The Prometheus server, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1, max = 512))]
    pub server_address: String,
    /// The vLLM metric, selected by vLLM's own `model_name` label.
    #[serde(default = "default_metric")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = crate::rules::metric_name())]
    pub metric: String,
}

fn default_metric() -> String {
    DEFAULT_METRIC.into()
}

/// What KEDA holds while its trigger fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fallback {
    /// Failed reads in a row before the fallback applies.
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
    /// Replicas during the fallback.
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
}

/// What the controller last saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmServiceStatus {
    /// Replicas that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas whose vLLM answers `/health`.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The label selector of the serving pods, as the scale subresource reports it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// `Pending` (no replica ready yet), `Serving` (every replica ready), `Degraded` (some
    /// ready), `Idle` (scaled to zero) or `Failed` (the spec is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The commit the model's revision resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_commit: Option<String>,
    /// The OpenAI-compatible endpoint, `http://<service>.<namespace>.svc:<port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model's copy on each node that caches it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<NodeCache>,
    /// Conditions: `Ready`, `Scaling`, and `Autoscaling` when KEDA is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One node's copy of the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCache {
    /// The Kubernetes node.
    pub node: String,
    /// Verified bytes on the node.
    pub bytes: i64,
    /// The model's size.
    pub size: i64,
    /// Bytes per second lately.
    #[serde(default)]
    pub bytes_per_second: i64,
    /// Seconds until done at that rate, while copying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// Every file verified and the ready marker written.
    #[serde(default)]
    pub ready: bool,
}
