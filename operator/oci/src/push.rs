//! Pushing an image from a layout into a registry: blobs the registry lacks, then the
//! manifests, then the top manifest or index under its tag.

use std::collections::BTreeSet;

use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use oci_client::{Client, errors::OciDistributionError};
use tokio::io::AsyncReadExt as _;

use crate::{
    digest::Digest,
    error::{Error, Result},
    layout::Layout,
    media::{Descriptor, Kind, ManifestDoc, kind_of},
    reference::{ImageRef, RepositoryNaming, target_repository},
    registry::RegistryEndpoint,
};

/// Read size for streaming a blob file into an upload.
const UPLOAD_CHUNK: usize = 1 << 20;

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// How the image's repository is named on the target registry; see [`RepositoryNaming`]
    /// for why kubegrid's bundle registry uses [`RepositoryNaming::WithRegistry`].
    pub naming: RepositoryNaming,
    /// How many blobs to upload at once.
    pub concurrency: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            naming: RepositoryNaming::WithoutRegistry,
            concurrency: 4,
        }
    }
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// The image as pushed: `10.0.0.5:5000/pause:3.10`.
    pub target: ImageRef,
    /// The top manifest or index pushed (as stored in the layout).
    pub digest: Digest,
    /// Blobs (configs and layers) uploaded.
    pub blobs_pushed: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Manifests and indexes put, the top one included.
    pub manifests_pushed: usize,
}

/// Pushes `image` (its name in the layout, e.g. `registry.k8s.io/pause:3.10`) from `layout`
/// into `target` under the repository `options.naming` gives and the same tag (or, for a
/// digest-only image, by digest).
///
/// Pushing again is cheap: blobs the registry has are skipped after a HEAD request and only
/// the small manifests are put again. Manifests are pushed as the exact bytes in the layout, so
/// digests are unchanged.
pub async fn push(
    layout: &Layout,
    image: &ImageRef,
    target: &RegistryEndpoint,
    options: &PushOptions,
) -> Result<PushedImage> {
    let name = image.layout_name();
    let Some(top) = layout.image(&name)? else {
        return Err(Error::PushImageNotInLayout {
            image: name,
            layout: layout.root().to_owned(),
            held: layout.images()?.into_iter().map(|i| i.name).collect(),
        });
    };
    let top_digest = Digest::parse(&top.digest)?;
    let repository = target.repository(&target_repository(image, options.naming));
    let graph = Graph::read(layout, &name, &top)?;
    let sink = Sink {
        image: name,
        endpoint: target.clone(),
        repository,
        client: target.client().await?,
    };

    // The stream yields owned descriptors and boxed `Send` futures: over `&Descriptor`,
    // rustc cannot prove the closure's futures Send for every lifetime (rust#102211), and
    // the operator runs this inside a spawned reconcile.
    let sink = &sink;
    let uploaded: Vec<bool> = futures::stream::iter(graph.blobs.iter().cloned())
        .map(|blob| async move { sink.push_blob(layout, &blob).await }.boxed())
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    for (descriptor, bytes) in &graph.manifests {
        sink.push_manifest(descriptor, bytes, &descriptor.digest)
            .await?;
    }
    let top_bytes = layout.read_blob(&top_digest)?;
    let top_reference = image
        .tag()
        .map_or_else(|| top_digest.to_string(), str::to_owned);
    sink.push_manifest(&top, &top_bytes, &top_reference).await?;

    let pushed = uploaded.iter().filter(|u| **u).count();
    Ok(PushedImage {
        target: ImageRef::new(
            target.host(),
            sink.repository.clone(),
            image.tag().map(str::to_owned),
            Some(top_digest.clone()),
        ),
        digest: top_digest,
        blobs_pushed: pushed,
        blobs_present: uploaded.len() - pushed,
        manifests_pushed: graph.manifests.len() + 1,
    })
}

/// Everything below a top manifest or index, read from the layout.
struct Graph {
    /// Manifests below the top, children before parents (a registry refuses an index whose
    /// manifests it does not have), with their bytes.
    manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Configs and layers, each once.
    blobs: Vec<Descriptor>,
}

impl Graph {
    fn read(layout: &Layout, image: &str, top: &Descriptor) -> Result<Self> {
        let mut graph = Self {
            manifests: Vec::new(),
            blobs: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        graph.visit(layout, image, top, true, &mut seen)?;
        Ok(graph)
    }

    fn visit(
        &mut self,
        layout: &Layout,
        image: &str,
        descriptor: &Descriptor,
        is_top: bool,
        seen: &mut BTreeSet<String>,
    ) -> Result<()> {
        if !seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        let kind = kind_of(&descriptor.media_type);
        if kind == Kind::Blob {
            self.blobs.push(descriptor.clone());
            return Ok(());
        }
        let digest = Digest::parse(&descriptor.digest)?;
        let bytes = layout.read_blob(&digest)?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(Error::VerifyBlobCorrupt {
                image: image.to_owned(),
                blob: digest.to_string(),
                path: layout.blob_path(&digest),
                problem: format!("its content hashes to {actual}"),
            });
        }
        let doc: ManifestDoc =
            serde_json::from_slice(&bytes).map_err(|e| Error::ParseManifest {
                image: image.to_owned(),
                blob: digest.to_string(),
                problem: e.to_string(),
            })?;
        match kind {
            Kind::Index => {
                for child in &doc.manifests {
                    self.visit(layout, image, child, false, seen)?;
                }
            }
            Kind::Manifest => {
                for blob in doc.blobs() {
                    self.visit(layout, image, blob, false, seen)?;
                }
            }
            Kind::Blob => {}
        }
        if !is_top {
            self.manifests.push((descriptor.clone(), bytes));
        }
        Ok(())
    }
}

/// The registry and repository an image is pushed to.
struct Sink {
    image: String,
    endpoint: RegistryEndpoint,
    repository: String,
    client: Client,
}

impl Sink {
    /// Uploads one blob unless the registry has it; returns whether it uploaded.
    async fn push_blob(&self, layout: &Layout, blob: &Descriptor) -> Result<bool> {
        let digest = Digest::parse(&blob.digest)?;
        let oci_ref = self.endpoint.digest_ref(&self.repository, digest.as_str());
        let exists = self
            .client
            .blob_exists(&oci_ref, digest.as_str())
            .await
            .map_err(|source| Error::CheckRegistry {
                registry: self.endpoint.host().to_owned(),
                repository: self.repository.clone(),
                digest: digest.to_string(),
                source: Box::new(source),
            })?;
        if exists {
            return Ok(false);
        }
        let path = layout.blob_path(&digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| Error::ReadBlob { path, source })?;
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0; UPLOAD_CHUNK];
            let read = file.read(&mut buf).await?;
            if read == 0 {
                return Ok::<_, OciDistributionError>(None);
            }
            buf.truncate(read);
            Ok(Some((bytes::Bytes::from(buf), file)))
        });
        self.client
            .push_blob_stream(&oci_ref, chunks, digest.as_str(), Some(blob.size))
            .await
            .map_err(|source| Error::PushBlob {
                image: self.image.clone(),
                blob: digest.to_string(),
                target: format!("{}/{}", self.endpoint.host(), self.repository),
                source: Box::new(source),
            })?;
        Ok(true)
    }

    /// Puts a manifest's exact bytes under `reference` (a tag or its digest).
    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        bytes: &[u8],
        reference: &str,
    ) -> Result<()> {
        let (oci_ref, separator) = if reference.starts_with("sha256:") {
            (self.endpoint.digest_ref(&self.repository, reference), '@')
        } else {
            (self.endpoint.tag_ref(&self.repository, reference), ':')
        };
        let push_err = |source| Error::PushManifest {
            image: self.image.clone(),
            manifest: descriptor.digest.clone(),
            target: format!(
                "{}/{}{separator}{reference}",
                self.endpoint.host(),
                self.repository
            ),
            source: Box::new(source),
        };
        let content_type = http::HeaderValue::from_str(&descriptor.media_type).map_err(|e| {
            push_err(OciDistributionError::GenericError(Some(format!(
                "media type {:?} is not a valid header value: {e}",
                descriptor.media_type
            ))))
        })?;
        self.client
            .push_manifest_raw(&oci_ref, bytes.to_vec(), content_type)
            .await
            .map_err(push_err)?;
        Ok(())
    }
}
