//! Opening the SQLite backend: a private file in a private directory, in WAL mode.

use std::{
    fs::{DirBuilder, File, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{
    BUSY_TIMEOUT,
    error::{Error, Result},
};

/// Connections per handle: writes are serialised by SQLite anyway, and a few let reads run
/// beside a write under WAL.
const MAX_CONNECTIONS: u32 = 4;

/// Opens the journal file at `path`, creating it and its directory (mode 0700) when missing,
/// and brings its schema up to date.
///
/// SQLite runs in WAL mode so that readers (`kubegrid history`) never block a running
/// `apply`, with `synchronous=NORMAL`: in WAL mode that never corrupts the file and loses
/// nothing when the process is killed, only the last commits on a power cut. FULL would add
/// an fsync to every task event on every host, for a record that the next `apply` re-creates
/// anyway by converging.
pub(crate) async fn open(path: &Path) -> Result<SqlitePool> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| prepare("create directory", &dir, source))?;
    }
    // Opens of journals in one directory take turns: switching a new file to WAL needs an
    // exclusive lock that SQLite's busy timeout does not wait for, and sqlx's SQLite
    // migrator takes no lock, so two first opens could otherwise race each other.
    let guard = lock_dir(&dir).await?;
    create_private(path)?;

    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    sqlx::migrate!("migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
    drop(guard);
    Ok(pool)
}

fn prepare(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Prepare {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Takes an exclusive advisory lock on `dir`, released when the returned file is dropped. The
/// wait happens on a blocking thread so that other tasks (another open in this process among
/// them) keep running.
async fn lock_dir(dir: &Path) -> Result<File> {
    let owned = dir.to_path_buf();
    let locked = tokio::task::spawn_blocking(move || {
        let file = File::open(&owned)?;
        file.lock()?;
        Ok::<_, io::Error>(file)
    })
    .await
    .map_err(io::Error::other)
    .and_then(|locked| locked);
    locked.map_err(|source| prepare("lock directory", dir, source))
}

/// Creates the journal file readable by its owner only, before SQLite creates it with the
/// umask's mode: it holds host keys and command output. SQLite gives its WAL and shared-memory
/// files the mode of the main file. An existing file is left untouched, since opening and
/// closing another descriptor on a file SQLite has open in this process drops its locks.
fn create_private(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(prepare("create file", path, source)),
    }
}
