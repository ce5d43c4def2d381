//! Connecting to the PostgreSQL backend, which several operator replicas can share.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{
    BUSY_TIMEOUT,
    error::{Error, Result},
};

/// Connections per handle. The engine records events from every host's task at once; unlike
/// SQLite, Postgres runs those writes side by side, and a server's default limit of 100
/// connections leaves room for a few replicas.
const MAX_CONNECTIONS: u32 = 8;

/// How long connecting to a Postgres journal, and later waiting for a free connection, may
/// take before it fails. sqlx retries a server that refuses connections (one still starting)
/// until then.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the database `url` names and brings its schema up to date. `location` (the
/// URL without its password) is what errors name.
///
/// Each session gets `lock_timeout` = [`BUSY_TIMEOUT`], the counterpart of SQLite's busy
/// timeout: a statement that waits longer than that for another writer's lock fails instead of
/// hanging behind a stuck replica. Concurrent first connects are safe: sqlx's Postgres
/// migrator holds an advisory lock while it migrates.
pub(crate) async fn connect(url: &str, location: &Path) -> Result<PgPool> {
    let open_err = |source| Error::Open {
        path: location.to_path_buf(),
        source,
    };
    let lock_timeout = format!("{}ms", BUSY_TIMEOUT.as_millis());
    let options = PgConnectOptions::from_str(url)
        .map_err(open_err)?
        .options([("lock_timeout", lock_timeout.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(open_err)?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate {
            path: location.to_path_buf(),
            source,
        })?;
    Ok(pool)
}
