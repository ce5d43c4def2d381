//! The images the GPU objects run, by the digest the bundle recorded when it was built.

use crate::{
    bundle::{Manifest, ManifestImage, is_sha256_digest},
    error::{Error, Result},
};

/// The NVIDIA device plugin's repository (offline-bundle/sources.yaml pins its tag and digest).
pub const DEVICE_PLUGIN_IMAGE: &str = "nvcr.io/nvidia/k8s-device-plugin";
/// The DCGM exporter's repository (offline-bundle/sources.yaml pins its tag and digest).
pub const DCGM_EXPORTER_IMAGE: &str = "nvcr.io/nvidia/k8s/dcgm-exporter";

impl ManifestImage {
    /// The digest hosts pull it by. `via_bundle_registry`: the bundle registry serves the
    /// image as the bundle stored it (`digest`, which differs from upstream's when platforms
    /// were filtered out); otherwise hosts pull upstream, by the digest it was pinned to there.
    pub fn pull_digest(&self, via_bundle_registry: bool) -> &str {
        if via_bundle_registry {
            &self.digest
        } else {
            self.upstream_digest.as_deref().unwrap_or(&self.digest)
        }
    }
}

/// One image, pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository without tag: `nvcr.io/nvidia/k8s-device-plugin`.
    pub name: String,
    /// The tag the digest was pinned for (shown as the version label; pulls use the digest).
    pub tag: String,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl ImageRef {
    /// A pinned image; the digest must be `sha256:` and 64 lower-case hex digits.
    pub fn new(name: &str, tag: &str, digest: &str) -> Result<ImageRef> {
        if !is_sha256_digest(digest) {
            return Err(Error::InvalidContext {
                problem: format!(
                    "image {name}:{tag} has digest `{digest}`; expected sha256: and 64 lower-case hex digits"
                ),
            });
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
            digest: digest.to_string(),
        })
    }

    /// The image from a bundle manifest. `via_bundle_registry`: hosts pull through the
    /// bundle registry, which serves the image as the bundle stored it (`digest`, which
    /// differs from upstream's when platforms were filtered out); otherwise they pull
    /// upstream, by the digest the image was pinned to there (`upstreamDigest`).
    pub fn from_bundle(
        manifest: &Manifest,
        name: &str,
        via_bundle_registry: bool,
    ) -> Result<ImageRef> {
        let image = manifest
            .images
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| Error::InvalidContext {
                problem: format!(
                    "the bundle has no image {name}, which the GPU objects run; it has {}; hint: build the bundle with a release that pins it (offline-bundle/sources.yaml) and without `--without` for its component",
                    if manifest.images.is_empty() {
                        "none".to_string()
                    } else {
                        manifest
                            .images
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            })?;
        let digest = image.pull_digest(via_bundle_registry);
        ImageRef::new(&image.name, &image.tag, digest)
    }

    /// `name@digest`, what the manifests pull.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.digest)
    }
}

/// The images of the NVIDIA device plugin and the DCGM exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuImages {
    /// [`DEVICE_PLUGIN_IMAGE`], pinned.
    pub device_plugin: ImageRef,
    /// [`DCGM_EXPORTER_IMAGE`], pinned.
    pub dcgm_exporter: ImageRef,
}

impl GpuImages {
    /// Both images from a bundle manifest; see [`ImageRef::from_bundle`].
    pub fn from_bundle(manifest: &Manifest, via_bundle_registry: bool) -> Result<GpuImages> {
        Ok(GpuImages {
            device_plugin: ImageRef::from_bundle(
                manifest,
                DEVICE_PLUGIN_IMAGE,
                via_bundle_registry,
            )?,
            dcgm_exporter: ImageRef::from_bundle(
                manifest,
                DCGM_EXPORTER_IMAGE,
                via_bundle_registry,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Arch, ManifestImage};

    const UPSTREAM: &str =
        "sha256:a61ba9fd8efb82f3a79f877f7580e02c1e8e7593f62473644bc9c79e315c3312";
    const STORED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn manifest() -> Manifest {
        Manifest {
            version: 2,
            name: None,
            kubernetes: Some("1.34.2".into()),
            files: Vec::new(),
            images: vec![ManifestImage {
                name: DEVICE_PLUGIN_IMAGE.into(),
                tag: "v0.20.0".into(),
                digest: STORED.into(),
                upstream_digest: Some(UPSTREAM.into()),
                arches: vec![Arch::Amd64],
                component: Some("nvidia-device-plugin".into()),
            }],
        }
    }

    #[test]
    fn the_bundle_registry_serves_the_stored_digest_upstream_the_pinned_one() {
        let via_registry = ImageRef::from_bundle(&manifest(), DEVICE_PLUGIN_IMAGE, true).unwrap();
        assert_eq!(
            via_registry.reference(),
            format!("{DEVICE_PLUGIN_IMAGE}@{STORED}")
        );
        let upstream = ImageRef::from_bundle(&manifest(), DEVICE_PLUGIN_IMAGE, false).unwrap();
        assert_eq!(upstream.digest, UPSTREAM);
        assert_eq!(upstream.tag, "v0.20.0");
    }

    #[test]
    fn a_missing_image_names_it_and_what_the_bundle_has() {
        let err = GpuImages::from_bundle(&manifest(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(DCGM_EXPORTER_IMAGE), "{err}");
        assert!(
            err.contains(&format!("it has {DEVICE_PLUGIN_IMAGE}")),
            "{err}"
        );
    }

    #[test]
    fn a_digest_that_is_not_sha256_is_refused() {
        let err = ImageRef::new(DEVICE_PLUGIN_IMAGE, "v0.20.0", "sha256:abc")
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 lower-case hex digits"), "{err}");
    }
}
