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
