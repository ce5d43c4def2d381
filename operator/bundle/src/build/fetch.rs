//! Downloads: resumable with HTTP Range into `<file>.partial`, retried with backoff on
//! transient errors, tried mirror by mirror, verified by sha256 before the file takes its
//! final name. A re-run finds finished files in place and continues partial ones.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use indicatif::ProgressBar;
use reqwest::{StatusCode, header};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::mirror::candidates;
use crate::{Error, Result};

/// What a download must hash to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// This lower-case hex sha256.
    Sha256(&'a str),
    /// Anything (indexes and checksum files, which are read and checked by what uses them);
    /// such files are fetched afresh on every run.
    Unverified,
}

/// Shared download machinery for one build.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    mirrors: Vec<String>,
    retries: u32,
    backoff: Duration,
    permits: Semaphore,
    /// Counts bytes across all downloads (hidden when there is no terminal).
    pub(crate) bar: ProgressBar,
}

/// Why one attempt failed, and whether another attempt at the same URL may succeed.
struct Attempt {
    transient: bool,
    message: String,
}

impl Attempt {
    fn transient(message: impl Into<String>) -> Attempt {
        Attempt {
            transient: true,
            message: message.into(),
        }
    }
    fn fatal(message: impl Into<String>) -> Attempt {
        Attempt {
            transient: false,
            message: message.into(),
        }
    }
}

impl Fetcher {
    /// A fetcher with `jobs` downloads at a time.
    pub(crate) fn new(
        mirrors: Vec<String>,
        jobs: usize,
        retries: u32,
        backoff: Duration,
        bar: ProgressBar,
    ) -> Result<Arc<Fetcher>> {
        // reqwest is built without a bundled crypto provider so the workspace's ring is used;
        // installing it fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("kubegrid/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::HttpClient {
                problem: e.to_string(),
            })?;
        Ok(Arc::new(Fetcher {
            client,
            mirrors,
            retries,
            backoff,
            permits: Semaphore::new(jobs.max(1)),
            bar,
        }))
    }

    /// Fetches `url` (through the mirrors) into `dest`, resuming `<dest>.partial`, and
    /// returns the file's size and sha256. A finished `dest` that matches `expect` is kept.
    pub(crate) async fn fetch(
        &self,
        what: &str,
        url: &str,
        dest: &Path,
        expect: Expect<'_>,
    ) -> Result<(u64, String)> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Download {
            what: what.to_string(),
            url: url.to_string(),
            problem: "the download queue was closed".into(),
        })?;
        if let Expect::Sha256(want) = expect
            && dest.is_file()
        {
            let (size, have) = hash_file(dest)?;
            if have == want {
                return Ok((size, have));
            }
            remove(dest)?;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let partial = partial_path(dest);
        if matches!(expect, Expect::Unverified) {
            // Indexes change upstream; a leftover would splice two versions together.
            remove(&partial)?;
        }
        let mut problems = Vec::new();
        for candidate in candidates(url, &self.mirrors)? {
            match self.fetch_from(what, &candidate, &partial, expect).await {
                Ok(done) => {
                    std::fs::rename(&partial, dest).map_err(|source| Error::WriteFile {
                        path: dest.to_path_buf(),
                        source,
                    })?;
                    return Ok(done);
                }
                Err(Fetched::Failed(message)) => problems.push(format!("{candidate}: {message}")),
                Err(Fetched::Error(e)) => return Err(e),
            }
        }
        Err(Error::Download {
            what: what.to_string(),
            url: url.to_string(),
            problem: problems.join("; "),
        })
    }

    /// Tries one URL with retries; `Ok` is a verified download in `partial`.
    async fn fetch_from(
        &self,
        what: &str,
        url: &str,
        partial: &Path,
        expect: Expect<'_>,
    ) -> std::result::Result<(u64, String), Fetched> {
        let mut last = String::new();
        let mut fresh_retry_done = false;
        let mut attempt = 0;
        while attempt <= self.retries {
            if attempt > 0 {
                let factor = 1u32 << (attempt - 1).min(6);
                tokio::time::sleep(self.backoff * factor).await;
            }
            attempt += 1;
            let start = partial_len(partial);
            match self.attempt(url, partial, start).await {
                Ok(()) => {}
                Err(a) if a.transient => {
                    tracing::debug!("{what}: {url}: {} (attempt {attempt})", a.message);
                    last = a.message;
                    continue;
                }
                Err(a) => return Err(Fetched::Failed(a.message)),
            }
            // Hashing hundreds of MB must not stall the runtime's other downloads.
            let owned = partial.to_path_buf();
            let (size, actual) = tokio::task::spawn_blocking(move || hash_file(&owned))
                .await
                .map_err(|e| {
                    Fetched::Error(Error::ReadFile {
                        path: partial.to_path_buf(),
                        source: std::io::Error::other(e),
                    })
                })?
                .map_err(Fetched::Error)?;
            match expect {
                Expect::Sha256(want) if actual != want => {
                    remove(partial).map_err(Fetched::Error)?;
                    // A resumed file may have spliced a stale partial onto fresh bytes, so a
                    // mismatch after a resume earns one download from scratch.
                    if start > 0 && !fresh_retry_done {
                        fresh_retry_done = true;
                        continue;
                    }
                    return Err(Fetched::Error(Error::ChecksumMismatch {
                        what: what.to_string(),
                        url: url.to_string(),
                        expected: want.to_string(),
                        actual,
                    }));
                }
                _ => return Ok((size, actual)),
            }
        }
        Err(Fetched::Failed(format!(
            "{last} (gave up after {} attempts)",
            self.retries + 1
        )))
    }

    /// One GET, appending to `partial` from byte `start`.
    async fn attempt(
        &self,
        url: &str,
        partial: &Path,
        start: u64,
    ) -> std::result::Result<(), Attempt> {
        let mut request = self.client.get(url);
        if start > 0 {
            request = request.header(header::RANGE, format!("bytes={start}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Attempt::transient(chain(&e)))?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT if start > 0 => {
                let from = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if from != Some(start) {
                    // Not the range asked for: start over rather than guess.
                    let _ = std::fs::remove_file(partial);
                    return Err(Attempt::transient(format!(
                        "asked for bytes from {start}, got Content-Range starting at {from:?}"
                    )));
                }
                true
            }
            StatusCode::OK => false,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // The partial is as long as (or longer than) the file: fetch it again whole.
                let _ = std::fs::remove_file(partial);
                return Err(Attempt::transient("416 for the resumed range; restarting"));
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                return Err(Attempt::transient(format!("HTTP {s}")));
            }
            s => return Err(Attempt::fatal(format!("HTTP {s}"))),
        };
        if let Some(len) = response.content_length() {
            self.bar.inc_length(len);
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(|e| Attempt::fatal(format!("open {}: {e}", partial.display())))?;
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    file.write_all(&bytes)
                        .map_err(|e| Attempt::fatal(format!("write {}: {e}", partial.display())))?;
                    self.bar.inc(bytes.len() as u64);
                }
                Ok(None) => break,
                // A cut connection: what arrived stays in the partial for the next attempt.
                Err(e) => return Err(Attempt::transient(chain(&e))),
            }
        }
        file.sync_all()
            .map_err(|e| Attempt::fatal(format!("sync {}: {e}", partial.display())))?;
        Ok(())
    }
}

enum Fetched {
    /// This URL did not deliver; the next mirror may.
    Failed(String),
    /// Stop the whole download.
    Error(Error),
}

/// `<dest>.partial`.
pub(crate) fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

fn partial_len(partial: &Path) -> u64 {
    std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0)
}

/// `bytes 100-199/200` → 100.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// reqwest's message with its causes, which hold the useful part (connection refused, ...).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::WriteFile {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Size and lower-case hex sha256 of a file.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((size, hex::encode(hasher.finalize())))
}
