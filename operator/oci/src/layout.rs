//! An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Blobs are written to a temporary file in their final directory, hashed while written, and
//! renamed into place only when the hash matches, so a blob file under its digest's name is
//! always complete. index.json is replaced the same way.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::{
    digest::Digest,
    error::{Error, Result},
    media::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, OCI_INDEX},
};

/// The content of the `oci-layout` file.
const LAYOUT_FILE_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
///
/// Clones share one lock around index.json updates, so concurrent pulls into one layout must
/// use clones of one `Layout` rather than opening the directory twice.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
    index_lock: Arc<Mutex<()>>,
}

/// An image recorded in index.json.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutImage {
    /// Its `org.opencontainers.image.ref.name`, e.g. `registry.k8s.io/pause:3.10`.
    pub name: String,
    /// The descriptor of its top manifest or index.
    pub descriptor: Descriptor,
}

/// index.json as stored; unknown fields are kept.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

impl IndexFile {
    fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

impl Layout {
    /// Creates a layout at `root` (and its parents), or opens the one already there.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|source| Error::CreateLayout {
            path: blobs.clone(),
            source,
        })?;
        let layout_file = root.join("oci-layout");
        if !layout_file.exists() {
            write_atomic(&layout_file, LAYOUT_FILE_CONTENT.as_bytes()).map_err(|source| {
                Error::CreateLayout {
                    path: layout_file.clone(),
                    source,
                }
            })?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            let layout = Self::at(root.clone());
            layout.write_index(&IndexFile::empty())?;
        }
        Self::open(root)
    }

    /// Opens an existing layout, checking `oci-layout` and that index.json parses.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let layout_file = root.join("oci-layout");
        let bad = |problem: String| Error::OpenLayout {
            path: root.clone(),
            problem,
        };
        let text = fs::read_to_string(&layout_file)
            .map_err(|e| bad(format!("cannot read {}: {e}", layout_file.display())))?;
        let parsed: LayoutFile = serde_json::from_str(&text)
            .map_err(|e| bad(format!("oci-layout does not parse: {e}")))?;
        if parsed.image_layout_version != "1.0.0" {
            return Err(bad(format!(
                "imageLayoutVersion is {}, expected 1.0.0",
                parsed.image_layout_version
            )));
        }
        let layout = Self::at(root);
        layout.read_index()?;
        Ok(layout)
    }

    fn at(root: PathBuf) -> Self {
        Self {
            root,
            index_lock: Arc::new(Mutex::new(())),
        }
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob named `digest` is present. Presence is trusted (blobs only appear
    /// complete and verified); [`Layout::verify`] re-hashes.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a whole blob; meant for manifests and configs, not layers.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|source| Error::ReadBlob { path, source })
    }

    /// Stores `bytes` as a blob and returns its digest; a blob already present is left alone.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            write_atomic(&path, bytes).map_err(|source| Error::WriteBlob { path, source })?;
        }
        Ok(digest)
    }

    /// Stores a blob arriving as a byte stream under `expected`, hashing while writing; the blob
    /// appears only if the content hashes to `expected`. Returns the number of bytes written.
    pub async fn write_blob_stream<S, B>(&self, expected: &Digest, stream: S) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<B>>,
        B: AsRef<[u8]>,
    {
        let final_path = self.blob_path(expected);
        let dir = self.root.join("blobs/sha256");
        let write_err = |source| Error::WriteBlob {
            path: final_path.clone(),
            source,
        };
        let temp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        let mut file = tokio::fs::File::from_std(temp.as_file().try_clone().map_err(write_err)?);
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| Error::ReceiveBlob {
                blob: expected.to_string(),
                source,
            })?;
            let chunk = chunk.as_ref();
            hasher.update(chunk);
            file.write_all(chunk).await.map_err(write_err)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(write_err)?;
        drop(file);
        make_readable(temp.as_file()).map_err(write_err)?;
        let actual = Digest::from_hasher(hasher);
        if &actual != expected {
            return Err(Error::BlobDigestMismatch {
                blob: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        temp.persist(&final_path).map_err(|e| write_err(e.error))?;
        Ok(written)
    }

    /// The images index.json names, in index order.
    pub fn images(&self) -> Result<Vec<LayoutImage>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|descriptor| {
                let name = descriptor.annotations.get(ANNOTATION_REF_NAME)?.clone();
                Some(LayoutImage { name, descriptor })
            })
            .collect())
    }

    /// The descriptor index.json records under `name`, if any.
    pub fn image(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .images()?
            .into_iter()
            .rev()
            .find(|image| image.name == name)
            .map(|image| image.descriptor))
    }

    /// Records `descriptor` in index.json under `name` (a full reference such as
    /// `registry.k8s.io/pause:3.10`), replacing an entry of the same name. The name goes into
    /// both `org.opencontainers.image.ref.name` and `io.containerd.image.name`.
    pub fn set_image(&self, name: &str, mut descriptor: Descriptor) -> Result<()> {
        descriptor
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
        descriptor
            .annotations
            .insert(ANNOTATION_CONTAINERD_NAME.to_owned(), name.to_owned());
        // A poisoned lock only means another update panicked; index.json itself is replaced
        // atomically, so it is still whole.
        let _guard = self
            .index_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(name));
        index.manifests.push(descriptor);
        self.write_index(&index)
    }

    /// index.json's path.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// All descriptors in index.json, named or not.
    pub(crate) fn index_descriptors(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.manifests)
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(|e| Error::ReadIndex {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        let index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| Error::ReadIndex {
            path: path.clone(),
            problem: format!("does not parse as an OCI index: {e}"),
        })?;
        if index.schema_version != 2 {
            return Err(Error::ReadIndex {
                path,
                problem: format!("schemaVersion is {}, expected 2", index.schema_version),
            });
        }
        Ok(index)
    }

    fn write_index(&self, index: &IndexFile) -> Result<()> {
        let path = self.index_path();
        let mut bytes = serde_json::to_vec_pretty(index).expect("an index always serializes");
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(|source| Error::WriteIndex { path, source })
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    make_readable(temp.as_file())?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Temporary files are created 0600; layouts are read by other users (the registry, the HTTP
/// server handing blobs to hosts), so the final files get 0644 like any other download.
fn make_readable(file: &fs::File) -> std::io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(0o644))
}
