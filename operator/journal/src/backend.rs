//! Where a journal lives (an SQLite file or a PostgreSQL database) and what lets one text of
//! query code serve both.
//!
//! sqlx's `Any` driver was the other way to get one text of queries, but in sqlx 0.8 it opens
//! SQLite from a URL only (so WAL mode, `synchronous` and the busy timeout would move to an
//! after-connect hook), reports no SQLite rowids, and decodes an SQLite 0/1 column only as an
//! integer, never as a bool. A pool per backend keeps SQLite's connection settings exactly as
//! they were; [`dispatch!`] compiles each query once per backend from the same source.

use std::{fmt, path::PathBuf};

use sqlx::{Row, postgres::PgRow, sqlite::SqliteRow};

use crate::{
    Journal,
    error::{Error, Result},
};

/// Which database a [`Journal`](crate::Journal) keeps its records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file: the default, for the CLI and for an operator with one replica (on a
    /// PersistentVolumeClaim).
    Sqlite,
    /// A PostgreSQL database, which several operator replicas can share.
    Postgres,
}

impl Backend {
    /// The name in messages ("sqlite", "postgres").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection pool of either backend. Cloning shares the pool.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Evaluates `$body` with `$pool` bound to the typed pool of whichever backend `$target`
/// holds. The body is compiled once per backend, so a query written once runs on both; it
/// must evaluate to the same type in both expansions (convert rows inside it).
macro_rules! dispatch {
    ($target:expr, |$pool:ident| $body:expr) => {
        match $target {
            $crate::backend::Pool::Sqlite($pool) => $body,
            $crate::backend::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

/// The column reads the journal needs, for the row type of either backend. Integers are
/// `i64` on both (SQLite's INTEGER, Postgres's BIGINT); flags are `bool` (SQLite's 0/1,
/// Postgres's BOOLEAN).
pub(crate) trait JournalRow {
    fn int(&self, name: &str) -> sqlx::Result<i64>;
    fn opt_int(&self, name: &str) -> sqlx::Result<Option<i64>>;
    fn text(&self, name: &str) -> sqlx::Result<String>;
    fn opt_text(&self, name: &str) -> sqlx::Result<Option<String>>;
    fn flag(&self, name: &str) -> sqlx::Result<bool>;
}

macro_rules! journal_row {
    ($row:ty) => {
        impl JournalRow for $row {
            fn int(&self, name: &str) -> sqlx::Result<i64> {
                self.try_get(name)
            }
            fn opt_int(&self, name: &str) -> sqlx::Result<Option<i64>> {
                self.try_get(name)
            }
            fn text(&self, name: &str) -> sqlx::Result<String> {
                self.try_get(name)
            }
            fn opt_text(&self, name: &str) -> sqlx::Result<Option<String>> {
                self.try_get(name)
            }
            fn flag(&self, name: &str) -> sqlx::Result<bool> {
                self.try_get(name)
            }
        }
    };
}
journal_row!(SqliteRow);
journal_row!(PgRow);

/// Reads the columns of one row, naming the journal and `op` in any failure.
pub(crate) struct Columns<'a, R> {
    journal: &'a Journal,
    row: &'a R,
    op: &'static str,
}

impl<R: JournalRow> Columns<'_, R> {
    pub(crate) fn int(&self, name: &str) -> Result<i64> {
        self.row.int(name).map_err(self.journal.query_err(self.op))
    }

    pub(crate) fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.row
            .opt_int(name)
            .map_err(self.journal.query_err(self.op))
    }

    pub(crate) fn text(&self, name: &str) -> Result<String> {
        self.row.text(name).map_err(self.journal.query_err(self.op))
    }

    pub(crate) fn opt_text(&self, name: &str) -> Result<Option<String>> {
        self.row
            .opt_text(name)
            .map_err(self.journal.query_err(self.op))
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool> {
        self.row.flag(name).map_err(self.journal.query_err(self.op))
    }
}

impl Journal {
    /// The columns of `row`, read for `op`.
    pub(crate) fn columns<'a, R: JournalRow>(
        &'a self,
        row: &'a R,
        op: &'static str,
    ) -> Columns<'a, R> {
        Columns {
            journal: self,
            row,
            op,
        }
    }
}

/// What a journal URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as given.
    Postgres(String),
}

impl Target {
    /// Reads `postgres://…` or `postgresql://…` (Postgres), `sqlite://PATH` or `sqlite:PATH`
    /// (SQLite, the path taken literally: `sqlite:///var/lib/j.db` is absolute,
    /// `sqlite://j.db` relative) or a plain path (SQLite). Schemes are case-insensitive.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let unsupported = |reason: &'static str| Error::UnsupportedUrl {
            url: hide_password(url),
            reason,
        };
        let Some(scheme) = scheme(url) else {
            if url.is_empty() {
                return Err(unsupported("it is empty"));
            }
            return Ok(Target::Sqlite(PathBuf::from(url)));
        };
        let rest = &url[scheme.len() + 1..];
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Target::Postgres(url.to_owned())),
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    Err(unsupported("it names no file"))
                } else if path.starts_with(":memory:") || path.contains("mode=memory") {
                    Err(unsupported(
                        "an in-memory database would lose the journal when the process exits",
                    ))
                } else {
                    Ok(Target::Sqlite(PathBuf::from(path)))
                }
            }
            _ => Err(unsupported(
                "its scheme is neither postgres://, postgresql:// nor sqlite://",
            )),
        }
    }
}

/// The scheme of `url` when it has one (`scheme:` followed by `//`, or the `sqlite:` short
/// form); `None` for a plain path, which may itself contain a colon.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && (rest.starts_with("//") || scheme.eq_ignore_ascii_case("sqlite"))).then_some(scheme)
}

/// `url` with its password (in the user info or a `password=` parameter) replaced by `***`,
/// so that it can appear in messages and logs.
pub(crate) fn hide_password(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(start) = url.find("://").map(|at| at + 3) {
        let authority_end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |end| start + end);
        // The user info ends at the last '@' of the authority; a password may hold '@' too.
        if let Some(at) = url[start..authority_end].rfind('@').map(|at| start + at)
            && let Some(colon) = url[start..at].find(':').map(|colon| start + colon)
        {
            shown = format!("{}***{}", &url[..=colon], &url[at..]);
        }
    }
    if let Some(query_at) = shown.find('?') {
        let (head, query) = shown.split_at(query_at + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{head}{}", query.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        let cases = [
            (
                "postgres://k@db/journal",
                Target::Postgres("postgres://k@db/journal".into()),
            ),
            (
                "PostgreSQL://db/j",
                Target::Postgres("PostgreSQL://db/j".into()),
            ),
            (
                "sqlite:///var/lib/kubegrid/j.db",
                Target::Sqlite("/var/lib/kubegrid/j.db".into()),
            ),
            ("sqlite://j.db", Target::Sqlite("j.db".into())),
            ("sqlite:state/j.db", Target::Sqlite("state/j.db".into())),
            (
                "/var/lib/kubegrid/journal.db",
                Target::Sqlite("/var/lib/kubegrid/journal.db".into()),
            ),
            ("state/j:1.db", Target::Sqlite("state/j:1.db".into())),
            ("c:odd", Target::Sqlite("c:odd".into())),
        ];
        for (url, want) in cases {
            assert_eq!(Target::parse(url).expect(url), want, "{url}");
        }
    }

    #[test]
    fn unsupported_urls_are_refused_without_their_password() {
        for url in [
            "",
            "sqlite://",
            "sqlite::memory:",
            "mysql://root:hunter22@db/j",
        ] {
            let err = Target::parse(url).expect_err(url);
            assert!(matches!(err, Error::UnsupportedUrl { .. }), "{url}: {err}");
            assert!(!err.to_string().contains("hunter22"), "{err}");
            assert!(err.to_string().contains("hint:"), "{err}");
        }
    }

    #[test]
    fn passwords_are_hidden() {
        let cases = [
            (
                "postgres://k:s3cr@t@db:5432/j",
                "postgres://k:***@db:5432/j",
            ),
            (
                "postgres://k@db/j?password=s3cret&sslmode=require",
                "postgres://k@db/j?password=***&sslmode=require",
            ),
            ("postgres://k@db/j", "postgres://k@db/j"),
            ("postgres:///j?host=/run/pg", "postgres:///j?host=/run/pg"),
        ];
        for (url, want) in cases {
            assert_eq!(hide_password(url), want);
        }
    }
}
