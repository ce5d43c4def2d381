//! Publishing a file while the coordinator downloads it.
//!
//! Publishing whole files left every follower idle until the coordinator had the first
//! file, and left the last file's whole copy for after the download: on the lab's links the
//! model took 1.66× (4 hosts) and 1.84× (8 hosts) of its link time M/B. Here the
//! coordinator hashes each piece once the download has written it, publishes the hash, and
//! seeds the piece at once, so followers copy a file a few pieces behind the download.
//!
//! The last piece's hash is published only after the whole file has verified against its
//! sha256, so a follower can never complete (and store under that sha256) a file the
//! coordinator did not verify: a corrupt file at the source leaves every follower at least
//! one piece short, and no node marks the model ready.

use std::{
    fs::File,
    os::unix::fs::FileExt as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use kubegrid_fanout::{GrowingSeed, PieceManifest, default_piece_size};
use kubegrid_serving::ModelSource;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::{
    Shared,
    control::{Published, PublishedFile},
};
use crate::{
    error::{Error, Result},
    hub::{Downloaded, RemoteFile, Resolved, part_path},
};

/// Downloads `file` (whose sha256 is `sha256`) to `dest`, publishing its pieces as they
/// arrive through `publisher`; returns the download and the file's complete manifest.
/// `done` bytes of the model are verified before this file.
#[expect(
    clippy::too_many_arguments,
    reason = "the coordinator's state for one file, passed once"
)]
pub(super) async fn download(
    shared: &Shared,
    model: &ModelSource,
    resolved: &Resolved,
    file: &RemoteFile,
    sha256: &str,
    dest: &Path,
    done: u64,
    publisher: &watch::Sender<Option<Published>>,
) -> Result<(Downloaded, PieceManifest)> {
    let part = part_path(dest);
    let manifest = PieceManifest::growing(sha256, file.size, default_piece_size(file.size));
    // Seeded before its first byte, so followers' have-polls find it at once instead of
    // backing off from a seed that does not know the blob yet. The download appends to the
    // same file (or truncates it, which the hasher notices), so this handle reads its bytes.
    let opened = open_part(&part).map_err(Error::io("open", &part))?;
    let mut grower = Grower {
        shared,
        publisher,
        path: file.path.clone(),
        seed: shared
            .fanout
            .seed_growing(Arc::new(manifest.clone()), opened),
        manifest,
    };
    grower.publish();
    let (bytes_tx, mut bytes_rx) = watch::channel(0u64);
    let reported = AtomicU64::new(0);
    let progress = |bytes| {
        shared.metrics.cached(&model.uri, done + bytes);
        // The download reports a chunk once tokio's file has taken it, which may be before
        // it reaches the kernel; the chunk before it has, as tokio finishes one write before
        // it takes the next. So the hasher reads only up to the previous report.
        let written = reported.swap(bytes, Ordering::Relaxed).min(bytes);
        bytes_tx.send_replace(written);
    };
    let downloaded = {
        let download = shared.cfg.hub.download(resolved, file, dest, &progress);
        let hashing = async {
            while bytes_rx.changed().await.is_ok() {
                let on_disk = *bytes_rx.borrow_and_update();
                grower.hash_up_to(&part, on_disk, false).await?;
            }
            std::future::pending::<Result<()>>().await
        };
        tokio::select! {
            downloaded = download => downloaded?,
            failed = hashing => return Err(failed.err().unwrap_or_else(|| Error::Fanout("the piece hasher stopped".into()))),
        }
    };
    // Verified and renamed: the rest of the pieces, the last one included, from `dest`.
    grower.hash_up_to(dest, file.size, true).await?;
    Ok((downloaded, grower.manifest))
}

/// One file's growing manifest and seed.
struct Grower<'a> {
    shared: &'a Shared,
    publisher: &'a watch::Sender<Option<Published>>,
    path: String,
    manifest: PieceManifest,
    seed: GrowingSeed,
}

impl Grower<'_> {
    /// Hashes the pieces `file` holds whole within its first `on_disk` bytes, except the last
    /// piece unless `verified`; publishes their hashes, then seeds them.
    async fn hash_up_to(&mut self, file: &Path, on_disk: u64, verified: bool) -> Result<()> {
        let count = self.manifest.piece_count();
        let first = self.manifest.known_pieces();
        let hashed_to = self.manifest.piece_span(first).0.min(self.manifest.size);
        if on_disk < hashed_to {
            // The source sent the file again from its start: the hashes published so far
            // describe bytes that are gone.
            return Err(Error::Fanout(format!(
                "the download of {} went back to byte {on_disk} after pieces up to byte \
                 {hashed_to} were published",
                self.path
            )));
        }
        let last = if verified {
            count
        } else {
            count.saturating_sub(1)
        };
        let mut next = first;
        while next < last {
            let (start, len) = self.manifest.piece_span(next);
            if start + len > on_disk {
                break;
            }
            next += 1;
        }
        if next == first {
            return Ok(());
        }
        let spans: Vec<(u64, u64)> = (first..next).map(|i| self.manifest.piece_span(i)).collect();
        let path = file.to_path_buf();
        let hashes = tokio::task::spawn_blocking(move || hash_pieces(&path, &spans))
            .await
            .map_err(|e| Error::Fanout(e.to_string()))??;
        self.manifest.pieces.extend(hashes);
        // The hash goes out before the piece is served, so a follower that hears of the piece
        // can check it.
        self.publish();
        for i in first..next {
            self.seed.announce(i);
        }
        Ok(())
    }

    /// Puts the manifest as it is now in the published state, as the last file.
    fn publish(&self) {
        let entry = PublishedFile {
            path: self.path.clone(),
            manifest: self.manifest.clone(),
        };
        let version = self.shared.board.next_version();
        self.publisher.send_modify(|p| {
            if let Some(p) = p {
                match p.files.last_mut() {
                    Some(last) if last.path == entry.path => *last = entry,
                    _ => p.files.push(entry),
                }
                p.version = version;
            }
        });
    }
}

/// The download's partial file, created empty when missing (never truncated), opened to
/// read.
fn open_part(part: &Path) -> std::io::Result<File> {
    if let Some(dir) = part.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)?;
    File::open(part)
}

/// Opens `path` and hashes the byte ranges `spans`, in order. Blocking.
fn hash_pieces(path: &Path, spans: &[(u64, u64)]) -> Result<Vec<String>> {
    let read_err = |e| Error::io("read", path)(e);
    let file = File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    let mut hashes = Vec::with_capacity(spans.len());
    for &(start, len) in spans {
        buf.resize(len as usize, 0);
        file.read_exact_at(&mut buf, start).map_err(read_err)?;
        hashes.push(hex::encode(Sha256::digest(&buf)));
    }
    Ok(hashes)
}
