//! Journal tests. Every test of the journal's behaviour runs twice: against a real SQLite file
//! in a temporary directory and against a real PostgreSQL server (a throwaway one, started
//! once per test process by [`pg`]; each test gets its own database). One test binary, a
//! module per area, so the crate links once.
//!
//! The Postgres half needs the server binaries (Debian's `postgresql` package, which
//! `.ci/setup` installs); without them those tests fail and say so.

mod cluster;
mod concurrency;
mod connect;
mod keys;
mod ops;
mod pg;
mod recover;
mod redaction;
mod schema;
mod state;

use std::{
    ops::Deref,
    path::{Path, PathBuf},
};

use kubegrid_journal::{Journal, NewOperation, OperationKind, Redactor, TaskRecord, TaskState};
use sqlx::{Connection, PgConnection, SqliteConnection, sqlite::SqliteConnectOptions};
use tempfile::TempDir;

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// Declares, for each `async fn NAME(kind: Kind)` named, a module `NAME` with two tests,
/// `NAME::sqlite` and `NAME::postgres` (`cargo nextest run -E 'test(/postgres$/)'` picks one
/// backend). A leading `multi_thread:` gives them a two-worker runtime.
macro_rules! on_both_backends {
    (multi_thread: $($name:ident),+ $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Kind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Kind::Postgres).await
            }
        })+
    };
    ($($name:ident),+ $(,)?) => {
        $(mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Kind::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Kind::Postgres).await
            }
        })+
    };
}
use on_both_backends;

/// A fresh journal of one backend, with what it takes to open it again and to look under it.
struct TestJournal {
    journal: Journal,
    kind: Kind,
    /// What [`Journal::connect`] takes to open this journal again.
    url: String,
    /// The SQLite file's directory, removed on drop; Postgres databases go with the server.
    _dir: Option<TempDir>,
}

impl Deref for TestJournal {
    type Target = Journal;

    fn deref(&self) -> &Journal {
        &self.journal
    }
}

/// A journal with only the built-in redaction patterns. For SQLite it sits in a directory
/// that does not exist yet, so opening also creates it.
async fn fresh(kind: Kind) -> TestJournal {
    fresh_with(kind, Redactor::default()).await
}

async fn fresh_with(kind: Kind, redactor: Redactor) -> TestJournal {
    let (url, dir) = new_location(kind).await;
    let journal = Journal::connect_with(&url, redactor)
        .await
        .unwrap_or_else(|err| panic!("open a fresh {kind:?} journal {url}: {err:?}"));
    TestJournal {
        journal,
        kind,
        url,
        _dir: dir,
    }
}

/// Where a new, not yet opened journal can live: an SQLite path in a new temporary directory,
/// or a new, empty Postgres database.
async fn new_location(kind: Kind) -> (String, Option<TempDir>) {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = journal_path(dir.path());
            (format!("sqlite://{}", path.display()), Some(dir))
        }
        Kind::Postgres => (pg::server().database().await, None),
    }
}

impl TestJournal {
    /// A second, independent handle on the same journal, as another process (or operator
    /// replica) would open it.
    async fn reopen(&self) -> Journal {
        Journal::connect(&self.url).await.expect("re-open journal")
    }

    /// Runs `sql` on a separate raw connection, for setting up states the API cannot reach
    /// (a dead owner). Values are written into the statement, which both backends accept.
    async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = raw_sqlite(&self.journal).await;
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
            Kind::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("raw connection");
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
        }
    }

    /// The one text column `sql` selects, from every row, read on a raw connection.
    async fn texts(&self, sql: &str) -> Vec<String> {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = raw_sqlite(&self.journal).await;
                sqlx::query_scalar(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect(sql)
            }
            Kind::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("raw connection");
                sqlx::query_scalar(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect(sql)
            }
        }
    }

    /// How many schema migrations the journal records as applied.
    async fn migrations_applied(&self) -> i64 {
        const SQL: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        match self.kind {
            Kind::Sqlite => {
                let mut conn = raw_sqlite(&self.journal).await;
                sqlx::query_scalar(SQL)
                    .fetch_one(&mut conn)
                    .await
                    .expect(SQL)
            }
            Kind::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("raw connection");
                sqlx::query_scalar(SQL)
                    .fetch_one(&mut conn)
                    .await
                    .expect(SQL)
            }
        }
    }
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

/// A separate raw connection to an SQLite journal's file, for looking under the API
/// (pragmas, the migrations table).
async fn raw_sqlite(journal: &Journal) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(journal.path()))
        .await
        .expect("raw connection")
}
