//! The crate's errors.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("build the HTTP client: {0}")]
    HttpClient(String),
    /// The hub did not resolve a revision.
    #[error("resolve {repo}@{revision} at {url}: {problem}\n  hint: {hint}")]
    Resolve {
        /// `org/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The metadata URL.
        url: String,
        /// What happened.
        problem: String,
        /// What to check.
        hint: &'static str,
    },
    /// The hub's metadata and the spec's file list disagree, or the metadata is unusable.
    #[error("model {repo}@{commit}: file {path:?}: {problem}")]
    Metadata {
        /// `org/name`.
        repo: String,
        /// The resolved commit.
        commit: String,
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A download failed after its retries.
    #[error("download {url} after {attempts} attempts: {problem}")]
    Download {
        /// The file's URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        problem: String,
    },
    /// A downloaded file does not hash to what the metadata or the spec says; it was
    /// deleted, not kept.
    #[error(
        "{url}: {algorithm} is {seen}, expected {expected}; the file was discarded\n  hint: the source serves different bytes than its metadata (or spec.model.files) names; nothing was marked ready"
    )]
    Checksum {
        /// The file's URL.
        url: String,
        /// `sha256` or `git-sha1`.
        algorithm: &'static str,
        /// What the bytes hash to.
        seen: String,
        /// What was expected.
        expected: String,
    },
    /// The model would exceed its `sizeLimit`.
    #[error("model {repo}@{commit} is {size} bytes, above its sizeLimit of {limit} bytes")]
    TooLarge {
        /// `org/name`.
        repo: String,
        /// The resolved commit.
        commit: String,
        /// Its total size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A server of the daemon could not start.
    #[error("start the {what} server: {problem}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// Why.
        problem: String,
    },
    /// The model's task stopped before the model was ready.
    #[error("the cache task of {model} stopped before the model was ready")]
    Stopped {
        /// The model's URI.
        model: String,
    },
    /// A fan-out transfer failed.
    #[error("fan-out: {0}")]
    Fanout(String),
    /// The model source cannot be cached.
    #[error("model {uri}: {problem}")]
    Source {
        /// The URI.
        uri: String,
        /// Why.
        problem: String,
    },
    /// The coordinator's answer was unusable.
    #[error("coordinator at {addr}: {problem}")]
    Coordinator {
        /// Its control address.
        addr: String,
        /// What was wrong.
        problem: String,
    },
    /// A Kubernetes API request failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
    /// A model does not fit in the cache beside the models in use.
    #[error(
        "model {key} ({size} bytes) does not fit in the cache's capacity of {capacity} bytes beside {in_use} bytes of models in use\n  hint: raise --capacity, or delete the LLMServices whose models this node need not keep"
    )]
    NoRoom {
        /// The model's key.
        key: String,
        /// Its size.
        size: u64,
        /// The cache's capacity.
        capacity: u64,
        /// Bytes held by models that may not be evicted.
        in_use: u64,
    },
    /// The watch of LLMServices ended for good.
    #[error("watch LLMServices: {0}")]
    WatchServices(String),
    /// A status write lost the race to other writers every time it was tried.
    #[error(
        "write the status of {service}: another writer changed it first, {attempts} times in a row\n  hint: the next report tries again"
    )]
    Contended {
        /// `Kind namespace/name`.
        service: String,
        /// Attempts made.
        attempts: usize,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { op, path, source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
