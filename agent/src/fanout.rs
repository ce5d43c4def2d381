//! `kubegrid-agent fanout`: this host as one peer of a peer-to-peer blob distribution.
//!
//! The engine sends one [`FanoutJob`] line and keeps stdin open. The agent verifies each
//! piece manifest with the seed's key, starts a [`kubegrid_fanout::Node`] on the host's own
//! address, fetches every blob of the job into the store (serving what it has to the other
//! peers meanwhile) and reports [`FanoutLine`]s on stdout. After its last blob it goes on
//! serving until stdin ends: the engine closes it once every peer is done, so late peers
//! still find every source.

use std::{
    io::{self, BufRead, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use kubegrid_fanout::{
    FetchEvent, FetchOptions, Node, NodeConfig, PeerAddr, SignedManifest, Swarm,
};
use serde::{Deserialize, Serialize};

use crate::protocol::{DEFAULT_STORE_DIR, PROTOCOL_VERSION};

/// What one host does in a distribution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutJob {
    /// [`PROTOCOL_VERSION`] of the engine.
    pub protocol: u32,
    /// The per-operation token every peer request carries.
    pub token: String,
    /// This host's id in each blob's peer list.
    pub me: String,
    /// Where this host's node listens: its own address and the operation's port.
    pub listen: SocketAddr,
    /// The seed: the engine's node.
    pub seed: SocketAddr,
    /// The seed's Ed25519 public key (hex) that every manifest must verify with.
    pub seed_key: String,
    /// The blob store; [`DEFAULT_STORE_DIR`] when absent.
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    /// The node's upload and download limits, bytes per second.
    #[serde(default)]
    pub rate_limit: Option<u64>,
    /// The blobs, each with the peers that fetch it, in the order to fetch them.
    pub blobs: Vec<FanoutBlob>,
}

/// One blob of a [`FanoutJob`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutBlob {
    /// Its piece manifest, signed by the seed.
    pub manifest: SignedManifest,
    /// Every peer fetching it, this host included, in the same order for all of them.
    pub peers: Vec<PeerAddr>,
}

/// What the agent reports, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    tag = "event"
)]
pub enum FanoutLine {
    /// First line: the agent's protocol and version.
    Hello {
        /// [`PROTOCOL_VERSION`] of this agent.
        protocol: u32,
        /// Agent crate version.
        version: String,
    },
    /// The node listens.
    Listening {
        /// Where.
        addr: SocketAddr,
    },
    /// A download's progress, a few times a second.
    Progress {
        /// The blob.
        sha256: String,
        /// Verified bytes held.
        bytes: u64,
        /// Its size.
        size: u64,
        /// Verified pieces held.
        pieces: u32,
        /// Pieces in the blob.
        total: u32,
        /// Bytes per second lately.
        rate: u64,
    },
    /// A source was banned (a piece failed its hash) or went down.
    Source {
        /// The blob.
        sha256: String,
        /// The source's id.
        peer: String,
        /// `banned` or `down`.
        state: String,
        /// Details.
        message: String,
    },
    /// A blob is whole, verified and in the store.
    Stored {
        /// The blob.
        sha256: String,
        /// Its size.
        size: u64,
        /// Pieces found verified on disk at the start.
        resumed_pieces: u32,
        /// Bytes from the seed.
        from_seed: u64,
        /// Bytes from peers.
        from_peers: u64,
        /// Wall time.
        seconds: f64,
    },
    /// A blob could not be fetched.
    Failed {
        /// The blob.
        sha256: String,
        /// Why.
        message: String,
    },
    /// Every blob is stored or failed; the node serves on until stdin ends.
    Finished {
        /// No blob failed.
        ok: bool,
        /// Bytes this host's node sent to peers so far.
        served: u64,
    },
}

/// Runs a job read from stdin; the exit code is 0 when every blob was stored, 1 when some
/// failed, 2 when the job could not run.
pub fn run_stdio() -> u8 {
    let out = Arc::new(Mutex::new(io::stdout()));
    let say = {
        let out = out.clone();
        move |line: &FanoutLine| {
            if let (Ok(mut o), Ok(mut json)) = (out.lock(), serde_json::to_vec(line)) {
                json.push(b'\n');
                let _ = o.write_all(&json).and_then(|()| o.flush());
            }
        }
    };
    say(&FanoutLine::Hello {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let mut line = String::new();
    let stdin = io::stdin();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        eprintln!("kubegrid-agent fanout: cannot read the job: {e}");
        return 2;
    }
    let job: FanoutJob = match serde_json::from_str(&line) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("kubegrid-agent fanout: the job is not valid: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubegrid-agent fanout: cannot start the runtime: {e}");
            return 2;
        }
    };
    rt.block_on(run(job, &say))
}

async fn run(job: FanoutJob, say: &(dyn Fn(&FanoutLine) + Send + Sync)) -> u8 {
    if job.protocol != PROTOCOL_VERSION {
        eprintln!(
            "kubegrid-agent fanout: the engine speaks protocol {}, this agent {PROTOCOL_VERSION}",
            job.protocol
        );
        return 2;
    }
    let key = match hex::decode(&job.seed_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("kubegrid-agent fanout: the seed key is not hex: {e}");
            return 2;
        }
    };
    let node = match Node::start(NodeConfig {
        token: job.token.clone(),
        listen: job.listen,
        upload_limit: job.rate_limit,
        download_limit: job.rate_limit,
    })
    .await
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("kubegrid-agent fanout: {e}");
            return 2;
        }
    };
    say(&FanoutLine::Listening { addr: node.addr() });
    let store = job
        .store_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_DIR));
    let mut ok = true;
    for blob in &job.blobs {
        if let Err(message) = fetch_one(&node, &job, blob, &key, &store, say).await {
            ok = false;
            say(&FanoutLine::Failed {
                sha256: blob.manifest.manifest.sha256.clone(),
                message,
            });
        }
    }
    say(&FanoutLine::Finished {
        ok,
        served: node.stats().bytes,
    });
    // Serve on until the engine closes stdin: it does once every peer has finished.
    let _ =
        tokio::task::spawn_blocking(|| io::copy(&mut io::stdin().lock(), &mut io::sink())).await;
    drop(node);
    if ok { 0 } else { 1 }
}

async fn fetch_one(
    node: &Node,
    job: &FanoutJob,
    blob: &FanoutBlob,
    key: &[u8],
    store: &Path,
    say: &(dyn Fn(&FanoutLine) + Send + Sync),
) -> Result<(), String> {
    let manifest = Arc::new(
        blob.manifest
            .verify(key)
            .map_err(|e| e.to_string())?
            .clone(),
    );
    let swarm = Swarm {
        peers: blob.peers.clone(),
        me: job.me.clone(),
        seed: Some(job.seed),
    };
    let events = |ev: FetchEvent| {
        say(&match ev {
            FetchEvent::Progress {
                blob,
                bytes,
                size,
                pieces,
                total,
                rate,
            } => FanoutLine::Progress {
                sha256: blob,
                bytes,
                size,
                pieces,
                total,
                rate,
            },
            FetchEvent::Banned { blob, peer, piece } => FanoutLine::Source {
                sha256: blob,
                peer,
                state: "banned".into(),
                message: format!("piece {piece} failed its sha256"),
            },
            FetchEvent::SourceDown { blob, peer, error } => FanoutLine::Source {
                sha256: blob,
                peer,
                state: "down".into(),
                message: error,
            },
        })
    };
    std::fs::create_dir_all(store).map_err(|e| format!("create {}: {e}", store.display()))?;
    let report = node
        .fetch(manifest, &swarm, store, &FetchOptions::default(), &events)
        .await
        .map_err(|e| e.to_string())?;
    say(&FanoutLine::Stored {
        sha256: report.blob,
        size: blob.manifest.manifest.size,
        resumed_pieces: report.resumed_pieces,
        from_seed: report.from_seed,
        from_peers: report.from_peers,
        seconds: report.seconds,
    });
    Ok(())
}
