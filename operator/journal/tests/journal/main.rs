//! Journal tests against real SQLite files in temporary directories. One test binary, a
//! module per area, so the crate links once.

mod concurrency;
mod keys;
mod ops;
mod recover;
mod redaction;
mod schema;

use std::path::{Path, PathBuf};

use kubegrid_journal::{Journal, NewOperation, OperationKind, TaskRecord, TaskState};
use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use tempfile::TempDir;

/// A journal in a directory that does not exist yet, so opening also creates it.
async fn fresh() -> (TempDir, Journal) {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Journal::open(&journal_path(dir.path()))
        .await
        .expect("open fresh journal");
    (dir, journal)
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join("state").join("kubegrid").join("journal.db")
}

fn apply(hosts: &[&str]) -> NewOperation {
    NewOperation {
        kind: OperationKind::Apply,
        cluster: "lab".into(),
        spec_digest: "sha256:0123".into(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
    }
}

fn task(host: &str, phase: &str, name: &str, status: TaskState) -> TaskRecord {
    TaskRecord {
        host: host.into(),
        phase: phase.into(),
        task: name.into(),
        status,
        duration_ms: 12,
        message: format!("{name} on {host}"),
        output: String::new(),
    }
}

/// A separate raw connection to the same file, for looking under the API (pragmas, the
/// migrations table) and for setting up states the API cannot reach (a dead owner).
async fn raw(journal: &Journal) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(journal.path()))
        .await
        .expect("raw connection")
}
