//! Writeback while the download runs.
//!
//! A blob is fsynced before it is renamed into the store. Left to the end, that sync is one
//! burst of the whole blob's writeback, and on a machine whose hosts share one disk twelve
//! such bursts at once were the end of a transfer. So a blocking thread syncs the file each
//! time another [`SYNC_EVERY`] bytes of verified pieces have been written, and the final sync
//! finds little left to do.
//!
//! There is no second pass that hashes the whole blob: every piece was checked against the
//! signed manifest before it was written, and the seed built that manifest from the file whose
//! sha256 it checked, so the pieces fix the whole blob. Such a pass would read the bytes back
//! from the page cache, not from the disk, so it would catch no fault of the disk either; what
//! it cost is measured in docs/distribution.md.

use std::{fs::File, sync::Arc, sync::mpsc};

/// Bytes written between syncs.
const SYNC_EVERY: u64 = 64 << 20;

/// The syncing thread: tell it the size of each piece written, then wait for the last sync.
pub(crate) struct Flusher {
    tx: Option<mpsc::Sender<u64>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    /// Starts syncing `file`.
    pub(crate) fn start(file: Arc<File>) -> Self {
        let (tx, rx) = mpsc::channel::<u64>();
        let done = tokio::task::spawn_blocking(move || sync_as_written(&file, &rx));
        Self { tx: Some(tx), done }
    }

    /// A piece of `len` bytes is verified and written.
    pub(crate) fn written(&self, len: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(len);
        }
    }

    /// Returns once the whole file (data and size) is on disk.
    pub(crate) async fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        self.done.await.map_err(std::io::Error::other)?
    }
}

fn sync_as_written(file: &File, rx: &mpsc::Receiver<u64>) -> std::io::Result<()> {
    let mut unsynced = 0u64;
    // The channel closes when the download is over.
    while let Ok(len) = rx.recv() {
        unsynced += len;
        if unsynced >= SYNC_EVERY {
            file.sync_data()?;
            unsynced = 0;
        }
    }
    file.sync_all()
}
