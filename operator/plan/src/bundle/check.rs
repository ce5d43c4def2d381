//! What makes a bundle's manifest and artifacts acceptable before anything is hashed: every
//! artifact a regular file inside the bundle, well-formed entries and image records.

use std::path::{Component, Path};

use super::{MANIFEST_VERSION, MANIFEST_VERSION_2, MANIFEST_VERSIONS, Manifest, ManifestImage};
use crate::error::{Error, Result};

/// An artifact must be a regular file inside the bundle: not a symlink, and not reached
/// through a symlinked directory that leads elsewhere. Hashes alone do not catch a link to
/// a file outside, since whoever made the link picked what it points at.
pub(super) fn check_inside(root: &Path, path: &Path) -> Result<()> {
    let outside = |what: &str| Error::ArtifactOutsideBundle {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(path)
                .map(|t| format!("a symlink to {}", t.display()))
                .unwrap_or_else(|_| "a symlink".into());
            return Err(outside(&target));
        }
        // verify() names a missing or unreadable file.
        Ok(_) | Err(_) => {}
    }
    if let Ok(real) = path.canonicalize()
        && !real.starts_with(root)
    {
        return Err(outside(&format!(
            "reached through a symlinked directory; it is {}",
            real.display()
        )));
    }
    Ok(())
}

/// Rules serde cannot express. Paths must stay inside the bundle, since they are joined to
/// its directory and read.
pub(super) fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    if !MANIFEST_VERSIONS.contains(&manifest.version) {
        return Err(format!(
            "version is {}, this kubegrid reads versions {MANIFEST_VERSION} and {MANIFEST_VERSION_2}; hint: use a kubegrid that matches the bundle",
            manifest.version
        ));
    }
    if manifest.version == MANIFEST_VERSION {
        let v2_only = manifest.kubernetes.is_some()
            || !manifest.images.is_empty()
            || manifest
                .files
                .iter()
                .any(|f| f.component.is_some() || f.source.is_some());
        if v2_only {
            return Err(
                "version 1 has no `kubernetes`, `images`, `component` or `source`; hint: a manifest with them says `version: 2`"
                    .into(),
            );
        }
    }
    check_images(&manifest.images)?;
    let mut paths = Vec::new();
    for file in &manifest.files {
        let at = format!("file `{}`", file.path.display());
        let inside = file.path.components().next().is_some()
            && file
                .path
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(format!(
                "{at}: the path must be relative and stay inside the bundle"
            ));
        }
        if paths.contains(&&file.path) {
            return Err(format!("{at} is listed twice"));
        }
        paths.push(&file.path);
        if !is_sha256_hex(&file.sha256) {
            return Err(format!(
                "{at}: sha256 `{}` is not 64 lower-case hex digits",
                file.sha256
            ));
        }
        if file.kind.package_format().is_some() && (file.name.is_none() || file.version.is_none()) {
            return Err(format!("{at}: a package entry needs `name` and `version`"));
        }
    }
    Ok(())
}

/// Image entries must name a repository without a tag and pin content by sha256, since the
/// engine pushes exactly these digests from the layout.
fn check_images(images: &[ManifestImage]) -> Result<(), String> {
    let mut seen = Vec::new();
    for image in images {
        let at = format!("image `{}:{}`", image.name, image.tag);
        let last = image.name.rsplit('/').next().unwrap_or_default();
        if image.name.is_empty() || last.contains(':') || image.name.contains('@') {
            return Err(format!(
                "{at}: `name` must be a repository without tag or digest, like registry.k8s.io/pause"
            ));
        }
        if image.tag.is_empty() {
            return Err(format!("{at}: `tag` is empty"));
        }
        for (field, digest) in [
            ("digest", Some(&image.digest)),
            ("upstreamDigest", image.upstream_digest.as_ref()),
        ] {
            if let Some(digest) = digest
                && !is_sha256_digest(digest)
            {
                return Err(format!(
                    "{at}: {field} `{digest}` is not `sha256:` and 64 lower-case hex digits"
                ));
            }
        }
        if image.arches.is_empty() {
            return Err(format!("{at}: `arches` is empty"));
        }
        if seen.contains(&(&image.name, &image.tag)) {
            return Err(format!("{at} is listed twice"));
        }
        seen.push((&image.name, &image.tag));
    }
    Ok(())
}

/// Whether `digest` is `sha256:` followed by 64 lower-case hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// Whether `hex` is 64 lower-case hex digits, the form manifests use for sha256.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
