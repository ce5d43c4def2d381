//! Blobs on disk: the partial file a download fills piece by piece, and the content store it
//! is renamed into once whole.
//!
//! A download writes to `<store>/.fanout/<sha256>`, a sparse file of the blob's size, piece by
//! piece in any order. A restarted peer re-verifies every piece that file holds against the
//! manifest and fetches only the rest; nothing records which pieces were written, because a
//! record can be stale after a crash and a hash cannot. When every piece is there and
//! verified, the file is synced (see `flush`) and renamed to `<store>/<sha256>`, so a reader
//! of the store never sees half a blob.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    bitfield::Bitfield,
    error::{Error, Result},
    manifest::PieceManifest,
};

/// The partial directory's name inside a store; not the agent's `.partial`, whose files are
/// prefixes of a blob, while these are filled in any order.
pub const PARTIAL_DIR: &str = ".fanout";

/// Where blob `sha256` lives once whole.
pub fn stored_path(store: &Path, sha256: &str) -> PathBuf {
    store.join(sha256)
}

/// Where blob `sha256`'s partial file lives while it is filled.
pub fn partial_path(store: &Path, sha256: &str) -> PathBuf {
    store.join(PARTIAL_DIR).join(sha256)
}

/// A blob being filled.
#[derive(Debug)]
pub struct PartialBlob {
    manifest: Arc<PieceManifest>,
    file: Arc<File>,
    path: PathBuf,
    store: PathBuf,
}

/// What opening a partial blob found.
#[derive(Debug)]
pub struct Opened {
    /// The blob, to fill.
    pub blob: PartialBlob,
    /// The pieces already on disk that verified.
    pub have: Bitfield,
    /// Whether a partial file of the blob's size was there already (a resumed download).
    pub existed: bool,
}

impl PartialBlob {
    /// Opens (creating when missing) the partial file of `manifest`'s blob in `store`, and
    /// verifies each piece it already holds. Blocking: call from a blocking thread.
    pub fn open(store: &Path, manifest: Arc<PieceManifest>) -> Result<Opened> {
        let dir = store.join(PARTIAL_DIR);
        let write_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::WriteBlob { op, path, source }
        };
        fs::create_dir_all(&dir).map_err(write_err("create directory", &dir))?;
        let path = partial_path(store, &manifest.sha256);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err("open", &path))?;
        let len = file
            .metadata()
            .map_err(|source| Error::ReadBlob {
                path: path.clone(),
                source,
            })?
            .len();
        let mut have = Bitfield::new(manifest.piece_count());
        let resumed = existed && len == manifest.size;
        if resumed {
            have = verify_pieces(&file, &path, &manifest)?;
        } else if len != manifest.size {
            file.set_len(0).map_err(write_err("truncate", &path))?;
            file.set_len(manifest.size)
                .map_err(write_err("extend", &path))?;
        }
        Ok(Opened {
            blob: PartialBlob {
                manifest,
                file: Arc::new(file),
                path,
                store: store.to_path_buf(),
            },
            have,
            existed: resumed,
        })
    }

    /// The open file, for serving verified pieces while the rest arrive.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Where the partial file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` at `offset`: part of a piece as it arrives (blocking, but a chunk into
    /// the page cache).
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    /// Renames the file into the store once `have`, the pieces verified against the signed
    /// manifest, covers the whole blob; the caller has synced the file. Those pieces fix the
    /// blob's bytes, so its name is its sha256 without a second pass over it. Blocking.
    pub fn finish(self, have: &Bitfield) -> Result<PathBuf> {
        let wr = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::WriteBlob { op, path, source }
        };
        let total = self.manifest.piece_count();
        if have.len() != total || !have.is_full() {
            return Err(Error::IncompleteBlob {
                blob: self.manifest.sha256.clone(),
                missing: total.saturating_sub(have.count()),
                total,
            });
        }
        let to = stored_path(&self.store, &self.manifest.sha256);
        fs::rename(&self.path, &to).map_err(wr("rename", &self.path))?;
        File::open(&self.store)
            .and_then(|d| d.sync_all())
            .map_err(wr("sync", &self.store))?;
        Ok(to)
    }
}

/// The pieces of `file` that hash to the manifest's entries.
fn verify_pieces(file: &File, path: &Path, manifest: &PieceManifest) -> Result<Bitfield> {
    let mut have = Bitfield::new(manifest.piece_count());
    let mut buf = vec![0u8; manifest.piece_size as usize];
    // Only pieces whose hash is known can verify (a growing manifest knows a prefix).
    for i in 0..manifest.known_pieces().min(manifest.piece_count()) {
        let (start, len) = manifest.piece_span(i);
        let buf = &mut buf[..len as usize];
        file.read_exact_at(buf, start)
            .map_err(|source| Error::ReadBlob {
                path: path.to_path_buf(),
                source,
            })?;
        if manifest.check_piece(i, buf) {
            have.set(i);
        }
    }
    Ok(have)
}
