//! kubegrid's journal: operations, per-host task events, pinned SSH host keys and cluster
//! state, kept in an embedded SQLite file (the default) or in a PostgreSQL database that
//! several operator replicas share, through sqlx.
//!
//! [`Journal::connect`] picks the backend from a URL (`postgres://…`, `sqlite://PATH` or a
//! plain path); [`Journal::open`] opens an SQLite file. Both backends run the same queries
//! against tables of the same shape (`migrations/sqlite` and `migrations/postgres`).
//!
//! Every write is its own short transaction, so a killed `apply` leaves everything it recorded
//! before it died, and [`Journal::recover_interrupted`] later marks the operation it owned as
//! interrupted. An operator replica that has just become leader uses
//! [`Journal::interrupt_running`] instead, since process ids mean nothing across replicas.
//! Text that came from hosts passes through a [`Redactor`] before it is stored.
//!
//! # Choosing a backend
//!
//! | | SQLite (`/var/lib/kubegrid/journal.db`) | Postgres (`postgres://kubegrid@db/kubegrid`) |
//! |---|---|---|
//! | for | the CLI; an operator with one replica on a PVC | operator replicas sharing one database (HA) |
//! | concurrency | one writer at a time (WAL, 5 s busy timeout) | concurrent writers, 5 s `lock_timeout` |
//! | secrets at rest | file mode 0600 in a 0700 directory | whoever the database role and server let in |
//! | recovery of a dead owner | [`Journal::recover_interrupted`] (pid, start time, boot id) | the same for owners on this machine; [`Journal::interrupt_running`] after winning the leader Lease |
//!
//! The journal holds host keys, cluster CA keys and the admin kubeconfig, so a Postgres
//! database for it should be reachable by the operator's role only, over TLS
//! (`sslmode=verify-full`).

mod backend;
mod error;
mod history;
mod installed;
mod keys;
mod kv;
mod ops;
mod owner;
mod postgres;
mod redact;
mod sqlite;
mod state;
mod time;
mod types;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use backend::Backend;
use backend::{Pool, Target, hide_password};
pub use error::{Error, KeyConflict, Result};
pub use postgres::CONNECT_TIMEOUT;
pub use redact::{MIN_SECRET_LEN, REDACTED, Redactor};
pub use state::StoredCert;
pub use time::{format_duration, format_time};
pub use types::{
    EventRow, FinalStatus, HostOutcome, HostResult, NewOperation, OperationId, OperationKind,
    OperationStatus, OperationSummary, PinnedKey, TaskRecord, TaskState,
};

/// The most bytes of a task's output that are kept: the last ones, where failures show.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// How long a statement waits for another writer (another `kubegrid` on the same journal, or
/// another operator replica on the same Postgres database) before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open journal. Cloning is cheap and shares the connection pool, so the engine can hand a
/// clone to each host's task.
#[derive(Debug, Clone)]
pub struct Journal {
    pool: Pool,
    /// The SQLite file, or the Postgres URL without its password.
    path: PathBuf,
    redactor: Arc<Redactor>,
}

impl Journal {
    /// Opens the SQLite journal at `path` with only the built-in redaction patterns; see
    /// [`Journal::open_with`].
    pub async fn open(path: &Path) -> Result<Journal> {
        Self::open_with(path, Redactor::default()).await
    }

    /// Opens the SQLite journal at `path`, creating it and its directory (mode 0700) when
    /// missing, and brings its schema up to date.
    ///
    /// SQLite runs in WAL mode so that readers (`kubegrid history`) never block a running
    /// `apply`, with `synchronous=NORMAL`: in WAL mode that never corrupts the file and loses
    /// nothing when the process is killed, only the last commits on a power cut. FULL would add
    /// an fsync to every task event on every host, for a record that the next `apply`
    /// re-creates anyway by converging. The file is created with mode 0600: it holds host keys,
    /// certificate keys and command output.
    pub async fn open_with(path: &Path, redactor: Redactor) -> Result<Journal> {
        let pool = sqlite::open(path).await?;
        Ok(Journal {
            pool: Pool::Sqlite(pool),
            path: path.to_path_buf(),
            redactor: Arc::new(redactor),
        })
    }

    /// Opens the journal `url` names, with only the built-in redaction patterns; see
    /// [`Journal::connect_with`].
    pub async fn connect(url: &str) -> Result<Journal> {
        Self::connect_with(url, Redactor::default()).await
    }

    /// Opens the journal `url` names and brings its schema up to date:
    ///
    /// - `postgres://…` or `postgresql://…`: a PostgreSQL database, in libpq's URL syntax as
    ///   sqlx reads it (`postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full`,
    ///   or `?host=/run/postgresql` for a unix socket). The database must exist; the tables are
    ///   created on first connect. Several operator replicas may share it. TLS uses rustls
    ///   with the system's root certificates, or `sslrootcert=PATH`. Connecting retries a
    ///   server that refuses connections for up to [`CONNECT_TIMEOUT`].
    /// - `sqlite://PATH`, `sqlite:PATH` or a plain path: the SQLite file at `PATH`, exactly
    ///   as [`Journal::open_with`] opens it (`sqlite:///var/lib/kubegrid/journal.db` is
    ///   absolute, `sqlite://journal.db` relative). The path is taken literally: no
    ///   percent-decoding and no query parameters, since the SQLite settings are fixed.
    ///
    /// Any other scheme, an empty URL or an in-memory SQLite database is
    /// [`Error::UnsupportedUrl`]. Errors and [`Journal::path`] show a Postgres URL with its
    /// password replaced by `***`.
    pub async fn connect_with(url: &str, redactor: Redactor) -> Result<Journal> {
        match Target::parse(url)? {
            Target::Sqlite(path) => Self::open_with(&path, redactor).await,
            Target::Postgres(url) => {
                let location = PathBuf::from(hide_password(&url));
                let pool = postgres::connect(&url, &location).await?;
                Ok(Journal {
                    pool: Pool::Postgres(pool),
                    path: location,
                    redactor: Arc::new(redactor),
                })
            }
        }
    }

    /// Which database holds this journal.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The journal file; for a Postgres journal, its URL with the password replaced by
    /// `***`, so that messages which show "the journal" name it either way.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the redactor applied to everything stored from now on.
    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = Arc::new(redactor);
    }

    /// The redactor in use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Closes the connections; for SQLite that folds the WAL back into the main file.
    /// Dropping the journal is also safe; this just does it now rather than in the background.
    pub async fn close(self) {
        match self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Wraps a failed statement with what was being done and the journal's location.
    pub(crate) fn query_err(&self, op: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |source| Error::Query {
            op,
            path: self.path.clone(),
            source,
        }
    }
}
