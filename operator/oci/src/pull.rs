//! Pulling an image, pinned by digest, from its registry or a mirror into a layout.

use std::collections::BTreeSet;

use futures::{StreamExt as _, TryStreamExt as _};
use oci_client::{Client, secrets::RegistryAuth};

use crate::{
    digest::Digest,
    error::{Error, Result},
    layout::Layout,
    media::{
        ANNOTATION_DOCKER_REFERENCE_TYPE, Descriptor, ImageConfig, Kind, MANIFEST_TYPES,
        ManifestDoc, kind_of,
    },
    reference::ImageRef,
    registry::{RegistryEndpoint, Trust},
};

/// Where a pull reads an image from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullFrom {
    /// The image's own registry: HTTPS trusting the system's roots plus these extra CA
    /// certificates (PEM), or plain HTTP for a loopback registry
    /// ([`RegistryEndpoint::for_registry`]).
    Upstream {
        /// Extra CAs, e.g. of a TLS-intercepting proxy.
        extra_ca_pems: Vec<Vec<u8>>,
    },
    /// A mirror that keeps the upstream host as the first path element of the repository:
    /// `registry.k8s.io/pause` through `http://127.0.0.1:5001` is repository
    /// `registry.k8s.io/pause` on `127.0.0.1:5001` (the convention `--mirror` also uses for
    /// files).
    Mirror(RegistryEndpoint),
    /// A registry standing in for the image's own under the same repository path:
    /// `registry.k8s.io/pause` is repository `pause` there. This is what containerd asks a
    /// `certs.d` mirror host for, so pulling from kubegrid's in-cluster registry this way
    /// checks what nodes will see.
    Registry(RegistryEndpoint),
}

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Where from.
    pub from: PullFrom,
    /// How many blobs to download at once.
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            from: PullFrom::Upstream {
                extra_ca_pems: Vec::new(),
            },
            concurrency: 8,
        }
    }
}

/// What a pull stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// Registry and repository: `registry.k8s.io/pause`.
    pub name: String,
    /// The tag pulled, if the reference had one.
    pub tag: Option<String>,
    /// The top manifest or index as stored in the layout (differs from `upstream_digest` when
    /// platforms were dropped from the index).
    pub digest: Digest,
    /// What the reference resolved to upstream, equal to the pin.
    pub upstream_digest: Digest,
    /// The architectures stored, sorted.
    pub arches: Vec<String>,
    /// Blobs (configs and layers) downloaded.
    pub blobs_fetched: usize,
    /// Blobs skipped because the layout already had them.
    pub blobs_present: usize,
    /// Bytes downloaded for those blobs.
    pub bytes_fetched: u64,
}

/// Pulls `image` into `layout`, refusing it unless it resolves to `pin`, and keeps only the
/// linux images for `arches` (Go names: `amd64`, `arm64`; empty means every linux platform) of a
/// multi-platform index.
///
/// Every manifest and blob is checked against its digest. When the index lists more than the
/// wanted platforms (or attestation manifests), a new index with only the wanted entries is
/// stored and recorded in index.json; [`PulledImage::upstream_digest`] keeps the pin. Blobs
/// already in the layout are not downloaded again.
pub async fn pull(
    layout: &Layout,
    image: &ImageRef,
    pin: &Digest,
    arches: &[&str],
    options: &PullOptions,
) -> Result<PulledImage> {
    let wanted: BTreeSet<String> = arches.iter().map(|a| (*a).to_owned()).collect();
    let (endpoint, repository) = match &options.from {
        PullFrom::Upstream { extra_ca_pems } => {
            let own = RegistryEndpoint::for_registry(image.registry());
            let own = if extra_ca_pems.is_empty() {
                own
            } else {
                own.with_trust(Trust::SystemAnd(extra_ca_pems.clone()))
            };
            (own, image.repository().to_owned())
        }
        PullFrom::Mirror(mirror) => (mirror.clone(), mirror.repository(&image.name())),
        PullFrom::Registry(registry) => (registry.clone(), registry.repository(image.repository())),
    };
    let source = Source {
        image: image.to_string(),
        client: endpoint.client().await?,
        endpoint,
        repository,
    };

    let top_ref = match (image.tag(), image.digest()) {
        (Some(tag), _) => tag.to_owned(),
        (None, Some(digest)) => digest.to_string(),
        (None, None) => "latest".to_owned(),
    };
    let top_bytes = source.manifest(&top_ref).await?;
    let upstream_digest = Digest::of(&top_bytes);
    if &upstream_digest != pin {
        return Err(Error::PinMismatch {
            image: source.image.clone(),
            seen: upstream_digest.to_string(),
            expected: pin.to_string(),
        });
    }
    let top = source.parse(&upstream_digest, &top_bytes)?;
    let top_type = top.effective_media_type().to_owned();

    let mut manifests: Vec<(Descriptor, Vec<u8>)> = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut fetched = Fetched::default();
    let (stored_top, stored_arches) = match kind_of(&top_type) {
        Kind::Index => {
            let kept = select_platforms(&source.image, &top.manifests, &wanted)?;
            for entry in &kept {
                let media_type = entry.media_type.clone();
                if kind_of(&media_type) != Kind::Manifest {
                    return Err(Error::UnsupportedManifest {
                        image: source.image.clone(),
                        manifest: entry.digest.clone(),
                        media_type,
                    });
                }
                let bytes = source.manifest_by_digest(&entry.digest).await?;
                let doc = source.parse(&Digest::parse(&entry.digest)?, &bytes)?;
                blobs.extend(doc.blobs().cloned());
                manifests.push((entry.clone(), bytes));
            }
            let stored = if kept.len() == top.manifests.len() {
                top_bytes
            } else {
                filtered_index(&top_bytes, &kept)
            };
            let arches: BTreeSet<String> = kept
                .iter()
                .filter_map(|e| e.platform.as_ref().map(|p| p.architecture.clone()))
                .collect();
            (stored, arches.into_iter().collect())
        }
        Kind::Manifest => {
            let config = top.config.clone().ok_or_else(|| Error::ParseManifest {
                image: source.image.clone(),
                blob: upstream_digest.to_string(),
                problem: "an image manifest without a config".to_owned(),
            })?;
            // A single-platform image states its platform only in its config, so that comes
            // first; the layers are not worth fetching for an arch that is not wanted.
            fetched.add(
                source
                    .fetch_blobs(layout, std::slice::from_ref(&config), 1)
                    .await?,
            );
            let parsed: ImageConfig =
                serde_json::from_slice(&layout.read_blob(&Digest::parse(&config.digest)?)?)
                    .map_err(|e| Error::ParseManifest {
                        image: source.image.clone(),
                        blob: config.digest.clone(),
                        problem: format!("its config does not parse: {e}"),
                    })?;
            let has = format!("{}/{}", parsed.os, parsed.architecture);
            if let Some(missing) = wanted
                .iter()
                .find(|arch| parsed.os != "linux" || &parsed.architecture != *arch)
            {
                return Err(Error::MissingArch {
                    image: source.image.clone(),
                    arch: missing.clone(),
                    available: vec![has],
                });
            }
            blobs.extend(top.layers.iter().cloned());
            (top_bytes, vec![parsed.architecture])
        }
        Kind::Blob => {
            return Err(Error::UnsupportedManifest {
                image: source.image.clone(),
                manifest: upstream_digest.to_string(),
                media_type: top_type,
            });
        }
    };

    fetched.add(
        source
            .fetch_blobs(layout, &blobs, options.concurrency)
            .await?,
    );
    // Children before parents: a layout never names a manifest whose content is missing.
    for (_, bytes) in &manifests {
        layout.write_blob(bytes)?;
    }
    let digest = layout.write_blob(&stored_top)?;
    layout.set_image(
        &image.layout_name(),
        Descriptor {
            media_type: top_type,
            digest: digest.to_string(),
            size: stored_top.len() as u64,
            platform: None,
            annotations: Default::default(),
            extra: Default::default(),
        },
    )?;
    Ok(PulledImage {
        name: image.name(),
        tag: image.tag().map(str::to_owned),
        digest,
        upstream_digest,
        arches: stored_arches,
        blobs_fetched: fetched.count,
        blobs_present: fetched.present,
        bytes_fetched: fetched.bytes,
    })
}

/// The index entries to keep: linux images of a wanted arch (of every arch when none is named),
/// never attestations. Refuses when a wanted arch has no entry.
fn select_platforms(
    image: &str,
    entries: &[Descriptor],
    wanted: &BTreeSet<String>,
) -> Result<Vec<Descriptor>> {
    let images: Vec<&Descriptor> = entries
        .iter()
        .filter(|e| !e.annotations.contains_key(ANNOTATION_DOCKER_REFERENCE_TYPE))
        .filter(|e| e.platform.as_ref().is_some_and(|p| p.os == "linux"))
        .collect();
    let available: BTreeSet<&str> = images
        .iter()
        .filter_map(|e| e.platform.as_ref().map(|p| p.architecture.as_str()))
        .collect();
    if let Some(missing) = wanted.iter().find(|a| !available.contains(a.as_str())) {
        return Err(Error::MissingArch {
            image: image.to_owned(),
            arch: missing.clone(),
            available: available.iter().map(|a| format!("linux/{a}")).collect(),
        });
    }
    Ok(images
        .into_iter()
        .filter(|e| {
            wanted.is_empty()
                || e.platform
                    .as_ref()
                    .is_some_and(|p| wanted.contains(&p.architecture))
        })
        .cloned()
        .collect())
}

/// The upstream index with only `kept` in its `manifests`, every other field as served.
fn filtered_index(upstream: &[u8], kept: &[Descriptor]) -> Vec<u8> {
    let keep: BTreeSet<&str> = kept.iter().map(|d| d.digest.as_str()).collect();
    let mut index: serde_json::Value =
        serde_json::from_slice(upstream).expect("the index parsed as a manifest document");
    if let Some(entries) = index
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    {
        entries.retain(|entry| {
            entry
                .get("digest")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|digest| keep.contains(digest))
        });
    }
    serde_json::to_vec(&index).expect("a JSON value always serializes")
}

/// Blob download counts.
#[derive(Default)]
struct Fetched {
    count: usize,
    present: usize,
    bytes: u64,
}

impl Fetched {
    fn add(&mut self, other: Fetched) {
        self.count += other.count;
        self.present += other.present;
        self.bytes += other.bytes;
    }
}

/// The registry and repository an image is pulled from.
struct Source {
    image: String,
    endpoint: RegistryEndpoint,
    repository: String,
    client: Client,
}

impl Source {
    /// Fetches a manifest by tag or digest, as served.
    async fn manifest(&self, reference: &str) -> Result<Vec<u8>> {
        let oci_ref = if reference.starts_with("sha256:") {
            self.endpoint.digest_ref(&self.repository, reference)
        } else {
            self.endpoint.tag_ref(&self.repository, reference)
        };
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&oci_ref, &RegistryAuth::Anonymous, &MANIFEST_TYPES)
            .await
            .map_err(|source| Error::FetchManifest {
                image: self.image.clone(),
                reference: format!("{}:{reference}", self.repository),
                registry: self.endpoint.host().to_owned(),
                source: Box::new(source),
            })?;
        Ok(bytes.to_vec())
    }

    /// Fetches a manifest by digest and checks that it hashes to it.
    async fn manifest_by_digest(&self, digest: &str) -> Result<Vec<u8>> {
        let bytes = self.manifest(digest).await?;
        let actual = Digest::of(&bytes);
        if actual.as_str() != digest {
            return Err(Error::ManifestDigestMismatch {
                image: self.image.clone(),
                registry: self.endpoint.host().to_owned(),
                manifest: digest.to_owned(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    fn parse(&self, digest: &Digest, bytes: &[u8]) -> Result<ManifestDoc> {
        serde_json::from_slice(bytes).map_err(|e| Error::ParseManifest {
            image: self.image.clone(),
            blob: digest.to_string(),
            problem: e.to_string(),
        })
    }

    /// Downloads the blobs the layout lacks, up to `concurrency` at once.
    async fn fetch_blobs(
        &self,
        layout: &Layout,
        blobs: &[Descriptor],
        concurrency: usize,
    ) -> Result<Fetched> {
        let mut seen = BTreeSet::new();
        let mut wanted = Vec::new();
        let mut fetched = Fetched::default();
        for blob in blobs {
            let digest = Digest::parse(&blob.digest)?;
            if !seen.insert(digest.clone()) {
                continue;
            }
            if layout.has_blob(&digest) {
                fetched.present += 1;
            } else {
                wanted.push(digest);
            }
        }
        let sizes: Vec<u64> = futures::stream::iter(wanted)
            .map(|digest| self.fetch_blob(layout, digest))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        fetched.count = sizes.len();
        fetched.bytes = sizes.iter().sum();
        Ok(fetched)
    }

    async fn fetch_blob(&self, layout: &Layout, digest: Digest) -> Result<u64> {
        let pull_err = |source| Error::PullBlob {
            image: self.image.clone(),
            blob: digest.to_string(),
            registry: self.endpoint.host().to_owned(),
            source: Box::new(source),
        };
        let oci_ref = self.endpoint.digest_ref(&self.repository, digest.as_str());
        let stream = self
            .client
            .pull_blob_stream(&oci_ref, digest.as_str())
            .await
            .map_err(|source| {
                pull_err(Error::FetchBlob {
                    source: Box::new(source),
                })
            })?;
        layout
            .write_blob_stream(&digest, stream.stream)
            .await
            .map_err(pull_err)
    }
}
