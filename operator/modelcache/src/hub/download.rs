//! Downloads: `<dest>.part` continued with Range requests, transient failures retried with
//! backoff, the whole file verified before it is renamed to `dest`.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode, Url, header};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use super::{Check, Downloaded, Hub, RemoteFile, Resolved, Source};
use crate::error::{Error, Result};

impl Hub {
    /// Downloads `file` of `model` to `dest`: continues `<dest>.part` with a Range request,
    /// retries transient failures with backoff, verifies the whole file, and only then
    /// renames it to `dest`. A `dest` that exists is taken as verified (nothing else names
    /// a file so). `progress` hears the bytes on disk after each chunk.
    pub async fn download(
        &self,
        model: &Resolved,
        file: &RemoteFile,
        dest: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Downloaded> {
        if dest.exists() {
            progress(file.size);
            return Ok(Downloaded {
                resumed_from: file.size,
                fetched: 0,
                attempts: 0,
            });
        }
        let (_, shown) = self.locate(model, &file.path, Method::GET)?;
        // A signed S3 URL carries its own authentication; the hub's token is for the hub.
        let authorize = !matches!(model.source, Source::S3 { .. });
        let partial = part_path(dest);
        if let Some(dir) = partial.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(Error::io("create directory", dir))?;
        }
        let resumed_from = on_disk(&partial).await.min(file.size);
        let mut fetched = 0;
        let mut attempts = 0;
        let mut wait = self.retry.backoff;
        loop {
            attempts += 1;
            // Signed afresh per attempt, so a retried download never outlives its signature.
            let (url, _) = self.locate(model, &file.path, Method::GET)?;
            let to = Target {
                url,
                shown: &shown,
                authorize,
            };
            match self.attempt(&to, file.size, &partial, progress).await {
                Ok(n) => {
                    fetched += n;
                    break;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(problem, n)) => {
                    fetched += n;
                    if attempts >= self.retry.attempts {
                        return Err(Error::Download {
                            url: shown,
                            attempts,
                            problem,
                        });
                    }
                    tracing::info!(url = %shown, attempts, %problem, "download interrupted; resuming after {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max_backoff);
                }
            }
        }
        verify(&shown, &partial, file).await?;
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(Error::io("rename", &partial))?;
        Ok(Downloaded {
            resumed_from,
            fetched,
            attempts,
        })
    }

    /// One request: appends what the hub sends to `partial`; the bytes received.
    async fn attempt(
        &self,
        to: &Target<'_>,
        size: u64,
        partial: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> std::result::Result<u64, Attempt> {
        let mut offset = on_disk(partial).await;
        if offset > size {
            offset = 0;
        }
        if offset == size {
            return Ok(0);
        }
        let mut request = if to.authorize {
            self.get(to.url.clone())
        } else {
            self.unauthenticated(Method::GET, to.url.clone())
        };
        if offset > 0 {
            request = request.header(header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Attempt::Transient(super::without_url(e), 0))?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT => true,
            StatusCode::OK => false,
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                return Err(Attempt::Transient(format!("HTTP {s}"), 0));
            }
            s => {
                return Err(Attempt::Fatal(Error::Download {
                    url: to.shown.to_string(),
                    attempts: 1,
                    problem: format!("HTTP {s}"),
                }));
            }
        };
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .await
            .map_err(|e| Attempt::Fatal(Error::io("open", partial)(e)))?;
        let mut have = if append { offset } else { 0 };
        let mut received = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| Attempt::Fatal(Error::io("write", partial)(e)))?;
                    have += chunk.len() as u64;
                    received += chunk.len() as u64;
                    progress(have);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = out.flush().await;
                    return Err(Attempt::Transient(super::without_url(e), received));
                }
            }
        }
        out.sync_all()
            .await
            .map_err(|e| Attempt::Fatal(Error::io("sync", partial)(e)))?;
        if have < size {
            return Err(Attempt::Transient(
                format!("the body ended at byte {have} of {size}"),
                received,
            ));
        }
        Ok(received)
    }
}

/// One attempt's request: its URL, the name messages give it, and whether the hub's token
/// goes with it.
struct Target<'a> {
    url: Url,
    shown: &'a str,
    authorize: bool,
}

enum Attempt {
    Transient(String, u64),
    Fatal(Error),
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

async fn on_disk(path: &Path) -> u64 {
    tokio::fs::metadata(path).await.map_or(0, |m| m.len())
}

/// Hashes `partial` as `file.check` says; a mismatch deletes it.
async fn verify(shown: &str, partial: &Path, file: &RemoteFile) -> Result<()> {
    let path = partial.to_path_buf();
    let check = file.check.clone();
    let seen = tokio::task::spawn_blocking(move || hash(&path, &check))
        .await
        .map_err(|e| Error::io("hash", partial)(std::io::Error::other(e)))?
        .map_err(Error::io("hash", partial))?;
    let (algorithm, expected) = match &file.check {
        Check::Sha256(h) => ("sha256", h),
        Check::GitSha1(h) => ("git-sha1", h),
    };
    if &seen == expected {
        return Ok(());
    }
    let _ = tokio::fs::remove_file(partial).await;
    Err(Error::Checksum {
        url: shown.to_string(),
        algorithm,
        seen,
        expected: expected.clone(),
    })
}

/// The hex digest of the file at `path` as `check` computes it. Blocking.
pub fn hash(path: &Path, check: &Check) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut feed = |update: &mut dyn FnMut(&[u8])| -> std::io::Result<()> {
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            update(&buf[..n]);
        }
    };
    Ok(match check {
        Check::Sha256(_) => {
            let mut h = sha2::Sha256::new();
            feed(&mut |b| h.update(b))?;
            hex::encode(h.finalize())
        }
        Check::GitSha1(_) => {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            feed(&mut |b| h.update(b))?;
            hex::encode(h.finalize())
        }
    })
}
