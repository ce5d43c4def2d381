//! offline-bundle/sources.yaml: where every upstream artifact of a bundle comes from, per
//! component, version and arch, and how each is verified; plus the images each Kubernetes
//! release needs, pinned by digest.
//!
//! The model is plain data. [`Sources::validate`] checks what serde cannot, and
//! [`Sources::plan`] turns it into the concrete downloads for one build.

use std::{collections::BTreeMap, path::Path};

use kubegrid_plan::Arch;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The sources file the build uses when none is given: offline-bundle/sources.yaml as it was
/// when this kubegrid was built.
pub const DEFAULT_SOURCES: &str = include_str!("../../../offline-bundle/sources.yaml");

/// The sources format this crate reads (sources.yaml's `version`).
pub const SOURCES_VERSION: u32 = 1;

/// offline-bundle/sources.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sources {
    /// Format version; must be [`SOURCES_VERSION`].
    pub version: u32,
    /// Upstream artifacts by component name (`kubernetes`, `containerd`, ...).
    #[serde(deserialize_with = "crate::sources_check::unique_map")]
    pub components: BTreeMap<String, Component>,
    /// OS packages by distribution (`debian-12`), added with `--include-os-packages`.
    #[serde(default, deserialize_with = "crate::sources_check::unique_map")]
    pub os_packages: BTreeMap<String, DebSource>,
    /// What a bundle for each Kubernetes version holds, keyed by that version (`1.34.2`).
    #[serde(deserialize_with = "crate::sources_check::unique_map")]
    pub releases: BTreeMap<String, Release>,
}

/// One component: files fetched by URL, Debian packages fetched from a repository, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Component {
    /// Files fetched by URL pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactSource>,
    /// Packages fetched from a Debian repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debs: Option<DebSource>,
}

/// A file fetched by URL. Patterns take `{v}` (the component version) and `{arch}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactSource {
    /// The name playbooks ask the bundle for (`kubeadm`, `cni-plugins`). Without one the file
    /// itself stays out of the bundle and only its `extract` members go in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the file is.
    pub kind: ArtifactKind,
    /// URL pattern.
    pub url: String,
    /// How the download is verified.
    pub checksum: Checksum,
    /// Executables taken out of this archive into the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extract: Vec<Extract>,
    /// How this upstream spells each arch where `{arch}` stands (NVIDIA's runfiles:
    /// `amd64: x86_64`, `arm64: aarch64`); an arch not listed is spelt as kubegrid does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arch_names: BTreeMap<Arch, String>,
    /// A `chart` only, and required there: how the build renders it into the bundle's
    /// `manifests` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<ChartRender>,
}

/// How `kubegrid bundle build` renders a chart: `helm template <release> <chart> --namespace
/// <namespace> --include-crds --skip-tests --kube-version <kubernetes>`, with the helm the
/// release puts into the bundle and the chart's own default values. Rendering at build time
/// keeps helm out of the operator and puts the exact objects under the bundle's signature.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartRender {
    /// The release name, which the chart's templates build object names from (`keda`).
    pub release: String,
    /// The namespace the objects are rendered into (`keda`).
    pub namespace: String,
}

/// The kinds of URL-fetched artifacts; each maps onto the manifest's `FileKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// One executable.
    Binary,
    /// A tarball (`.tar.gz`, `.tgz`, `.tar.xz`, `.tar.zst`).
    Archive,
    /// One Debian package (`.deb`) pinned by sha256 rather than found in a repository index;
    /// its manifest `version` is the release's version string for the component, so pin the
    /// Debian version there (`1.6.20~ds1-1+deb12u3`).
    Deb,
    /// A root file system tarball, unpacked on hosts as a container's rootfs.
    Rootfs,
    /// A Helm chart (`.tgz`) for every arch at once: the URL has no `{arch}` and its pin is
    /// under `all`. It is rendered at build time (see [`ChartRender`]).
    Chart,
}

impl ArtifactKind {
    /// The manifest kind a file of this kind is recorded as.
    pub fn file_kind(self) -> kubegrid_plan::FileKind {
        use kubegrid_plan::FileKind;
        match self {
            ArtifactKind::Binary => FileKind::Binary,
            ArtifactKind::Archive => FileKind::Archive,
            ArtifactKind::Deb => FileKind::Deb,
            ArtifactKind::Rootfs => FileKind::Rootfs,
            ArtifactKind::Chart => FileKind::Chart,
        }
    }

    /// The name sources.yaml spells it with.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Binary => "binary",
            ArtifactKind::Archive => "archive",
            ArtifactKind::Deb => "deb",
            ArtifactKind::Rootfs => "rootfs",
            ArtifactKind::Chart => "chart",
        }
    }
}

/// How a download is verified: against an upstream checksum file, or a sha256 pinned here.
/// Exactly one of `file` and `sha256` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Checksum {
    /// URL pattern of the upstream checksum file; `{url}` stands for the artifact's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The checksum file's format; required with `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ChecksumFormat>,
    /// The file name to look up in a `sha256sum` file (pattern); defaults to the last path
    /// element of the artifact's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// sha256 pins by component version, then arch, for files upstream publishes no
    /// checksum for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sha256: BTreeMap<String, BTreeMap<Arch, String>>,
}

/// Checksum file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumFormat {
    /// The file describes this one artifact: its first word is the hex sha256 (`x.sha256`;
    /// anything after the hash, like a file name, is ignored).
    Single,
    /// `sha256sum` output: `<hex>  <name>` lines, looked up by file name (`x.sha256sum`,
    /// `SHA256SUMS`).
    Sha256sum,
}

/// A member of an archive that goes into the bundle as an executable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Extract {
    /// Path inside the archive (pattern), e.g. `etcd-v{v}-linux-{arch}/etcdctl`.
    pub member: String,
    /// The name playbooks ask the bundle for.
    pub name: String,
}

/// Debian packages from one or more repositories, verified against the repositories'
/// `Packages` indexes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebSource {
    /// Repositories, searched in order for each package.
    pub repos: Vec<DebRepo>,
    /// The packages to take.
    pub packages: Vec<DebPackage>,
}

/// One Debian repository index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebRepo {
    /// URL pattern of a `Packages`, `Packages.gz` or `Packages.xz` index; takes `{arch}`.
    pub index: String,
    /// URL pattern the index's `Filename` fields are relative to; takes `{arch}`.
    pub base: String,
    /// How this repository spells each arch in its URLs (NVIDIA's CUDA repositories:
    /// `amd64: x86_64`, `arm64: sbsa`); an arch not listed is spelt as kubegrid does. The
    /// index's own `Architecture` fields still say amd64 and arm64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arch_names: BTreeMap<Arch, String>,
}

/// One package to take from a [`DebSource`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebPackage {
    /// Package name.
    pub name: String,
    /// Exact Debian version (pattern with `{v}`); without one the highest version any
    /// listed repository has is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The component recorded in the manifest; defaults to the owning component's name, or
    /// for OS packages to the package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Instead of the package, a root file system made of some of its files goes into the
    /// bundle (manifest kind `rootfs`), e.g. busybox for the post-install container check.
    /// Only in a component's `debs`; OS packages go into the bundle's apt repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<DebRootfs>,
}

/// A root file system made of files of a Debian package: the files at their paths in the
/// package, the links, and their parent directories, packed as a reproducible tar (sorted,
/// owner root, time zero), so the same package always gives the same sha256.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebRootfs {
    /// The name the bundle lists it under (`busybox`).
    pub name: String,
    /// Regular files of the package, by path relative to its root (`bin/busybox`); each keeps
    /// its path and mode.
    pub files: Vec<String>,
    /// Symbolic links to add, path to target (`bin/sh: busybox`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

/// What a bundle for one Kubernetes version holds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Release {
    /// Component name to component version; `kubernetes` must equal the release's version.
    #[serde(deserialize_with = "crate::sources_check::unique_map")]
    pub components: BTreeMap<String, String>,
    /// The images the release needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<SourceImage>,
}

/// A container image, pinned by the digest of what its registry serves for the tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceImage {
    /// Repository without tag: `registry.k8s.io/pause`.
    pub name: String,
    /// Tag: `3.10.1`.
    pub tag: String,
    /// `sha256:<hex>` of the tag's manifest or index upstream. Required: an image without a
    /// pin is refused rather than trusted on first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The architectures the pinned index serves.
    pub arches: Vec<Arch>,
    /// The component the image belongs to.
    pub component: String,
}

impl Sources {
    /// Parses and validates sources.yaml text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Sources> {
        let sources: Sources = serde_yaml::from_str(text).map_err(|e| Error::ParseSources {
            origin: origin.to_string(),
            problem: e.to_string(),
        })?;
        sources
            .validate()
            .map_err(|problem| Error::InvalidSources {
                origin: origin.to_string(),
                problem,
            })?;
        Ok(sources)
    }

    /// Reads, parses and validates a sources file.
    pub fn read(path: &Path) -> Result<Sources> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadSources {
            path: path.to_path_buf(),
            source,
        })?;
        Sources::parse(&text, &path.display().to_string())
    }

    /// The sources compiled into this kubegrid ([`DEFAULT_SOURCES`]).
    pub fn builtin() -> Result<Sources> {
        Sources::parse(DEFAULT_SOURCES, "built-in offline-bundle/sources.yaml")
    }

    /// The Kubernetes versions there are releases for, oldest first by string order.
    pub fn kubernetes_versions(&self) -> Vec<&str> {
        self.releases.keys().map(String::as_str).collect()
    }
}

/// Expands `{v}` and `{arch}` in a pattern.
pub fn expand(pattern: &str, version: &str, arch: Arch) -> String {
    expand_as(pattern, version, arch.as_str())
}

/// Expands `{v}`, and `{arch}` as `arch_text` (an upstream's own spelling of the arch).
pub fn expand_as(pattern: &str, version: &str, arch_text: &str) -> String {
    pattern.replace("{v}", version).replace("{arch}", arch_text)
}

/// How `names` (an `archNames` map) spells `arch`: its entry, or kubegrid's name.
pub fn arch_name(names: &BTreeMap<Arch, String>, arch: Arch) -> &str {
    names.get(&arch).map_or(arch.as_str(), String::as_str)
}
