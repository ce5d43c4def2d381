//! The controller's one error type.

/// What went wrong in the controller, named by the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, e.g. `renew Lease kubegrid/kubegrid-operator`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The Cluster or its Nodes fail validation; nothing was done.
    #[error("Cluster {cluster}: invalid spec:\n{problems}")]
    InvalidSpec {
        /// `namespace/name`.
        cluster: String,
        /// The problems, one per line.
        problems: String,
    },
    /// A Secret the Cluster references is missing or lacks its key.
    #[error("Cluster {cluster}: {reason}\n  hint: {hint}")]
    ReadSecret {
        /// `namespace/name`.
        cluster: String,
        /// What is wrong with which Secret.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A ConfigMap the Cluster references (its CNI manifest) is missing or lacks its key.
    #[error("Cluster {cluster}: {reason}\n  hint: {hint}")]
    ReadConfigMap {
        /// `namespace/name`.
        cluster: String,
        /// What is wrong with which ConfigMap.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A file the operator writes (an SSH key, a bundle key) could not be written.
    #[error("writing {path}: {source}")]
    WriteFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The offline bundle cannot be used.
    #[error("Cluster {cluster}: bundle: {reason}")]
    Bundle {
        /// `namespace/name`.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// The engine itself failed (journal, compile); host failures are results, not errors.
    #[error("Cluster {cluster}: engine: {reason}")]
    Engine {
        /// `namespace/name`.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] kubegrid_journal::Error),
    /// Resetting the hosts of a deleted Cluster failed; its finalizer stays until it succeeds.
    #[error(
        "Cluster {cluster}: reset failed: {reason}\n  hint: bring the hosts back and the reset is retried; to let the Cluster go without resetting them, set spec.deletionPolicy: Orphan"
    )]
    ResetFailed {
        /// `namespace/name`.
        cluster: String,
        /// Which hosts failed and why.
        reason: String,
    },
    /// Adding or removing the Cluster's finalizer failed.
    #[error("Cluster finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The metrics and health server could not start.
    #[error("serving metrics and health on {addr}: {source}")]
    Serve {
        /// The listen address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed: settings that cannot keep one leader, or a failed release.
    #[error(transparent)]
    Lease(#[from] kubegrid_lease::Error),
    /// The leader election task itself ended abnormally (it panicked or was cancelled).
    #[error("leader election stopped: {reason}")]
    Election {
        /// Why.
        reason: String,
    },
}

impl Error {
    /// A short category for the failures metric and for condition reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube { .. } | Self::Finalizer(_) => "kube-api",
            Self::InvalidSpec { .. } => "spec",
            Self::ReadSecret { .. } => "secret",
            Self::ReadConfigMap { .. } => "configmap",
            Self::WriteFile { .. } | Self::Serve { .. } => "local",
            Self::Bundle { .. } => "bundle",
            Self::Engine { .. } | Self::Journal(_) => "engine",
            Self::ResetFailed { .. } => "hosts",
            Self::Lease(kubegrid_lease::Error::ConfigureLease { .. }) => "config",
            Self::Lease(_) => "kube-api",
            Self::Election { .. } => "local",
        }
    }

    /// Wraps a kube error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
