//! The crate's errors.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model URI did not parse.
    #[error("model uri {uri:?}: {reason}; hint: {hint}")]
    ParseModelUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
        /// The accepted forms.
        hint: &'static str,
    },
    /// The CRD could not be rendered as YAML.
    #[error("render the LLMService CRD: {0}")]
    RenderCrd(#[source] serde_yaml::Error),
    /// A server-side apply of an object the controller owns failed.
    #[error("apply {kind} {name}: {source}")]
    ApplyObject {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Deleting an object the controller owns failed.
    #[error("delete {kind} {name}: {source}")]
    DeleteObject {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Reading the controller's workloads failed.
    #[error("read {kind}s: {source}")]
    ReadObjects {
        /// Their kind.
        kind: &'static str,
        /// The API's answer.
        source: kube::Error,
    },
    /// Writing an LLMService's status failed.
    #[error("patch status of LLMService {name}: {source}")]
    PatchStatus {
        /// The LLMService.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Adding or removing the controller's finalizer failed (a 409 means the object changed
    /// since it was read; the next pass tries again).
    #[error("set finalizers of LLMService {name}: {source}")]
    SetFinalizer {
        /// The LLMService.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One refused field of an LLMService spec: its path, as the API server names it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.scaling.minReplicas`.
    pub field: String,
    /// What is wrong, with what was expected.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
