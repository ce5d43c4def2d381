//! Verifying a layout: every image asked for is in index.json, and every blob reachable from it
//! exists, has the size its descriptor says and re-hashes to its name.

use std::{collections::BTreeSet, fs, io};

use sha2::{Digest as _, Sha256};

use crate::{
    digest::Digest,
    error::{Error, Result},
    layout::Layout,
    media::{ANNOTATION_REF_NAME, Descriptor, Kind, ManifestDoc, kind_of},
};

/// What [`Layout::verify`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Images checked.
    pub images: usize,
    /// Distinct blobs re-hashed (manifests, configs, layers).
    pub blobs: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
}

impl Layout {
    /// Checks that each of `digests` (top manifests or indexes, as a bundle manifest records
    /// them) is listed in index.json and that every blob reachable from it is present and
    /// intact. The first problem is returned, naming the image and the blob.
    ///
    /// This reads and hashes every byte: run it on a blocking thread from async code.
    pub fn verify(&self, digests: &[Digest]) -> Result<VerifyReport> {
        let listed = self.index_descriptors()?;
        let mut report = VerifyReport::default();
        let mut checked = BTreeSet::new();
        for digest in digests {
            let top = listed
                .iter()
                .find(|d| d.digest == digest.as_str())
                .ok_or_else(|| Error::VerifyImageMissing {
                    digest: digest.to_string(),
                    index: self.index_path(),
                })?;
            let image = top
                .annotations
                .get(ANNOTATION_REF_NAME)
                .cloned()
                .unwrap_or_else(|| digest.to_string());
            self.verify_tree(&image, top, &mut checked, &mut report)?;
            report.images += 1;
        }
        Ok(report)
    }

    /// Walks from `top` down to the layers, depth first.
    fn verify_tree(
        &self,
        image: &str,
        top: &Descriptor,
        checked: &mut BTreeSet<String>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let mut pending = vec![top.clone()];
        while let Some(descriptor) = pending.pop() {
            if !checked.insert(descriptor.digest.clone()) {
                continue;
            }
            let digest =
                Digest::parse(&descriptor.digest).map_err(|e| Error::VerifyBlobCorrupt {
                    image: image.to_owned(),
                    blob: descriptor.digest.clone(),
                    path: self.index_path(),
                    problem: format!("its descriptor's digest is invalid: {e}"),
                })?;
            let kind = kind_of(&descriptor.media_type);
            let content = self.verify_blob(image, &descriptor, &digest, kind != Kind::Blob)?;
            report.blobs += 1;
            report.bytes += descriptor.size;
            let Some(content) = content else { continue };
            let doc: ManifestDoc =
                serde_json::from_slice(&content).map_err(|e| Error::ParseManifest {
                    image: image.to_owned(),
                    blob: descriptor.digest.clone(),
                    problem: e.to_string(),
                })?;
            match kind {
                Kind::Index => pending.extend(doc.manifests),
                Kind::Manifest => pending.extend(doc.blobs().cloned()),
                Kind::Blob => {}
            }
        }
        Ok(())
    }

    /// Checks one blob's presence, size and hash; returns its bytes when `keep` (manifests are
    /// small and their children are needed next).
    fn verify_blob(
        &self,
        image: &str,
        descriptor: &Descriptor,
        digest: &Digest,
        keep: bool,
    ) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        let corrupt = |problem: String| Error::VerifyBlobCorrupt {
            image: image.to_owned(),
            blob: digest.to_string(),
            path: path.clone(),
            problem,
        };
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::VerifyBlobMissing {
                    image: image.to_owned(),
                    blob: digest.to_string(),
                    path,
                });
            }
            Err(source) => return Err(Error::ReadBlob { path, source }),
        };
        let read_err = |source| Error::ReadBlob {
            path: path.clone(),
            source,
        };
        let size = file.metadata().map_err(read_err)?.len();
        if size != descriptor.size {
            return Err(corrupt(format!(
                "it is {size} bytes, its descriptor says {}",
                descriptor.size
            )));
        }
        let mut hasher = Sha256::new();
        let content = if keep {
            let bytes = fs::read(&path).map_err(read_err)?;
            hasher.update(&bytes);
            Some(bytes)
        } else {
            io::copy(&mut file, &mut hasher).map_err(read_err)?;
            None
        };
        let actual = Digest::from_hasher(hasher);
        if &actual != digest {
            return Err(corrupt(format!("its content hashes to {actual}")));
        }
        Ok(content)
    }
}
