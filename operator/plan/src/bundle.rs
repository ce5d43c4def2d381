//! The offline bundle: a directory with a manifest.yaml listing every file with its sha256.
//! Opening a bundle verifies every file, so nothing corrupt is ever sent to a host.

use std::{
    collections::HashMap,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::{Duration, SystemTime},
};

use kubegrid_agent::protocol::PackageFormat;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

mod check;
mod versions;

use check::{check_inside, check_manifest};
pub use check::{is_sha256_digest, is_sha256_hex};
pub use versions::{ETCD_BINARIES, KUBERNETES_BINARIES, bare};

/// The first manifest format (manifest.yaml's `version`): files only. Old dev and e2e bundles
/// carry it; this crate still reads it.
pub const MANIFEST_VERSION: u32 = 1;

/// The manifest format `kubegrid bundle build` writes: version 1 plus the Kubernetes version,
/// each file's component and source, and the images in the bundle's OCI layout.
pub const MANIFEST_VERSION_2: u32 = 2;

/// Every manifest format this crate reads.
pub const MANIFEST_VERSIONS: [u32; 2] = [MANIFEST_VERSION, MANIFEST_VERSION_2];

/// The manifest's file name inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.yaml";

/// The directory inside a bundle that holds its images as one OCI image layout.
pub const IMAGES_DIR: &str = "images";

/// manifest.yaml, as offline-bundle/README.md describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; one of [`MANIFEST_VERSIONS`].
    pub version: u32,
    /// Bundle name, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Kubernetes version the bundle was built for (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
    /// Every file in the bundle.
    pub files: Vec<BundleFile>,
    /// The images in the bundle's `images/` OCI layout (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ManifestImage>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    /// Path relative to the bundle directory.
    pub path: PathBuf,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Architecture the file is for.
    pub arch: Arch,
    /// What the file is.
    pub kind: FileKind,
    /// Package (or image, binary) name; required for packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version the file carries; required for packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The sources.yaml component the file belongs to (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The upstream URL the file came from (version 2); a file taken out of an archive has
    /// the archive's URL with `#<member>` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One image of a bundle's `images/` OCI layout (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManifestImage {
    /// Repository, without tag: `registry.k8s.io/pause`.
    pub name: String,
    /// Tag: `3.10`.
    pub tag: String,
    /// `sha256:<hex>` of the top manifest or index as stored in the layout.
    pub digest: String,
    /// `sha256:<hex>` the image was pinned to upstream; differs from `digest` when platforms
    /// were filtered out of a multi-arch index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_digest: Option<String>,
    /// The architectures the stored image serves.
    pub arches: Vec<Arch>,
    /// The sources.yaml component the image belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// Architectures, in Kubernetes' spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
    /// Architecture-independent.
    All,
}

impl Arch {
    /// Whether a file for this arch serves a host whose facts say `host_arch`.
    pub fn serves(self, host_arch: &str) -> bool {
        match self {
            Arch::Amd64 => host_arch == "amd64",
            Arch::Arm64 => host_arch == "arm64",
            Arch::All => true,
        }
    }

    /// The arch as manifest.yaml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::All => "all",
        }
    }
}

/// What a bundle file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A Debian package.
    Deb,
    /// An RPM package.
    Rpm,
    /// A root filesystem tarball for test containers.
    Rootfs,
    /// A kubegrid-agent binary.
    Agent,
    /// One executable, installed at a path (kubeadm, kubelet, etcd).
    Binary,
    /// A .tar.gz unpacked into a directory (the CNI plugins).
    Archive,
    /// A container image archive (OCI layout or docker-archive tar).
    Image,
    /// A Helm chart (`.tgz`), kept for audit beside the manifests rendered from it.
    Chart,
    /// Kubernetes objects as YAML documents (a chart rendered at build time), applied
    /// through the API rather than installed on hosts.
    Manifests,
}

impl FileKind {
    /// The kind as manifest.yaml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Deb => "deb",
            FileKind::Rpm => "rpm",
            FileKind::Rootfs => "rootfs",
            FileKind::Agent => "agent",
            FileKind::Binary => "binary",
            FileKind::Archive => "archive",
            FileKind::Image => "image",
            FileKind::Chart => "chart",
            FileKind::Manifests => "manifests",
        }
    }

    fn package_format(self) -> Option<PackageFormat> {
        match self {
            FileKind::Deb => Some(PackageFormat::Deb),
            FileKind::Rpm => Some(PackageFormat::Rpm),
            _ => None,
        }
    }
}

/// An opened, verified bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

impl Bundle {
    /// Reads `<dir>/manifest.yaml` and verifies every listed file's size and sha256.
    pub fn open(dir: &Path) -> Result<Bundle> {
        let manifest = read_manifest(dir)?;
        // Artifacts are resolved against the real directory, so a symlink anywhere on the
        // way (the file itself, or a directory above it) cannot lead outside the bundle.
        let root = dir.canonicalize().map_err(|source| Error::ReadManifest {
            path: dir.to_path_buf(),
            source,
        })?;
        for file in &manifest.files {
            let path = dir.join(&file.path);
            check_inside(&root, &path)?;
            verify(&path, file.size, &file.sha256)?;
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The package file named `name` in `format` for a host of arch `arch`.
    pub fn package(&self, name: &str, arch: &str, format: PackageFormat) -> Result<&BundleFile> {
        self.package_on_line(name, arch, format, None)
    }

    /// [`Bundle::package`] on release line `line` (major, minor) when given: a bundle may
    /// carry several versions of containerd, and the spec's line picks one.
    pub fn package_on_line(
        &self,
        name: &str,
        arch: &str,
        format: PackageFormat,
        line: Option<(u64, u64)>,
    ) -> Result<&BundleFile> {
        let of_name = |f: &&BundleFile| {
            f.kind.package_format() == Some(format)
                && f.name.as_deref() == Some(name)
                && f.arch.serves(arch)
        };
        let files = &self.manifest.files;
        if let Some(file) = files
            .iter()
            .filter(of_name)
            .find(|f| crate::containerd::on_line(f, line))
        {
            return Ok(file);
        }
        match line {
            Some(line) if files.iter().any(|f| of_name(&f)) => {
                Err(self.off_line(format_name(format), name, line, arch, of_name))
            }
            _ => Err(Error::PackageNotInBundle {
                dir: self.dir.clone(),
                name: name.to_string(),
                arch: arch.to_string(),
                format: format_name(format).to_string(),
                available: self.packages_listing(),
            }),
        }
    }

    /// The refusal for an artifact the bundle has, but not on the line asked for.
    fn off_line(
        &self,
        kind: &str,
        name: &str,
        line: (u64, u64),
        arch: &str,
        of_name: impl Fn(&&BundleFile) -> bool,
    ) -> Error {
        Error::NotOnLineInBundle {
            dir: self.dir.clone(),
            what: format!("{kind} `{name}` for arch {arch}"),
            line: format!("{}.{}", line.0, line.1),
            available: self
                .manifest
                .files
                .iter()
                .filter(of_name)
                .map(|f| {
                    format!(
                        "{} ({} {})",
                        f.version.as_deref().unwrap_or("?"),
                        f.kind.as_str(),
                        f.arch.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The executable named `name` for a host of arch `arch`.
    pub fn binary(&self, name: &str, arch: &str) -> Result<&BundleFile> {
        self.named(FileKind::Binary, name, arch)
    }

    /// The archive named `name` for a host of arch `arch`.
    pub fn archive(&self, name: &str, arch: &str) -> Result<&BundleFile> {
        self.named(FileKind::Archive, name, arch)
    }

    /// [`Bundle::archive`] on release line `line` (major, minor) when given.
    pub fn archive_on_line(
        &self,
        name: &str,
        arch: &str,
        line: Option<(u64, u64)>,
    ) -> Result<&BundleFile> {
        let Some(line) = line else {
            return self.archive(name, arch);
        };
        let of_name = |f: &&BundleFile| {
            f.kind == FileKind::Archive && f.name.as_deref() == Some(name) && f.arch.serves(arch)
        };
        let files = &self.manifest.files;
        match files
            .iter()
            .filter(of_name)
            .find(|f| crate::containerd::on_line(f, Some(line)))
        {
            Some(file) => Ok(file),
            None if files.iter().any(|f| of_name(&f)) => {
                Err(self.off_line("archive", name, line, arch, of_name))
            }
            None => self.archive(name, arch),
        }
    }

    fn named(&self, kind: FileKind, name: &str, arch: &str) -> Result<&BundleFile> {
        let files = &self.manifest.files;
        files
            .iter()
            .find(|f| f.kind == kind && f.name.as_deref() == Some(name) && f.arch.serves(arch))
            .ok_or_else(|| Error::ArtifactNotInBundle {
                dir: self.dir.clone(),
                name: name.to_string(),
                arch: arch.to_string(),
                available: files
                    .iter()
                    .filter(|f| f.kind == kind)
                    .map(|f| {
                        format!(
                            "{} {} ({})",
                            f.name.as_deref().unwrap_or("?"),
                            f.version.as_deref().unwrap_or("?"),
                            f.arch.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The test-container rootfs for a host of arch `arch`.
    pub fn rootfs(&self, arch: &str) -> Result<&BundleFile> {
        self.manifest
            .files
            .iter()
            .find(|f| f.kind == FileKind::Rootfs && f.arch.serves(arch))
            .ok_or_else(|| Error::RootfsNotInBundle {
                dir: self.dir.clone(),
                arch: arch.to_string(),
            })
    }

    /// The entry whose content has this sha256.
    pub fn file(&self, sha256: &str) -> Option<&BundleFile> {
        self.manifest.files.iter().find(|f| f.sha256 == sha256)
    }

    /// Where the content with this sha256 lies on this machine, to stream it to hosts.
    pub fn file_path(&self, sha256: &str) -> Option<PathBuf> {
        self.file(sha256).map(|f| self.dir.join(&f.path))
    }

    /// "name version (arch format)" for every package, for error messages.
    fn packages_listing(&self) -> String {
        let listed: Vec<String> = self
            .manifest
            .files
            .iter()
            .filter_map(|f| {
                let format = f.kind.package_format()?;
                Some(format!(
                    "{} {} ({} {})",
                    f.name.as_deref().unwrap_or("?"),
                    f.version.as_deref().unwrap_or("?"),
                    f.arch.as_str(),
                    format_name(format),
                ))
            })
            .collect();
        if listed.is_empty() {
            "no packages".into()
        } else {
            listed.join(", ")
        }
    }
}

fn format_name(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Deb => "deb",
        PackageFormat::Rpm => "rpm",
    }
}

/// Reads and checks `<dir>/manifest.yaml` without touching the artifacts it lists: enough to
/// see what a bundle offers (the operator checks that against the spec on every reconcile).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadManifest {
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest =
        serde_yaml::from_str(&text).map_err(|source| Error::ParseManifest {
            path: path.clone(),
            source,
        })?;
    check_manifest(&manifest).map_err(|problem| Error::InvalidManifest {
        path: path.clone(),
        problem,
    })?;
    Ok(manifest)
}

/// Checks a file's size and sha256.
fn verify(path: &Path, size: u64, sha256: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingBundleFile {
                path: path.to_path_buf(),
                sha256: sha256.to_string(),
            }
        } else {
            Error::ReadBundleFile {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if !meta.is_file() {
        return Err(Error::ReadBundleFile {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    if meta.len() != size {
        return Err(Error::BundleFileSize {
            path: path.to_path_buf(),
            expected: size,
            actual: meta.len(),
        });
    }
    let actual = hash_cached(path, &meta)?;
    if actual != sha256 {
        return Err(Error::BundleFileChecksum {
            path: path.to_path_buf(),
            expected: sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Bundles are opened once per command and hashing tens of MB each time adds up, so hashes
/// are kept for the process, keyed by what changes when the file does. Like git's racy-clean
/// rule, a file modified in the last seconds is not cached: a write within the same clock tick
/// would leave its mtime unchanged.
fn hash_cached(path: &Path, meta: &std::fs::Metadata) -> Result<String> {
    type Key = (PathBuf, u64, SystemTime);
    static CACHE: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    let settled = meta.modified().ok().filter(|m| {
        SystemTime::now()
            .duration_since(*m)
            .is_ok_and(|age| age >= Duration::from_secs(2))
    });
    let key = settled.map(|m| (path.to_path_buf(), meta.len(), m));
    let cache = CACHE.get_or_init(Default::default);
    if let Some(key) = &key
        && let Some(hit) = cache.lock().ok().and_then(|c| c.get(key).cloned())
    {
        return Ok(hit);
    }
    let digest = sha256_file(path)?;
    if let Some(key) = key
        && let Ok(mut c) = cache.lock()
    {
        c.insert(key, digest.clone());
    }
    Ok(digest)
}

/// Lower-case hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let read_err = |source| Error::ReadBundleFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
