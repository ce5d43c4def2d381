//! `s3://BUCKET/PREFIX` sources: the files `spec.model.files` lists, under that key prefix
//! of an S3 (or S3-compatible) bucket, each checked against its given sha256, exactly as
//! for `https://` sources (the same [`content_commit`](super::content_commit)): S3 keeps no
//! sha256 kubegrid could trust for every object (its checksums are optional and, for
//! multipart uploads, a checksum of part checksums).
//!
//! Requests are signed with AWS Signature Version 4 as presigned URLs (rusty-s3), so the
//! same resumable Range downloads serve both sources; each attempt signs afresh, so a long
//! download never outlives its signature. Credentials come from the standard environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); without
//! them requests are anonymous, for public buckets. A signed URL is never written to a log
//! or an error: messages name the object as `s3://BUCKET/KEY`.

use std::time::Duration;

use reqwest::{Method, Url};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

use super::{Hub, Resolved, Source};
use crate::error::{Error, Result};

/// How long a signed URL is valid. S3 checks it when a request arrives, not while the body
/// streams, and every attempt signs afresh, so this only needs to cover the request's start.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Where `s3://` models are fetched from, and as whom.
#[derive(Clone)]
pub struct S3Config {
    endpoint: Url,
    region: String,
    style: UrlStyle,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log, even through Debug.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("path_style", &matches!(self.style, UrlStyle::Path))
            .field("signed", &self.credentials.is_some())
            .finish()
    }
}

impl S3Config {
    /// `endpoint` (default `https://s3.REGION.amazonaws.com`), `region`, and path-style URLs
    /// (`ENDPOINT/BUCKET/KEY`, as most S3-compatible stores need) or virtual-hosted ones
    /// (`BUCKET.ENDPOINT/KEY`, AWS's); anonymous until credentials are given.
    pub fn new(endpoint: Option<&str>, region: &str, path_style: bool) -> Result<Self> {
        let text = endpoint.map_or_else(
            || format!("https://s3.{region}.amazonaws.com"),
            str::to_string,
        );
        let endpoint = Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                Error::HttpClient(format!(
                    "S3 endpoint {text:?} is not an http:// or https:// URL with a host"
                ))
            })?;
        if region.is_empty() {
            return Err(Error::HttpClient("the S3 region is empty".into()));
        }
        Ok(Self {
            endpoint,
            region: region.into(),
            style: if path_style {
                UrlStyle::Path
            } else {
                UrlStyle::VirtualHost
            },
            credentials: None,
        })
    }

    /// Signs with `key` and `secret` (and a session `token`).
    pub fn credentials(mut self, key: &str, secret: &str, token: Option<&str>) -> Self {
        self.credentials = Some(match token {
            Some(t) => Credentials::new_with_token(key, secret, t),
            None => Credentials::new(key, secret),
        });
        self
    }

    /// Signs with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` when
    /// the first two are set; stays anonymous otherwise.
    pub fn credentials_from_env(mut self) -> Self {
        self.credentials = Credentials::from_env();
        self
    }

    fn bucket(&self, name: &str) -> Result<Bucket> {
        Bucket::new(
            self.endpoint.clone(),
            self.style,
            name.to_string(),
            self.region.clone(),
        )
        .map_err(|e| Error::HttpClient(format!("S3 bucket {name:?} at {}: {e}", self.endpoint)))
    }
}

/// The object key of `path` under `prefix`.
fn key(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

impl Hub {
    /// Fetches `s3://` models as `config` says.
    pub fn with_s3(mut self, config: S3Config) -> Self {
        self.s3 = Some(config);
        self
    }

    /// Resolves an `s3://` model: its files as `given`, at their
    /// [`content_commit`](super::content_commit), fetched from `BUCKET/PREFIX/PATH`.
    pub async fn resolve_s3(
        &self,
        bucket: &str,
        prefix: &str,
        given: &[kubegrid_serving::ModelFile],
    ) -> Result<Resolved> {
        let shown = format!("s3://{bucket}/{prefix}");
        let failed = |problem: String, hint: &'static str| Error::Resolve {
            repo: shown.clone(),
            revision: "files".into(),
            url: shown.clone(),
            problem,
            hint,
        };
        if self.s3.is_none() {
            return Err(failed(
                "this cache has no S3 settings".into(),
                "run kubegrid model-cache with --s3-region (and --s3-endpoint for a store other than AWS)",
            ));
        }
        if given.is_empty() {
            return Err(failed(
                "spec.model.files is empty".into(),
                "list every file with its sha256: kubegrid trusts no checksum S3 keeps",
            ));
        }
        let source = Source::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        self.listed(shown.trim_end_matches('/').to_string(), source, given)
            .await
    }

    /// The signed URL of `path` in an `s3://` source for `method`, and its `s3://` name.
    pub(super) fn locate_s3(
        &self,
        source: &Source,
        path: &str,
        method: Method,
    ) -> Result<(Url, String)> {
        let (Source::S3 { bucket, prefix }, Some(config)) = (source, &self.s3) else {
            return Err(Error::HttpClient(
                "an s3:// file asked of a cache without S3 settings".into(),
            ));
        };
        let b = config.bucket(bucket)?;
        let key = key(prefix, path);
        let creds = config.credentials.as_ref();
        let url = if method == Method::HEAD {
            b.head_object(creds, &key).sign(SIGNED_FOR)
        } else {
            b.get_object(creds, &key).sign(SIGNED_FOR)
        };
        Ok((url, format!("s3://{bucket}/{key}")))
    }
}
