//! The whole blob's sha256, computed while the download runs.
//!
//! Pieces arrive in any order, but sha256 needs the bytes in order, so a blocking thread
//! hashes the file's pieces as the prefix of complete pieces grows, reading them back from
//! the page cache. It also flushes the file to disk every [`SYNC_EVERY`] bytes hashed. When
//! the last piece lands, all that is left is the tail: no second pass over the whole blob and
//! no burst of writeback at the end (on a machine whose hosts share one disk, twelve such
//! bursts at once were the end of a transfer).

use std::{collections::BTreeSet, fs::File, os::unix::fs::FileExt, sync::Arc, sync::mpsc};

use sha2::{Digest, Sha256};

use crate::manifest::PieceManifest;

/// Bytes hashed between flushes.
const SYNC_EVERY: u64 = 64 << 20;

/// The running hash: tell it each verified piece, then ask for the digest.
pub(crate) struct RunningDigest {
    tx: Option<mpsc::Sender<u32>>,
    done: tokio::task::JoinHandle<std::io::Result<String>>,
}

impl RunningDigest {
    /// Starts hashing `file`, whose pieces in `have` are already there.
    pub(crate) fn start(
        file: Arc<File>,
        manifest: Arc<PieceManifest>,
        have: impl IntoIterator<Item = u32>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<u32>();
        for p in have {
            let _ = tx.send(p);
        }
        let done = tokio::task::spawn_blocking(move || hash_in_order(&file, &manifest, &rx));
        Self { tx: Some(tx), done }
    }

    /// Piece `p` is verified and written.
    pub(crate) fn piece(&self, p: u32) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(p);
        }
    }

    /// The sha256 of the whole file, once every piece was reported, with the file synced.
    pub(crate) async fn finish(mut self) -> std::io::Result<String> {
        drop(self.tx.take());
        self.done.await.map_err(std::io::Error::other)?
    }
}

fn hash_in_order(
    file: &File,
    m: &PieceManifest,
    rx: &mpsc::Receiver<u32>,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut ready = BTreeSet::new();
    let mut next = 0u32;
    let mut buf = vec![0u8; m.piece_size as usize];
    let mut unsynced = 0u64;
    // The channel closes when the download is over; whatever is still missing then was never
    // reported, and the caller compares a digest that cannot match.
    while let Ok(p) = rx.recv() {
        ready.insert(p);
        while ready.remove(&next) {
            let (start, len) = m.piece_span(next);
            let chunk = &mut buf[..len as usize];
            file.read_exact_at(chunk, start)?;
            hasher.update(&*chunk);
            unsynced += len;
            if unsynced >= SYNC_EVERY {
                file.sync_data()?;
                unsynced = 0;
            }
            next += 1;
        }
    }
    file.sync_all()?;
    Ok(hex::encode(hasher.finalize()))
}
