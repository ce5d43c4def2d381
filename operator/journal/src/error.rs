//! The one error type of the journal crate.

use std::path::PathBuf;

use crate::types::{OperationId, OperationStatus};

/// `Result` with the journal's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the journal. Messages are lowercase fragments that name the journal (its file,
/// or its Postgres URL without the password) or the operation; front ends print the whole
/// cause chain. The `path` fields hold what [`Journal::path`](crate::Journal::path) returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The journal's directory or file could not be created or locked.
    #[error("failed to {op} {} for the journal; hint: check that the directory is writable", path.display())]
    Prepare {
        /// What was being done ("create directory", "create file", "lock directory").
        op: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The journal URL names no backend this kubegrid has.
    #[error(
        "journal URL `{url}` is not supported: {reason}; hint: use postgres://USER@HOST/DATABASE, sqlite:///PATH or a plain file path"
    )]
    UnsupportedUrl {
        /// The URL given, its password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The journal's SQLite file or Postgres database could not be opened (for Postgres also:
    /// the URL could not be parsed, or no connection was made within
    /// [`CONNECT_TIMEOUT`](crate::CONNECT_TIMEOUT)).
    #[error(
        "failed to open journal {}; hint: an SQLite journal needs a writable file path, a Postgres journal a reachable server and an existing database whose user may create tables",
        path.display()
    )]
    Open {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },

    /// The schema migrations could not be applied.
    #[error(
        "failed to apply schema migrations to journal {}; hint: a journal written by a newer kubegrid cannot be opened by an older one",
        path.display()
    )]
    Migrate {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A statement against the journal failed.
    #[error("failed to {op} in journal {}", path.display())]
    Query {
        /// What was being done ("record a task event").
        op: &'static str,
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },

    /// A stored value is not one this version understands.
    #[error(
        "journal {} holds {what} `{value}`, which this kubegrid does not understand; hint: it may have been written by a newer kubegrid",
        path.display()
    )]
    Corrupt {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// What the value is ("an operation status").
        what: &'static str,
        /// The value seen.
        value: String,
    },

    /// The identity of this process could not be read, so an operation could not be given an
    /// owner that later runs can check.
    #[error("failed to read this process's identity from {path}: {reason}")]
    ProcessIdentity {
        /// The file read (`/proc/self/stat`, the boot id).
        path: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// An operation id that the journal does not hold.
    #[error("journal {} has no operation {id}; hint: `kubegrid history` lists them", path.display())]
    UnknownOperation {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The id asked for.
        id: OperationId,
    },

    /// `finish` was called on an operation that is no longer running.
    #[error(
        "operation {id} in journal {} is already {status}, so it cannot be finished again",
        path.display()
    )]
    AlreadyFinished {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The operation.
        id: OperationId,
        /// Its recorded status.
        status: OperationStatus,
    },

    /// A host already has a different pinned key; pins are never replaced silently.
    #[error(
        "host {} of cluster {} has the pinned key {} {}, but offered {} {}; hint: if the host was deliberately re-keyed, replace the pin with: kubegrid host-key accept {} --cluster {} --fingerprint {}",
        .0.host, .0.cluster, .0.pinned_algorithm, .0.pinned_fingerprint, .0.offered_algorithm, .0.offered_fingerprint,
        .0.host, .0.cluster, .0.offered_fingerprint
    )]
    KeyAlreadyPinned(Box<KeyConflict>),

    /// A pin was to be replaced, but the host has none.
    #[error(
        "host {host} of cluster {cluster} has no pinned key in journal {}; hint: nothing to replace, the key is pinned on first contact",
        path.display()
    )]
    KeyNotPinned {
        /// The journal file, or the Postgres URL without its password.
        path: PathBuf,
        /// The cluster.
        cluster: String,
        /// The host.
        host: String,
    },
}

/// The two keys of a refused pin, boxed in [`Error::KeyAlreadyPinned`] to keep `Error` small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConflict {
    /// The cluster.
    pub cluster: String,
    /// The host.
    pub host: String,
    /// Algorithm of the pinned key.
    pub pinned_algorithm: String,
    /// Fingerprint of the pinned key.
    pub pinned_fingerprint: String,
    /// Algorithm of the offered key.
    pub offered_algorithm: String,
    /// Fingerprint of the offered key.
    pub offered_fingerprint: String,
}
