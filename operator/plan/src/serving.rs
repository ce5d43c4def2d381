//! `spec.serving`: what the engine deploys into the installed cluster, and the kubegrid image
//! it runs, taken from the bundle (where `kubegrid image build --bundle` lists it under the
//! `operator` component) so that a spec naming a layer the bundle cannot run is refused before
//! any host is touched.

use crate::{
    bundle::Manifest,
    error::{Error, Result},
    gpu::ImageRef,
};

/// The bundle manifest's `component` of the kubegrid image.
pub const KUBEGRID_IMAGE_COMPONENT: &str = "operator";

/// The serving layer as the engine deploys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingContext {
    /// The namespace of the controller and the cache.
    pub namespace: String,
    /// The cache's `--capacity`, if any.
    pub cache_capacity: Option<String>,
    /// Apply PodMonitors too.
    pub pod_monitors: bool,
    /// The kubegrid image both run, pinned by digest.
    pub image: ImageRef,
    /// KEDA from the bundle, when the spec asks for it.
    pub keda: Option<crate::keda::KedaContext>,
}

impl ServingContext {
    /// The kubegrid image of `version` in the bundle: the one the serving controller and the
    /// cache run, whose CRDs are the ones this kubegrid renders. Pulled from the bundle
    /// registry by the digest stored there, or upstream by the pinned one (see
    /// [`ImageRef::from_bundle`]).
    pub fn image_from_bundle(
        manifest: &Manifest,
        version: &str,
        via_bundle_registry: bool,
    ) -> Result<ImageRef> {
        let kubegrid: Vec<_> = manifest
            .images
            .iter()
            .filter(|i| i.component.as_deref() == Some(KUBEGRID_IMAGE_COMPONENT))
            .collect();
        let Some(image) = kubegrid.iter().find(|i| i.tag == version) else {
            let seen = if kubegrid.is_empty() {
                "no kubegrid image".to_string()
            } else {
                let tags: Vec<String> = kubegrid
                    .iter()
                    .map(|i| format!("{}:{}", i.name, i.tag))
                    .collect();
                format!("only {}", tags.join(", "))
            };
            return Err(Error::InvalidContext {
                problem: format!(
                    "spec.serving: the bundle has {seen}; expected the kubegrid image of this kubegrid ({version}) under component {KUBEGRID_IMAGE_COMPONENT}, which runs the serving controller and the model cache; hint: `kubegrid image build --binary amd64=FILE --bundle DIR` with this release's static binary, then sign the bundle again"
                ),
            });
        };
        let digest = image.pull_digest(via_bundle_registry);
        ImageRef::new(&image.name, &image.tag, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Arch, ManifestImage};

    fn image(tag: &str, component: &str) -> ManifestImage {
        ManifestImage {
            name: "ghcr.io/kubegrid/kubegrid".into(),
            tag: tag.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            upstream_digest: None,
            arches: vec![Arch::Amd64],
            component: Some(component.into()),
        }
    }

    fn manifest(images: Vec<ManifestImage>) -> Manifest {
        Manifest {
            version: 2,
            name: None,
            kubernetes: None,
            files: Vec::new(),
            images,
        }
    }

    #[test]
    fn the_image_of_this_version_is_taken() {
        let m = manifest(vec![image("0.0.9", "operator"), image("0.1.0", "operator")]);
        let got = ServingContext::image_from_bundle(&m, "0.1.0", true).unwrap();
        assert_eq!(got.tag, "0.1.0");
        assert_eq!(
            got.reference(),
            format!("ghcr.io/kubegrid/kubegrid@sha256:{}", "a".repeat(64))
        );
    }

    #[test]
    fn a_bundle_without_it_is_refused_naming_what_it_has() {
        let err = ServingContext::image_from_bundle(&manifest(vec![]), "0.1.0", true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the bundle has no kubegrid image"), "{err}");
        assert!(err.contains("kubegrid image build"), "{err}");
        let other = manifest(vec![image("0.0.9", "operator"), image("0.1.0", "cilium")]);
        let err = ServingContext::image_from_bundle(&other, "0.1.0", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only ghcr.io/kubegrid/kubegrid:0.0.9;"),
            "{err}"
        );
    }
}
