//! Building kubegrid's own image without a container engine: one layer holding a static
//! binary, CA certificates and a non-root user, an image config and manifest per
//! architecture, and an OCI index over them, all written into a [`Layout`].
//!
//! The documents are built with the `oci-spec` crate's types (so every field is a field of
//! the image spec) and serialized with their object keys sorted, because oci-spec keeps
//! labels and annotations in hash maps whose order changes from run to run. Together with the
//! layer's fixed tar metadata this makes the image's digest a function of its inputs only.

mod elf;
mod layer;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor as SpecDescriptor, DescriptorBuilder,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};

pub use layer::{IMAGE_BINARY_PATH, IMAGE_CA_PATH, IMAGE_USER_ID, IMAGE_USER_NAME};

use crate::{
    digest::Digest,
    error::{Error, Result},
    layout::Layout,
    media::{Descriptor, OCI_INDEX},
};

/// The architectures an image can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageArch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl ImageArch {
    /// Every architecture, in the order index entries are written.
    pub const ALL: [ImageArch; 2] = [ImageArch::Amd64, ImageArch::Arm64];

    /// Parses Go's (and Kubernetes') spelling: `amd64`, `arm64`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.to_string() == text)
    }

    fn spec_arch(self) -> Arch {
        match self {
            ImageArch::Amd64 => Arch::Amd64,
            ImageArch::Arm64 => Arch::ARM64,
        }
    }
}

impl fmt::Display for ImageArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageArch::Amd64 => "amd64",
            ImageArch::Arm64 => "arm64",
        })
    }
}

/// What goes into the image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The name recorded in the layout's index.json, e.g. `ghcr.io/kubegrid/kubegrid:0.1.0`.
    pub name: String,
    /// One statically linked binary per architecture, installed as [`IMAGE_BINARY_PATH`].
    pub binaries: BTreeMap<ImageArch, PathBuf>,
    /// A PEM bundle of CA certificates, installed as [`IMAGE_CA_PATH`].
    pub ca_certificates: PathBuf,
    /// Arguments after the entrypoint when the runtime is given none.
    pub cmd: Vec<String>,
    /// Labels of the image config (`org.opencontainers.image.*`); also the index's and each
    /// manifest's annotations.
    pub labels: BTreeMap<String, String>,
    /// The image's creation time in seconds since the epoch (`SOURCE_DATE_EPOCH`): the
    /// config's `created` and every file's mtime. None: no `created`, mtimes 0.
    pub created: Option<u64>,
}

/// What [`build_image`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltImage {
    /// The name recorded in index.json.
    pub name: String,
    /// The descriptor of the image index recorded under that name.
    pub index: Descriptor,
    /// Each architecture's image manifest digest.
    pub manifests: BTreeMap<ImageArch, Digest>,
}

/// Checks, before anything is built or run, that the file at `path` is a statically linked
/// ELF executable for `arch`, as [`build_image`] requires of every binary.
pub fn check_image_binary(arch: ImageArch, path: &Path) -> Result<()> {
    let binary = read_binary(arch, path)?;
    elf::check_binary(arch, path, &binary)
}

fn read_binary(arch: ImageArch, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadImageBinary {
        arch: arch.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the image `spec` describes into `layout` and records its index under `spec.name`
/// (replacing an earlier image of that name). Blobs already present are kept, so building the
/// same inputs twice changes nothing.
///
/// Reads and compresses whole binaries: run it on a blocking thread from async code.
pub fn build_image(layout: &Layout, spec: &ImageSpec) -> Result<BuiltImage> {
    if spec.binaries.is_empty() {
        return Err(Error::ImageSpec {
            problem: "no binary was given; expected one per architecture (amd64, arm64)".to_owned(),
        });
    }
    let ca = std::fs::read(&spec.ca_certificates).map_err(|source| Error::ReadImageFile {
        path: spec.ca_certificates.clone(),
        target: IMAGE_CA_PATH.to_owned(),
        source,
    })?;
    let mut manifests = BTreeMap::new();
    let mut entries = Vec::new();
    for (&arch, path) in &spec.binaries {
        let binary = read_binary(arch, path)?;
        elf::check_binary(arch, path, &binary)?;
        let descriptor = build_platform_image(layout, spec, arch, &binary, &ca)?;
        manifests.insert(arch, Digest::parse(descriptor.digest().as_ref())?);
        entries.push(descriptor);
    }
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(entries)
        .build()
        .map_err(spec_error)?;
    index.set_annotations(annotations(&spec.labels));
    let (digest, size) = write_json(layout, &index)?;
    let descriptor = Descriptor {
        media_type: OCI_INDEX.to_owned(),
        digest: digest.to_string(),
        size,
        platform: None,
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    layout.set_image(&spec.name, descriptor)?;
    let index = layout
        .image(&spec.name)?
        .expect("the index entry was just written");
    Ok(BuiltImage {
        name: spec.name.clone(),
        index,
        manifests,
    })
}

/// Writes one architecture's layer, config and manifest; returns the manifest's descriptor
/// (with its platform) for the index.
fn build_platform_image(
    layout: &Layout,
    spec: &ImageSpec,
    arch: ImageArch,
    binary: &[u8],
    ca: &[u8],
) -> Result<SpecDescriptor> {
    let layer =
        layer::build(binary, ca, spec.created.unwrap_or(0)).map_err(|source| Error::WriteBlob {
            path: layout.root().join("blobs/sha256"),
            source,
        })?;
    let layer_digest = layout.write_blob(&layer.compressed)?;
    let layer_descriptor = descriptor(
        MediaType::ImageLayerGzip,
        &layer_digest,
        layer.compressed.len(),
    )?;

    let user = format!("{IMAGE_USER_ID}:{IMAGE_USER_ID}");
    let mut config = ConfigBuilder::default()
        .user(user)
        .entrypoint(vec![IMAGE_BINARY_PATH.to_owned()])
        .cmd(spec.cmd.clone())
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("SSL_CERT_FILE={IMAGE_CA_PATH}"),
        ])
        .working_dir("/")
        .build()
        .map_err(spec_error)?;
    config.set_labels(annotations(&spec.labels));
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![layer.diff_id.to_string()])
        .build()
        .map_err(spec_error)?;
    let mut image_config = ImageConfigurationBuilder::default()
        .architecture(arch.spec_arch())
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .build()
        .map_err(spec_error)?;
    if let Some(created) = spec.created {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(created);
        image_config.set_created(Some(humantime::format_rfc3339_seconds(time).to_string()));
    }
    let (config_digest, config_size) = write_json(layout, &image_config)?;

    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_size as usize,
        )?)
        .layers(vec![layer_descriptor])
        .build()
        .map_err(spec_error)?;
    manifest.set_annotations(annotations(&spec.labels));
    let (manifest_digest, manifest_size) = write_json(layout, &manifest)?;
    let mut entry = descriptor(
        MediaType::ImageManifest,
        &manifest_digest,
        manifest_size as usize,
    )?;
    entry.set_platform(Some(
        PlatformBuilder::default()
            .architecture(arch.spec_arch())
            .os(Os::Linux)
            .build()
            .map_err(spec_error)?,
    ));
    Ok(entry)
}

fn descriptor(media_type: MediaType, digest: &Digest, size: usize) -> Result<SpecDescriptor> {
    let digest = digest
        .as_str()
        .parse::<oci_spec::image::Digest>()
        .map_err(spec_error)?;
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest)
        .size(size as u64)
        .build()
        .map_err(spec_error)
}

/// Serializes `doc` with sorted object keys and stores it as a blob.
fn write_json(layout: &Layout, doc: &impl serde::Serialize) -> Result<(Digest, u64)> {
    let bytes = canonical_json(doc)?;
    let digest = layout.write_blob(&bytes)?;
    Ok((digest, bytes.len() as u64))
}

/// JSON with every object's keys in sorted order, whatever map type produced them.
fn canonical_json(doc: &impl serde::Serialize) -> Result<Vec<u8>> {
    let value = serde_json::to_value(doc).map_err(spec_error)?;
    serde_json::to_vec(&Sorted(&value)).map_err(spec_error)
}

/// Serializes a JSON value with its objects' keys in sorted order, even where serde_json
/// keeps maps in insertion order (its `preserve_order` feature, which any crate in the build
/// may switch on).
struct Sorted<'a>(&'a serde_json::Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        match self.0 {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<&String, &serde_json::Value> = map.iter().collect();
                let mut out = serializer.serialize_map(Some(sorted.len()))?;
                for (k, v) in sorted {
                    out.serialize_entry(k, &Sorted(v))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&Sorted(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The labels as oci-spec's annotation map; None when there are none, so no empty
/// `annotations` object is written.
fn annotations(
    labels: &BTreeMap<String, String>,
) -> Option<std::collections::HashMap<String, String>> {
    (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// oci-spec's builder and serialization errors only arise from a bug in this module (a
/// required field left out), but they are still reported rather than unwrapped.
fn spec_error(e: impl fmt::Display) -> Error {
    Error::ImageSpec {
        problem: format!("the image documents could not be assembled: {e}"),
    }
}
