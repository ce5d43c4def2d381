//! Hugging Face's hub API: a revision resolved to an immutable commit with its file list,
//! and resumable downloads that are verified before they take their final name.
//!
//! The metadata answer (`/api/models/ORG/NAME/revision/REV?blobs=true`) names each file
//! with its size and git's blob id, and large (LFS) files with their sha256 too. A file is
//! checked against the spec's sha256 when `spec.model.files` lists it, else against the
//! LFS sha256, else against the git blob id (a sha1 of `blob <size>\0` and the bytes, which
//! is all the hub publishes for small files such as `config.json`).

use std::time::Duration;

use kubegrid_serving::{ModelFile, is_relative_path};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use crate::error::{Error, Result};

mod download;
mod https;
mod s3;

pub use download::{hash, part_path};
pub use https::content_commit;
pub use s3::S3Config;

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
    /// Where the files are fetched from.
    pub source: Source,
}

/// Where a resolved model's files are fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The hub's own layout at the model's commit.
    Hub,
    /// `https://` files under this URL.
    Url(Url),
    /// `s3://` objects under a key prefix of a bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, possibly empty.
        prefix: String,
    },
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
    s3: Option<S3Config>,
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
        let client = Self::builder()
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(Self {
            base,
            client,
            token: None,
            retry,
            s3: None,
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

    /// A request; the token goes only to the hub's own origin, never to an `https://`
    /// source on another server.
    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let same_origin = url.origin() == self.base.origin();
        let request = self.client.request(method, url);
        match &self.token {
            Some(t) if same_origin => request.bearer_auth(t),
            _ => request,
        }
    }

    fn get(&self, url: Url) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, url)
    }

    /// A request that carries no token: a signed S3 URL authenticates itself, and S3 refuses
    /// a second authentication in the Authorization header.
    fn unauthenticated(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// The URL of `path` of `model` for `method`, and the name messages give it (for S3, the
    /// object's `s3://` name: a signed URL never reaches a log).
    pub(super) fn locate(
        &self,
        model: &Resolved,
        path: &str,
        method: Method,
    ) -> Result<(Url, String)> {
        let url = match &model.source {
            Source::Hub => self.file_url(&model.repo, &model.commit, path),
            Source::Url(base) => Self::join(base, path),
            Source::S3 { .. } => return self.locate_s3(&model.source, path, method),
        };
        let shown = url.to_string();
        Ok((url, shown))
    }

    /// Also trusts the CA certificates in `pem` for HTTPS (a private mirror's, or an
    /// `https://` source's).
    pub fn with_root_ca(mut self, pem: &[u8]) -> Result<Self> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::HttpClient(format!("CA certificates: {e}")))?;
        if certs.is_empty() {
            return Err(Error::HttpClient(
                "CA certificates: no PEM certificate in the file".into(),
            ));
        }
        let mut builder = Self::builder();
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
        self.client = builder
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(self)
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("kubegrid-modelcache/", env!("CARGO_PKG_VERSION")))
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
            source: Source::Hub,
        })
    }
}

/// A reqwest error's message with its causes but without the URL it names: a signed S3
/// URL is a credential for its lifetime and must not reach a log or a status.
pub(crate) fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
