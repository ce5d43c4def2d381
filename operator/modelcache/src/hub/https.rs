//! `https://HOST/PATH` sources: the files `spec.model.files` lists, under that URL, each
//! checked against its given sha256. No server metadata is trusted for them.
//!
//! The "commit" of such a model is the sha256 of its file list (each path and sha256), cut to
//! 40 hex digits: it is immutable by construction, names the cache directory like a hub
//! commit, and changes whenever a file's content does. A file whose size the spec does not
//! give is asked with `HEAD` (Content-Length). The hub token is never sent to such a URL:
//! [`Hub::get`] sends it only to the hub's own origin.

use reqwest::{Method, StatusCode, Url, header};
use sha2::Digest as _;

use super::{Check, Hub, RemoteFile, Resolved, Source};
use crate::error::{Error, Result};

/// The commit of an `https://` model: its file list's digest.
pub fn content_commit(files: &[kubegrid_serving::ModelFile]) -> String {
    let mut list: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    list.sort_unstable();
    let mut digest = sha2::Sha256::new();
    for (path, sha) in list {
        digest.update(path.as_bytes());
        digest.update([0]);
        digest.update(sha.as_bytes());
        digest.update(b"\n");
    }
    hex::encode(digest.finalize())[..40].to_string()
}

impl Hub {
    /// Resolves an `https://` model: its files as `given`, at [`content_commit`], fetched
    /// from `base/PATH`.
    pub async fn resolve_url(
        &self,
        base: &str,
        given: &[kubegrid_serving::ModelFile],
    ) -> Result<Resolved> {
        let failed = |problem: String, hint: &'static str| Error::Resolve {
            repo: base.into(),
            revision: "files".into(),
            url: base.into(),
            problem,
            hint,
        };
        let url = Url::parse(base).map_err(|e| {
            failed(
                e.to_string(),
                "spec.model.uri must be an https:// URL of the model's directory",
            )
        })?;
        if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
            return Err(failed(
                "not an https:// URL without query or fragment".into(),
                "spec.model.uri must be an https:// URL of the model's directory",
            ));
        }
        if given.is_empty() {
            return Err(failed(
                "spec.model.files is empty".into(),
                "list every file with its sha256: an https:// server publishes no checksums kubegrid trusts",
            ));
        }
        self.listed(
            base.trim_end_matches('/').to_string(),
            Source::Url(url),
            given,
        )
        .await
    }

    /// A model of the files `given` lists where `source` keeps them, each checked against its
    /// sha256, at their [`content_commit`]; a size not given is asked with a `HEAD`.
    pub(super) async fn listed(
        &self,
        repo: String,
        source: Source,
        given: &[kubegrid_serving::ModelFile],
    ) -> Result<Resolved> {
        let mut model = Resolved {
            repo,
            commit: content_commit(given),
            files: Vec::new(),
            source,
        };
        for g in given {
            let size = match g.size.map(u64::try_from) {
                Some(Ok(size)) => size,
                _ => {
                    let (url, shown) = self.locate(&model, &g.path, Method::HEAD)?;
                    self.head_size(&model.source, url, &shown).await?
                }
            };
            model.files.push(RemoteFile {
                path: g.path.clone(),
                size,
                check: Check::Sha256(g.sha256.clone()),
            });
        }
        Ok(model)
    }

    /// `base/path`, each segment of `path` escaped.
    pub(super) fn join(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for s in path.split('/') {
                segments.push(s);
            }
        }
        url
    }

    /// A file's size from a `HEAD` request: signed and without the hub token for S3.
    async fn head_size(&self, source: &Source, url: Url, shown: &str) -> Result<u64> {
        let s3 = matches!(source, Source::S3 { .. });
        let failed = |problem: String, hint: &str| Error::Download {
            url: shown.to_string(),
            attempts: 1,
            problem: format!("{problem}; hint: {hint}"),
        };
        let size_hint = "give the file's size in spec.model.files";
        let request = if s3 {
            self.unauthenticated(Method::HEAD, url)
        } else {
            self.request(Method::HEAD, url)
        };
        let response = request
            .send()
            .await
            .map_err(|e| failed(super::without_url(e), size_hint))?;
        match response.status() {
            StatusCode::OK => response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| failed("HEAD gave no Content-Length".into(), size_hint)),
            s @ (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) if s3 => Err(failed(
                format!("HEAD answered HTTP {s}"),
                "check the cache's AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), its region and the bucket's policy",
            )),
            StatusCode::NOT_FOUND if s3 => Err(failed(
                "HEAD answered HTTP 404 Not Found".into(),
                "check the bucket, the prefix and the file's path",
            )),
            s => Err(failed(format!("HEAD answered HTTP {s}"), size_hint)),
        }
    }
}
