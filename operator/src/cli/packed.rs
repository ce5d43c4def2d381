//! Packed bundles (`kubegrid bundle build`'s tar + zstd file) wherever a bundle directory is
//! taken: the file is unpacked once into a cache keyed by its sha256, and that directory is
//! used from then on.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Overrides where packed bundles are unpacked (for tests, or a disk with room).
pub const CACHE_ENV: &str = "KUBEGRID_BUNDLE_CACHE";

/// The bundle directory `path` stands for: `path` itself unless it is a file, in which case
/// it is a packed bundle, unpacked (on first use) under [`cache_root`]. A corrupt or
/// truncated archive is an input error naming the file.
pub fn bundle_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        return Ok(path.to_path_buf());
    }
    let root = cache_root()?;
    let dir = kubegrid_bundle::open_packed(path, &root)?;
    tracing::info!(
        bundle = %path.display(),
        unpacked = %dir.display(),
        "using packed bundle"
    );
    Ok(dir)
}

/// Where packed bundles are unpacked: `$KUBEGRID_BUNDLE_CACHE`, else
/// /var/lib/kubegrid/bundles as root, else `$XDG_CACHE_HOME/kubegrid/bundles` or
/// ~/.cache/kubegrid/bundles.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if is_root() {
        return Ok(PathBuf::from("/var/lib/kubegrid/bundles"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(xdg).join("kubegrid/bundles"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither XDG_CACHE_HOME nor HOME is set, so there is no cache to unpack a packed bundle into; set KUBEGRID_BUNDLE_CACHE=DIR")?;
    Ok(PathBuf::from(home).join(".cache/kubegrid/bundles"))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}
