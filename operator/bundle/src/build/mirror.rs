//! Upstream URLs, mirrors and bundle paths. Like kubespray and kubean, a mirror keeps the
//! upstream host as its first path element, and so does the bundle:
//! `https://dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm` is fetched from
//! `<mirror>/dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm` and stored at
//! `dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm`.

use std::path::PathBuf;

use reqwest::Url;

use crate::{Error, Result};

/// Checks and normalises a `--mirror` base URL (no trailing slash).
pub fn parse_mirror(mirror: &str) -> Result<String> {
    let bad = |problem: &str| Error::BadUrl {
        url: mirror.to_string(),
        problem: problem.to_string(),
    };
    let url =
        Url::parse(mirror).map_err(|e| bad(&format!("{e}; expected http(s)://host[/path]")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("a mirror must be an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a mirror takes no query or fragment"));
    }
    Ok(mirror.trim_end_matches('/').to_string())
}

/// `host[:port]/path` of an upstream URL: its mirror suffix and its path in the bundle.
fn host_and_path(url: &str) -> Result<(String, Vec<String>)> {
    let bad = |problem: &str| Error::BadUrl {
        url: url.to_string(),
        problem: problem.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("the URL has no host"))?;
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let segments: Vec<String> = parsed
        .path_segments()
        .map(|s| s.map(str::to_string).collect())
        .unwrap_or_default();
    // Url already resolved `.` and `..`; what is left must name a file.
    if segments.is_empty()
        || segments
            .iter()
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad("the URL path must name a file"));
    }
    Ok((host, segments))
}

/// Where an upstream file lives inside the bundle: `<host>/<path>`.
pub fn bundle_path(url: &str) -> Result<PathBuf> {
    let (host, segments) = host_and_path(url)?;
    let mut path = PathBuf::from(host);
    path.extend(segments);
    Ok(path)
}

/// The URLs to fetch an upstream file from, in order: each mirror with the upstream host as
/// the first path element, or the upstream URL itself when there are no mirrors. There is no
/// fallback from mirrors to upstream, since a mirror is how an air-gapped builder reaches
/// anything at all.
pub fn candidates(url: &str, mirrors: &[String]) -> Result<Vec<String>> {
    if mirrors.is_empty() {
        let parsed = Url::parse(url).map_err(|e| Error::BadUrl {
            url: url.to_string(),
            problem: e.to_string(),
        })?;
        return Ok(vec![parsed.to_string()]);
    }
    let (host, segments) = host_and_path(url)?;
    Ok(mirrors
        .iter()
        .map(|m| format!("{m}/{host}/{}", segments.join("/")))
        .collect())
}

/// The file name at the end of a URL.
pub fn file_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_string()
}
