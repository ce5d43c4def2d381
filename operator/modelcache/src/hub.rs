//! Hugging Face's hub API: a revision resolved to an immutable commit with its file list,
//! and resumable downloads that are verified before they take their final name.
//!
//! The metadata answer (`/api/models/ORG/NAME/revision/REV?blobs=true`) names each file
//! with its size and git's blob id, and large (LFS) files with their sha256 too. A file is
//! checked against the spec's sha256 when `spec.model.files` lists it, else against the
//! LFS sha256, else against the git blob id (a sha1 of `blob <size>\0` and the bytes, which
//! is all the hub publishes for small files such as `config.json`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use kubegrid_serving::{ModelFile, is_relative_path};
use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::{Error, Result};

/// How downloads retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per file, the first included.
    pub attempts: u32,
    /// The first wait; it doubles per failed attempt.
    pub backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 8,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// How a file is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its sha256, lowercase hex.
    Sha256(String),
    /// Git's blob id: the sha1 of `blob <size>\0` and the bytes, lowercase hex.
    GitSha1(String),
}

/// One file of a resolved model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its path in the repository.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// How it is verified.
    pub check: Check,
}

/// A revision resolved to its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `org/name`.
    pub repo: String,
    /// The commit: 40 lowercase hex digits.
    pub commit: String,
    /// The files to fetch.
    pub files: Vec<RemoteFile>,
}

impl Resolved {
    /// All files' bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// How one download went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes already on disk from an earlier, interrupted download.
    pub resumed_from: u64,
    /// Bytes received from the hub this time.
    pub fetched: u64,
    /// Requests made.
    pub attempts: u32,
}

/// A hub client.
#[derive(Debug, Clone)]
pub struct Hub {
    base: Url,
    client: reqwest::Client,
    token: Option<String>,
    retry: Retry,
}

#[derive(Deserialize)]
struct Metadata {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Hub {
    /// A client for the hub at `base` (e.g. `https://huggingface.co`, or a mirror).
    pub fn new(base: &str, retry: Retry) -> Result<Self> {
        let base =
            Url::parse(base).map_err(|e| Error::HttpClient(format!("hub URL {base:?}: {e}")))?;
        // reqwest is built without a bundled crypto provider; installing ring fails only when
        // one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("kubegrid-modelcache/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(Self {
            base,
            client,
            token: None,
            retry,
        })
    }

    /// Sends `token` as a bearer token (gated and private repositories need one).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    fn get(&self, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.get(url);
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// The URL of `path` at `commit` in `repo`.
    pub fn file_url(&self, repo: &str, commit: &str, path: &str) -> Url {
        let mut segments: Vec<&str> = repo.split('/').collect();
        segments.extend(["resolve", commit]);
        segments.extend(path.split('/'));
        self.url(&segments)
    }

    /// Resolves `org/name@revision` to its commit and files. With `given` (the spec's
    /// `model.files`), exactly those files are fetched, each checked against its given
    /// sha256, and each must exist at the commit with the same size and LFS sha256.
    pub async fn resolve(
        &self,
        org: &str,
        name: &str,
        revision: &str,
        given: &[ModelFile],
    ) -> Result<Resolved> {
        let repo = format!("{org}/{name}");
        let mut url = self.url(&["api", "models", org, name, "revision", revision]);
        url.set_query(Some("blobs=true"));
        let failed = |problem: String, hint: &'static str| Error::Resolve {
            repo: repo.clone(),
            revision: revision.into(),
            url: url.to_string(),
            problem,
            hint,
        };
        let response = self.get(url.clone()).send().await.map_err(|e| {
            failed(
                e.to_string(),
                "check that the hub is reachable from the node",
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    "the repository is gated or private: give the cache a token that may read it"
                }
                StatusCode::NOT_FOUND => {
                    "check the organisation, name and revision in spec.model.uri"
                }
                _ => "the hub answered with an error; it is retried",
            };
            return Err(failed(format!("HTTP {status}"), hint));
        }
        let meta: Metadata = response.json().await.map_err(|e| {
            failed(
                format!("unreadable metadata: {e}"),
                "is this a Hugging Face hub?",
            )
        })?;
        if !is_hex(&meta.sha, 40) {
            return Err(failed(
                format!("the commit {:?} is not 40 hex digits", meta.sha),
                "is this a Hugging Face hub?",
            ));
        }
        let commit = meta.sha;
        let bad = |path: &str, problem: String| Error::Metadata {
            repo: repo.clone(),
            commit: commit.clone(),
            path: path.into(),
            problem,
        };
        let mut files = Vec::new();
        for s in &meta.siblings {
            if !is_relative_path(&s.rfilename) || s.rfilename.len() > 256 {
                return Err(bad(
                    &s.rfilename,
                    "is not a relative path inside the repository".into(),
                ));
            }
            let given_one = given.iter().find(|g| g.path == s.rfilename);
            if !given.is_empty() && given_one.is_none() {
                continue;
            }
            let size = s
                .lfs
                .as_ref()
                .map(|l| l.size)
                .or(s.size)
                .ok_or_else(|| bad(&s.rfilename, "the metadata gives no size".into()))?;
            let check = match (given_one, &s.lfs, &s.blob_id) {
                (Some(g), Some(l), _) if g.sha256 != l.sha256 => {
                    return Err(bad(
                        &s.rfilename,
                        format!(
                            "spec.model.files says sha256 {}, the hub says {}",
                            g.sha256, l.sha256
                        ),
                    ));
                }
                (Some(g), _, _) => Check::Sha256(g.sha256.clone()),
                (None, Some(l), _) if is_hex(&l.sha256, 64) => Check::Sha256(l.sha256.clone()),
                (None, None, Some(b)) if is_hex(b, 40) => Check::GitSha1(b.clone()),
                _ => {
                    return Err(bad(
                        &s.rfilename,
                        "the metadata gives neither a sha256 nor a blob id".into(),
                    ));
                }
            };
            if let Some(want) = given_one.and_then(|g| g.size)
                && u64::try_from(want).ok() != Some(size)
            {
                return Err(bad(
                    &s.rfilename,
                    format!("spec.model.files says {want} bytes, the hub says {size}"),
                ));
            }
            files.push(RemoteFile {
                path: s.rfilename.clone(),
                size,
                check,
            });
        }
        if let Some(missing) = given
            .iter()
            .find(|g| !files.iter().any(|f| f.path == g.path))
        {
            return Err(bad(
                &missing.path,
                "is listed in spec.model.files but not at this commit".into(),
            ));
        }
        Ok(Resolved {
            repo,
            commit,
            files,
        })
    }

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
        let url = self.file_url(&model.repo, &model.commit, &file.path);
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
            match self.attempt(&url, file.size, &partial, progress).await {
                Ok(n) => {
                    fetched += n;
                    break;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(problem, n)) => {
                    fetched += n;
                    if attempts >= self.retry.attempts {
                        return Err(Error::Download {
                            url: url.to_string(),
                            attempts,
                            problem,
                        });
                    }
                    tracing::info!(%url, attempts, %problem, "download interrupted; resuming after {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max_backoff);
                }
            }
        }
        verify(&url, &partial, file).await?;
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
        url: &Url,
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
        let mut request = self.get(url.clone());
        if offset > 0 {
            request = request.header(header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Attempt::Transient(e.to_string(), 0))?;
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
                    url: url.to_string(),
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
                    return Err(Attempt::Transient(e.to_string(), received));
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
async fn verify(url: &Url, partial: &Path, file: &RemoteFile) -> Result<()> {
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
        url: url.to_string(),
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
