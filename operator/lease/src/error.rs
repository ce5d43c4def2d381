//! The crate's errors.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The election settings cannot keep one leader at a time.
    #[error("leader Lease {lease}: invalid settings: {problem}\n  hint: {hint}")]
    ConfigureLease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What is wrong, with the values given.
        problem: String,
        /// How to fix it.
        hint: String,
    },
    /// Releasing the Lease on shutdown failed; another candidate takes over once the lease
    /// expires instead.
    #[error(
        "release leader Lease {lease}: {reason}\n  hint: another replica takes over when the lease expires"
    )]
    ReleaseLease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What happened.
        reason: String,
    },
    /// The election task itself ended abnormally (it panicked or was cancelled).
    #[error("leader election stopped: {reason}")]
    Election {
        /// Why.
        reason: String,
    },
    /// A request to the API failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Wraps a kube error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
