//! A swarm of real nodes on loopback, one tokio runtime, for the fault tests.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use kubegrid_fanout::{
    FetchEvent, FetchOptions, FetchReport, Node, NodeConfig, PeerAddr, PieceManifest, Swarm,
};
use sha2::{Digest, Sha256};
use tokio::{sync::Notify, task::JoinHandle};

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// Pieces of 256 KiB keep blobs small while giving the scheduler 32 pieces to spread.
pub const PIECE: u64 = 256 << 10;
/// Links of 4 MiB/s make an 8 MiB blob take a couple of seconds, long enough to act mid-way.
pub const RATE: u64 = 4 << 20;

/// A blob on disk and its manifest.
pub struct Blob {
    /// Keeps the blob's directory until the test ends.
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub manifest: Arc<PieceManifest>,
}

/// Writes `size` pseudo-random bytes and builds their manifest.
pub fn blob(size: usize) -> Blob {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    let mut x = 0x9e37_79b9_u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).expect("write blob");
    let manifest = Arc::new(PieceManifest::build(&path, PIECE).expect("manifest"));
    Blob {
        _dir: dir,
        path,
        manifest,
    }
}

pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(
        std::fs::read(path).expect("read stored blob"),
    ))
}

/// A node config on loopback, with both directions limited to `rate`.
pub fn config(rate: u64) -> NodeConfig {
    NodeConfig {
        token: TOKEN.into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        upload_limit: Some(rate),
        download_limit: Some(rate),
    }
}

/// Per-peer pieces held, as the progress events tell, with a way to wait for a condition.
#[derive(Default)]
pub struct Watch {
    pub pieces: Mutex<HashMap<String, u32>>,
    pub events: Mutex<Vec<(String, FetchEvent)>>,
    notify: Notify,
}

impl Watch {
    pub fn record(&self, peer: &str, ev: FetchEvent) {
        if let FetchEvent::Progress { pieces, .. } = &ev
            && let Ok(mut m) = self.pieces.lock()
        {
            m.insert(peer.to_string(), *pieces);
        }
        if let Ok(mut e) = self.events.lock() {
            e.push((peer.to_string(), ev));
        }
        self.notify.notify_waiters();
    }

    pub fn held(&self, peer: &str) -> u32 {
        self.pieces
            .lock()
            .map(|m| m.get(peer).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Waits until `cond` holds, re-checking at every event; panics after 60 s.
    pub async fn until(&self, what: &str, cond: impl Fn(&Watch) -> bool) {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if cond(self) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }
}

/// Options that report progress often, so waits see pieces arrive.
pub fn options() -> FetchOptions {
    FetchOptions {
        progress_every: Duration::from_millis(50),
        give_up_after: Duration::from_secs(3),
        ..FetchOptions::default()
    }
}

/// Started peers: their nodes and the swarm they form.
pub struct Peers {
    pub nodes: Vec<(String, Node)>,
    pub swarm: Vec<PeerAddr>,
}

pub async fn peers(n: usize, rate: u64) -> Peers {
    let mut nodes = Vec::new();
    let mut swarm = Vec::new();
    for i in 0..n {
        let id = format!("peer-{i}");
        let node = Node::start(config(rate)).await.expect("start node");
        swarm.push(PeerAddr {
            id: id.clone(),
            addr: node.addr(),
        });
        nodes.push((id, node));
    }
    Peers { nodes, swarm }
}

pub type Running = JoinHandle<(
    Node,
    kubegrid_fanout::Result<FetchReport>,
    Arc<tempfile::TempDir>,
)>;

/// A fresh, empty store.
pub fn store() -> Arc<tempfile::TempDir> {
    Arc::new(tempfile::tempdir().expect("store"))
}

/// Starts `node`'s download of `manifest` into `store`.
pub fn fetch(
    id: String,
    node: Node,
    manifest: Arc<PieceManifest>,
    swarm: Vec<PeerAddr>,
    seed: Option<SocketAddr>,
    watch: Arc<Watch>,
    store: Arc<tempfile::TempDir>,
) -> Running {
    tokio::spawn(async move {
        let swarm = Swarm {
            peers: swarm,
            me: id.clone(),
            seed,
        };
        let w = watch.clone();
        let report = node
            .fetch(manifest, &swarm, store.path(), &options(), &move |ev| {
                w.record(&id, ev)
            })
            .await;
        (node, report, store)
    })
}
