//! The CEL rules (`x-kubernetes-validations`) the LLMService CRD carries, so the API server
//! refuses a bad spec at `kubectl apply`, naming the field.
//!
//! Each mirrors a check in [`crate::LlmServiceSpec::validate`], which is stricter where CEL
//! would be costly (the model URI's full grammar is [`crate::ModelUri::parse`]). Strings
//! that a regex reads have a `maxLength`, which keeps each rule within the API server's cost
//! budget. Patterns use `[.]` for a literal dot, so no backslash has to survive YAML, CEL
//! string literals and regex syntax alike.

use kube::core::{Message, Rule};

/// A rule with a fixed message, reported at `field` (relative to where the rule sits).
fn rule(text: &str, message: &str, field: Option<&str>) -> Rule {
    let r = Rule::new(text).message(Message::Message(message.into()));
    match field {
        Some(f) => r.field_path(f),
        None => r,
    }
}

/// The regex [`model_uri`] applies: the schemes and the shape of what follows each.
pub(crate) const MODEL_URI_REGEX: &str = "^(hf://[A-Za-z0-9_][A-Za-z0-9._-]*/[A-Za-z0-9_][A-Za-z0-9._-]*(@[^@ ]+)?|s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?|https://[^/@ ]+(/.*)?|pvc://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(/.*)?)$";

/// `spec.model.uri`: one of the accepted schemes and shapes.
pub(crate) fn model_uri() -> Rule {
    rule(
        &format!("self.matches('{MODEL_URI_REGEX}')"),
        "must be hf://ORG/NAME[@REVISION], s3://BUCKET[/PREFIX], https://HOST/PATH or pvc://CLAIM[/PATH]",
        None,
    )
}

/// `spec.model`: a file list with hashes unless the source's metadata has them (`hf://`).
pub(crate) fn files_unless_hf() -> Rule {
    rule(
        "!['s3://', 'https://', 'pvc://'].exists(p, self.uri.startsWith(p)) || (has(self.files) && size(self.files) > 0)",
        "is required for s3://, https:// and pvc:// sources: only Hugging Face metadata lists each file's sha256",
        Some(".files"),
    )
}

/// A ModelPrewarm's `spec`: not a `pvc://` model, which each pod mounts from its claim and
/// no node caches.
pub(crate) fn prewarm_not_pvc() -> Rule {
    rule(
        "!self.model.uri.startsWith('pvc://')",
        PREWARM_PVC,
        Some(".model.uri"),
    )
}

/// What [`prewarm_not_pvc`] and the code say.
pub(crate) const PREWARM_PVC: &str = "a pvc:// model is mounted from its claim by each serving pod; nodes never cache it, so there is nothing to prewarm";

/// `spec.model.files[].path`: relative, without empty, `.` or `..` segments.
pub(crate) fn relative_path() -> Rule {
    rule(
        "self.matches('^[^/]+(/[^/]+)*$') && !self.matches('(^|/)[.][.]?(/|$)')",
        "must be a relative path without empty, '.' or '..' segments",
        None,
    )
}

/// `spec`: no more replicas than automatic scaling may run.
pub(crate) fn replicas_within_scaling() -> Rule {
    rule(
        "!has(self.scaling) || self.replicas <= self.scaling.maxReplicas",
        "must not exceed spec.scaling.maxReplicas",
        Some(".replicas"),
    )
}

/// `spec.engine`: a replica's GPUs are its tensor × pipeline parallelism.
pub(crate) fn gpus_match_parallelism() -> Rule {
    rule(
        "!has(self.gpusPerReplica) || self.gpusPerReplica == self.tensorParallelSize * self.pipelineParallelSize",
        "must equal tensorParallelSize × pipelineParallelSize (vLLM runs one worker per GPU)",
        Some(".gpusPerReplica"),
    )
}

/// `spec.scaling`: the floor is not above the ceiling.
pub(crate) fn min_not_above_max() -> Rule {
    rule(
        "self.minReplicas <= self.maxReplicas",
        "must not exceed maxReplicas",
        Some(".minReplicas"),
    )
}

/// `spec.scaling`: KEDA's idle count sits below `minReplicas`, as KEDA requires.
pub(crate) fn idle_below_min() -> Rule {
    rule(
        "!has(self.keda) || !has(self.keda.idleReplicaCount) || self.keda.idleReplicaCount < self.minReplicas",
        "must be less than minReplicas (KEDA refuses a ScaledObject otherwise)",
        Some(".keda.idleReplicaCount"),
    )
}

/// `spec.scaling`: the fallback stays within the ceiling.
pub(crate) fn fallback_within_max() -> Rule {
    rule(
        "!has(self.keda) || !has(self.keda.fallback) || self.keda.fallback.replicas <= self.maxReplicas",
        "must not exceed maxReplicas",
        Some(".keda.fallback.replicas"),
    )
}

/// `spec.scaling.keda.threshold`: a decimal number, as KEDA parses it.
pub(crate) fn decimal() -> Rule {
    rule(
        "self.matches('^[0-9]+([.][0-9]+)?$')",
        "must be a decimal number such as 5 or 0.5",
        None,
    )
}

/// `spec.scaling.keda.trigger.prometheus.metric`: a Prometheus metric name.
pub(crate) fn metric_name() -> Rule {
    rule(
        "self.matches('^[a-zA-Z_:][a-zA-Z0-9_:]*$')",
        "must be a Prometheus metric name such as vllm:num_requests_waiting",
        None,
    )
}
