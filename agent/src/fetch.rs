//! Fetching blobs over HTTP from the engine's blob server, resuming with Range requests.
//!
//! Bytes go into the blob's partial file (see [`crate::store`]) as they arrive, hashed on
//! the way. A connect error, a read error, a read that waits longer than the read timeout or
//! a server error drops the connection and tries again after a backoff, asking only for the
//! bytes after those held (`Range: bytes=<have>-`), until no byte has arrived for the stall
//! limit: a network cut that heals within it resumes the same run. The whole blob's sha256
//! is checked before it enters the store; payload integrity comes from the plan, so plain
//! HTTP is enough.

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    protocol::{BlobHeader, Event},
    store::Partial,
};

/// Size of each read from the connection.
const READ_CHUNK: usize = 1 << 20;

/// Timeouts and pacing of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Limit for a TCP connect.
    pub connect_timeout: Duration,
    /// Limit for each read (response headers and every body read); shorter than the
    /// engine's SSH keepalive budget, so a cut is noticed and resumed before the engine
    /// gives the host up.
    pub read_timeout: Duration,
    /// Give up when no byte has arrived for this long.
    pub stall_limit: Duration,
    /// First wait between attempts; doubled after each failure without progress.
    pub backoff_first: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Least time between two progress events.
    pub progress_every: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            stall_limit: Duration::from_secs(300),
            backoff_first: Duration::from_millis(250),
            backoff_max: Duration::from_secs(2),
            progress_every: Duration::from_secs(1),
        }
    }
}

/// How one attempt ended, when it did not complete the blob.
enum Attempt {
    /// Worth another try (the network, a timeout, a 5xx).
    Retry(String),
    /// Another try cannot help.
    Fatal(Error),
}

/// Fetches `header`'s blob from `url` into `store`, emitting start, progress, retry and
/// stored events through `emit` (whose failure, the engine gone, stops the fetch).
pub fn fetch(
    header: &BlobHeader,
    url: &str,
    store: &Path,
    cfg: &FetchConfig,
    emit: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<PathBuf> {
    let started = Instant::now();
    let mut partial = Partial::open(store, &header.sha256, header.size)?;
    emit(&Event::BlobStarted {
        sha256: header.sha256.clone(),
        size: header.size,
        have: partial.have(),
    })?;
    let agent = client(cfg);
    let mut resumed_from = partial.have();
    let mut retries = 0u32;
    let mut backoff = cfg.backoff_first;
    let mut last_byte = Instant::now();
    let mut last_event = Instant::now();
    while partial.have() < header.size {
        let before = partial.have();
        let mut progress = |received: u64| {
            if last_event.elapsed() < cfg.progress_every {
                return Ok(());
            }
            last_event = Instant::now();
            emit(&Event::BlobProgress {
                sha256: header.sha256.clone(),
                received,
                size: header.size,
            })
        };
        let why = match attempt(&agent, url, header, &mut partial, &mut progress) {
            Ok(start) => {
                resumed_from = start;
                continue;
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(why)) => why,
        };
        if partial.have() > before {
            last_byte = Instant::now();
            backoff = cfg.backoff_first;
        }
        retries += 1;
        if last_byte.elapsed() >= cfg.stall_limit {
            return Err(Error::FetchGaveUp {
                sha256: header.sha256.clone(),
                url: url.to_string(),
                attempts: retries,
                stalled_s: last_byte.elapsed().as_secs(),
                received: partial.have(),
                size: header.size,
                last: why,
            });
        }
        emit(&Event::BlobRetry {
            sha256: header.sha256.clone(),
            attempt: retries,
            received: partial.have(),
            error: why,
        })?;
        thread::sleep(backoff.min(cfg.stall_limit.saturating_sub(last_byte.elapsed())));
        backoff = (backoff * 2).min(cfg.backoff_max);
    }
    let path = partial.finish(store, url)?;
    emit(&Event::BlobStored {
        sha256: header.sha256.clone(),
        size: header.size,
        resumed_from,
        retries,
        seconds: started.elapsed().as_secs_f64(),
    })?;
    Ok(path)
}

fn client(cfg: &FetchConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_recv_response(Some(cfg.read_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .user_agent(concat!("kubegrid-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// One request for the bytes after those held, streamed into the partial file. Returns the
/// offset the response started at once the blob is complete.
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    header: &BlobHeader,
    partial: &mut Partial,
    progress: &mut dyn FnMut(u64) -> Result<()>,
) -> std::result::Result<u64, Attempt> {
    let offset = partial.have();
    let mut request = agent.get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let response = request
        .call()
        .map_err(|e| Attempt::Retry(format!("request: {e}")))?;
    let refused = |problem: String, hint: &str| {
        Attempt::Fatal(Error::FetchRefused {
            sha256: header.sha256.clone(),
            url: url.to_string(),
            problem,
            hint: hint.to_string(),
        })
    };
    let status = response.status().as_u16();
    let start = match status {
        206 => {
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let want = format!("bytes {offset}-{}/{}", header.size - 1, header.size);
            if range != want {
                return Err(refused(
                    format!("the server answered Content-Range {range:?}, expected {want:?}"),
                    "the engine serves another file under this blob's name; re-run apply",
                ));
            }
            offset
        }
        200 => {
            // A server that ignores Range sends everything again.
            partial.truncate(0).map_err(Attempt::Fatal)?;
            0
        }
        408 | 429 | 500..=599 => {
            return Err(Attempt::Retry(format!("the server answered {status}")));
        }
        _ => {
            return Err(refused(
                format!("the server answered {status}"),
                "the blob server serves only the blobs of its own operation, under its \
                 per-operation token; re-run apply",
            ));
        }
    };
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                partial.write(&buf[..n]).map_err(Attempt::Fatal)?;
                progress(partial.have()).map_err(Attempt::Fatal)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Attempt::Retry(format!(
                    "read at byte {}: {e}",
                    partial.have()
                )));
            }
        }
    }
    if partial.have() < header.size {
        return Err(Attempt::Retry(format!(
            "the body ended at byte {} of {}",
            partial.have(),
            header.size
        )));
    }
    Ok(start)
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
