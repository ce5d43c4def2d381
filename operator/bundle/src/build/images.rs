//! Pulling the release's pinned images into the bundle's one OCI layout (`images/`).

use kubegrid_oci::{Digest, ImageRef, Layout, PullFrom, PullOptions, RegistryEndpoint};
use kubegrid_plan::{IMAGES_DIR, ManifestImage};

use super::Build;
use crate::{Error, Result};

impl Build {
    /// Pulls every image the sources pin for this release and these arches into
    /// `images/`, each checked against its pin, and records it in the manifest. `mirror`, a
    /// registry URL, is asked instead of each image's own registry, with the upstream host as
    /// the first path element of the repository (`registry.k8s.io/pause` is repository
    /// `registry.k8s.io/pause` there), the convention `--mirror` uses for files. Returns the
    /// number of images added.
    pub async fn pull_images(&mut self, mirror: Option<&str>) -> Result<usize> {
        let planned = self.plan.images.clone();
        if planned.is_empty() {
            return Ok(0);
        }
        let from = match mirror {
            Some(url) => {
                PullFrom::Mirror(RegistryEndpoint::parse_url(url).map_err(|e| Error::BadUrl {
                    url: url.to_string(),
                    problem: e.to_string(),
                })?)
            }
            None => PullFrom::Upstream {
                extra_ca_pems: Vec::new(),
            },
        };
        let options = PullOptions {
            from,
            ..PullOptions::default()
        };
        let layout = Layout::create(self.dir.join(IMAGES_DIR)).map_err(|e| Error::PullImage {
            image: planned[0].reference(),
            source: Box::new(e),
        })?;
        for image in &planned {
            let reference = image.reference();
            let failed = |e: kubegrid_oci::Error| Error::PullImage {
                image: reference.clone(),
                source: Box::new(e),
            };
            let parsed = ImageRef::parse(&reference).map_err(failed)?;
            let pin = Digest::parse(&image.digest).map_err(failed)?;
            let arches: Vec<&str> = image.arches.iter().map(|a| a.as_str()).collect();
            tracing::info!(image = %reference, "pulling");
            let pulled = kubegrid_oci::pull(&layout, &parsed, &pin, &arches, &options)
                .await
                .map_err(failed)?;
            self.add_image(ManifestImage {
                name: image.name.clone(),
                tag: image.tag.clone(),
                digest: pulled.digest.as_str().to_string(),
                upstream_digest: Some(pulled.upstream_digest.as_str().to_string()),
                arches: image.arches.clone(),
                component: Some(image.component.clone()),
            });
        }
        Ok(planned.len())
    }
}
