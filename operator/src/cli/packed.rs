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

/// Runs `work` on the bundle directory `path` stands for. When `path` is a packed file, an
/// error names the file the user gave, not the cache directory it was unpacked into: every
/// mention of that directory becomes `FILE` (and `FILE:member` for paths inside it).
pub fn with_bundle<T>(
    path: &Path,
    work: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = bundle_dir(path)?;
    work(&dir).map_err(|err| {
        if dir == path {
            err
        } else {
            relabel(err, &dir, path)
        }
    })
}

/// An error whose messages were rewritten to name the packed file; it keeps the exit code
/// the original error had.
#[derive(Debug)]
pub struct Relabeled {
    /// The rewritten message, causes included.
    pub message: String,
    /// The original error's exit code.
    pub code: u8,
}

impl std::fmt::Display for Relabeled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Relabeled {}

fn relabel(err: anyhow::Error, dir: &Path, file: &Path) -> anyhow::Error {
    let dir = dir.display().to_string();
    let file = file.display().to_string();
    let rewrite = |text: String| {
        // `bundle sign` takes directories; a packed bundle is signed as it is built.
        text.replace(
            &format!("sign it with `kubegrid bundle sign {dir} --key FILE`"),
            "a packed bundle is signed as it is built: `kubegrid bundle build ... --sign-key FILE`",
        )
        .replace(&format!("{dir}/"), &format!("{file}:"))
        .replace(&dir, &file)
    };
    let chain: Vec<String> = err.chain().map(|e| rewrite(e.to_string())).collect();
    if !chain
        .iter()
        .zip(err.chain())
        .any(|(new, old)| *new != old.to_string())
    {
        return err;
    }
    Relabeled {
        message: chain.join("\n  caused by: "),
        code: super::exit_code(&err),
    }
    .into()
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
