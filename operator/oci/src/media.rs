//! Media types and the parts of manifests this crate reads.
//!
//! Manifests are kept as the exact bytes the registry served (their digest is their name), so
//! these types only read what is needed to walk from an index to its blobs; unknown fields are
//! carried along in `extra` so a descriptor written back loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list, the Docker twin of an OCI index.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2), the Docker twin of an OCI manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest media type a pull accepts, indexes first.
pub(crate) const MANIFEST_TYPES: [&str; 4] =
    [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Annotation naming an image in a layout's index.json (OCI image-layout spec).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation `ctr images import` reads as the image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Annotation BuildKit puts on attestation manifests inside an index.
pub const ANNOTATION_DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// A content descriptor: what a blob is, its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Platform, on index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this crate does not interpret (urls, artifactType, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The platform of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's naming: `amd64`, `arm64`.
    pub architecture: String,
    /// Operating system: `linux`.
    pub os: String,
    /// Fields this crate does not interpret (variant, os.version, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What kind of document a manifest blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An OCI index or Docker manifest list: points at manifests.
    Index,
    /// An OCI or Docker image manifest: points at a config and layers.
    Manifest,
    /// Anything else: a config, a layer, an artifact's blob.
    Blob,
}

/// Classifies a media type.
pub(crate) fn kind_of(media_type: &str) -> Kind {
    match media_type {
        OCI_INDEX | DOCKER_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        _ => Kind::Blob,
    }
}

/// The fields of an index or manifest needed to walk it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    /// Declared media type; OCI documents may leave it out.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Index entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Image config.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Image layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl ManifestDoc {
    /// The document's media type: declared, or inferred from its shape for OCI documents that
    /// leave `mediaType` out (the OCI spec allows it).
    pub fn effective_media_type(&self) -> &str {
        match &self.media_type {
            Some(declared) => declared,
            None if self.config.is_some() => OCI_MANIFEST,
            None => OCI_INDEX,
        }
    }

    /// The blobs an image manifest points at: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers)
    }
}

/// The fields of an image config needed to learn a single-platform image's platform.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageConfig {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
}
