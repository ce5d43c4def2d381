//! A peer: one HTTP server for every blob it holds, and the downloads that fill them.

use std::{fs::File, net::SocketAddr, path::Path, sync::Arc, sync::Mutex};

use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    bitfield::Bitfield,
    error::{Error, Result},
    limit::RateLimit,
    manifest::PieceManifest,
    server::{self, Entry, ServeStats, Shared},
};

/// How a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    /// The per-operation token every request must carry.
    pub token: String,
    /// Where the server listens: the host's own address (port 0 lets the kernel pick).
    pub listen: SocketAddr,
    /// The node's upload limit in bytes per second, over all transfers.
    #[serde(default)]
    pub upload_limit: Option<u64>,
    /// The node's download limit in bytes per second, over all transfers.
    #[serde(default)]
    pub download_limit: Option<u64>,
}

/// A running peer (or seed). Dropping it stops its server and closes every connection.
#[derive(Debug)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    pub(crate) download: Option<Arc<RateLimit>>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// A seed declines repeats of pieces it already sent while this many uploads are queued or
/// running, so first copies get its upload; when it is idle, repeats help a stalled swarm.
const SEED_REPEAT_BELOW: u64 = 1;

/// Pieces a peer uploads at once; more requests wait their turn.
const UPLOAD_SLOTS: usize = 4;

/// Pieces a seed uploads at once.
const SEED_SLOTS: usize = 2;

impl Node {
    /// Starts the node's server.
    pub async fn start(config: NodeConfig) -> Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared::new(
            config.token,
            config.upload_limit.map(RateLimit::new),
            SEED_REPEAT_BELOW,
            (UPLOAD_SLOTS, SEED_SLOTS),
        ));
        let task = tokio::spawn(server::accept_loop(listener, shared.clone()));
        tracing::debug!(%addr, "fan-out node listening");
        Ok(Self {
            shared,
            download: config.download_limit.map(|r| Arc::new(RateLimit::new(r))),
            addr,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the whole blob at `path` as the seed: every piece at once, each repeated only
    /// when the seed's upload has room. The caller vouches for `manifest` (it built it from
    /// this file, or took it from a signed bundle manifest).
    pub fn seed(&self, manifest: Arc<PieceManifest>, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(|source| Error::ReadBlob {
            path: path.to_path_buf(),
            source,
        })?;
        self.serve_whole(manifest, file, true);
        Ok(())
    }

    /// Seeds the blob of a growing `manifest` (see [`PieceManifest::growing`]) from `file`
    /// while the caller still writes it: a piece is served once the returned handle
    /// announces it. The caller announces a piece only after it holds the piece's bytes and
    /// has published its hash, and the last piece only after the whole blob verifies, so no
    /// peer can complete a blob the seed did not verify.
    pub fn seed_growing(&self, manifest: Arc<PieceManifest>, file: File) -> GrowingSeed {
        let pieces = manifest.piece_count();
        let entry = self.shared.insert(Entry {
            manifest,
            file: Arc::new(file),
            have: watch::channel((0, Bitfield::new(pieces))).0,
            sent: Some(Mutex::new(Bitfield::new(pieces))),
        });
        GrowingSeed { entry }
    }

    /// Serves a blob held whole, as a seed or as a peer that already had it.
    pub(crate) fn serve_whole(&self, manifest: Arc<PieceManifest>, file: File, seed: bool) {
        let full = Bitfield::full(manifest.piece_count());
        let pieces = manifest.piece_count();
        self.shared.insert(Entry {
            manifest,
            file: Arc::new(file),
            have: watch::channel((1, full)).0,
            sent: seed.then(|| Mutex::new(Bitfield::new(pieces))),
        });
    }

    /// What the server has sent so far.
    pub fn stats(&self) -> ServeStats {
        self.shared.stats()
    }
}

/// The seed's side of a growing blob: announces pieces as the caller comes to hold them.
#[derive(Debug, Clone)]
pub struct GrowingSeed {
    entry: Arc<Entry>,
}

impl GrowingSeed {
    /// Serves piece `i` from now on and tells the peers waiting on the seed's have-set.
    pub fn announce(&self, i: u32) {
        self.entry.announce(i);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}
