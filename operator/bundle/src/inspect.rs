//! What a bundle holds, and how two bundles differ, from their manifests alone.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use kubegrid_plan::{BundleFile, MANIFEST_FILE, MANIFEST_VERSIONS, Manifest, ManifestImage};
use serde::Serialize;

use crate::{Error, Result, SIGNATURE_FILE};

/// A bundle's contents, as its manifest lists them. Inspection reads only manifest.yaml: it
/// neither hashes artifacts nor checks the signature (that is [`crate::verify`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The bundle's name, when the manifest gives one.
    pub name: Option<String>,
    /// The manifest format version.
    pub manifest_version: u32,
    /// The Kubernetes version the bundle was built for (manifest v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
    /// Every arch an artifact is listed for, sorted (`all` included when present).
    pub arches: Vec<String>,
    /// Whether manifest.yaml.sig exists; it is not verified here.
    pub signed: bool,
    /// How many artifacts the manifest lists.
    pub artifacts: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The artifacts by kind (`deb`, `binary`, ...), each list in manifest order.
    pub kinds: BTreeMap<String, Vec<Artifact>>,
    /// The images in the bundle's OCI layout, in manifest order.
    pub images: Vec<ManifestImage>,
}

/// One artifact in an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Package, program or archive name, when the manifest gives one.
    pub name: Option<String>,
    /// Version, when the manifest gives one.
    pub version: Option<String>,
    /// Architecture.
    pub arch: String,
    /// Size in bytes.
    pub size: u64,
    /// Path inside the bundle.
    pub path: PathBuf,
    /// sha256 of the content.
    pub sha256: String,
}

/// How two bundles differ, artifact by artifact, keyed by kind, name and arch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleDiff {
    /// The first (old) bundle.
    pub a: PathBuf,
    /// The second (new) bundle.
    pub b: PathBuf,
    /// In B, not in A.
    pub added: Vec<ArtifactVersion>,
    /// In A, not in B.
    pub removed: Vec<ArtifactVersion>,
    /// In both under the same key, with another version or content.
    pub changed: Vec<Change>,
}

impl BundleDiff {
    /// Whether the bundles hold the same artifacts.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What identifies an artifact across bundles. An entry without a name (a rootfs, an agent)
/// is known by its path instead.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ArtifactKey {
    /// Kind (`deb`, `binary`, ...).
    pub kind: String,
    /// Name, or the path for an entry without one.
    pub name: String,
    /// Architecture.
    pub arch: String,
}

/// One side of a diff entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactVersion {
    /// Which artifact.
    #[serde(flatten)]
    pub key: ArtifactKey,
    /// Version, when the manifest gives one.
    pub version: Option<String>,
    /// sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An artifact present in both bundles with another version or sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Which artifact.
    #[serde(flatten)]
    pub key: ArtifactKey,
    /// Version in A.
    pub from_version: Option<String>,
    /// Version in B.
    pub to_version: Option<String>,
    /// sha256 in A.
    pub from_sha256: String,
    /// sha256 in B.
    pub to_sha256: String,
}

/// Describes the bundle in `dir` from its manifest.
pub fn inspect(dir: &Path) -> Result<Inspection> {
    let manifest = read_manifest(dir)?;
    let mut kinds: BTreeMap<String, Vec<Artifact>> = BTreeMap::new();
    for f in &manifest.files {
        kinds
            .entry(f.kind.as_str().to_string())
            .or_default()
            .push(Artifact {
                name: f.name.clone(),
                version: f.version.clone(),
                arch: f.arch.as_str().to_string(),
                size: f.size,
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            });
    }
    let arches: BTreeSet<&str> = manifest
        .files
        .iter()
        .map(|f| f.arch.as_str())
        .chain(
            manifest
                .images
                .iter()
                .flat_map(|i| i.arches.iter().map(|a| a.as_str())),
        )
        .collect();
    Ok(Inspection {
        dir: dir.to_path_buf(),
        name: manifest.name.clone(),
        manifest_version: manifest.version,
        kubernetes: manifest.kubernetes.clone(),
        images: manifest.images.clone(),
        arches: arches.into_iter().map(String::from).collect(),
        signed: dir.join(SIGNATURE_FILE).exists(),
        artifacts: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        kinds,
    })
}

/// Compares the bundles in `a` and `b` from their manifests.
pub fn diff(a: &Path, b: &Path) -> Result<BundleDiff> {
    let left = by_key(&read_manifest(a)?);
    let right = by_key(&read_manifest(b)?);
    let keys: BTreeSet<&ArtifactKey> = left.keys().chain(right.keys()).collect();
    let mut out = BundleDiff {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for key in keys {
        let mut old: Vec<&ArtifactVersion> = left.get(key).into_iter().flatten().collect();
        let mut new: Vec<&ArtifactVersion> = right.get(key).into_iter().flatten().collect();
        // Entries with the same version and content on both sides are unchanged; what is left
        // pairs up as a change only when it is one for one, since otherwise nothing says which
        // old entry became which new one.
        old.retain(|o| {
            let same = new.iter().position(|n| same_content(o, n));
            same.map(|i| new.remove(i)).is_none()
        });
        match (old.as_slice(), new.as_slice()) {
            ([o], [n]) => out.changed.push(Change {
                key: key.clone(),
                from_version: o.version.clone(),
                to_version: n.version.clone(),
                from_sha256: o.sha256.clone(),
                to_sha256: n.sha256.clone(),
            }),
            _ => {
                out.removed.extend(old.into_iter().cloned());
                out.added.extend(new.into_iter().cloned());
            }
        }
    }
    Ok(out)
}

fn same_content(a: &ArtifactVersion, b: &ArtifactVersion) -> bool {
    a.version == b.version && a.sha256 == b.sha256
}

fn by_key(manifest: &Manifest) -> BTreeMap<ArtifactKey, Vec<ArtifactVersion>> {
    let mut map: BTreeMap<ArtifactKey, Vec<ArtifactVersion>> = BTreeMap::new();
    for f in &manifest.files {
        let entry = version_of(f);
        map.entry(entry.key.clone()).or_default().push(entry);
    }
    // An image is one artifact across its arches: its digest covers them all.
    for i in &manifest.images {
        let arches: Vec<&str> = i.arches.iter().map(|a| a.as_str()).collect();
        let entry = ArtifactVersion {
            key: ArtifactKey {
                kind: "image".to_string(),
                name: i.name.clone(),
                arch: arches.join(","),
            },
            version: Some(i.tag.clone()),
            sha256: i.digest.clone(),
            size: 0,
        };
        map.entry(entry.key.clone()).or_default().push(entry);
    }
    map
}

fn version_of(f: &BundleFile) -> ArtifactVersion {
    ArtifactVersion {
        key: ArtifactKey {
            kind: f.kind.as_str().to_string(),
            name: f
                .name
                .clone()
                .unwrap_or_else(|| f.path.display().to_string()),
            arch: f.arch.as_str().to_string(),
        },
        version: f.version.clone(),
        sha256: f.sha256.clone(),
        size: f.size,
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadManifest {
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest = serde_yaml::from_str(&text).map_err(|e| Error::ParseManifest {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    if !MANIFEST_VERSIONS.contains(&manifest.version) {
        return Err(Error::ParseManifest {
            path,
            problem: format!(
                "version is {}, this kubegrid reads versions {MANIFEST_VERSIONS:?}; hint: use a kubegrid that matches the bundle",
                manifest.version
            ),
        });
    }
    Ok(manifest)
}
