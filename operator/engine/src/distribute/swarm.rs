//! `--distribution p2p`: the engine seeds the bundle blobs and the hosts fetch pieces from
//! each other with [`kubegrid_fanout`], so the engine's uplink carries about one copy of
//! each blob instead of one per host.
//!
//! Before a playbook batch runs, every host that lacks some of its blobs (and is reached
//! directly, not through a bastion) runs `kubegrid-agent fanout` over its SSH connection.
//! Its job names the blobs with piece manifests the engine signed for this operation, the
//! other peers (the hosts' own addresses, on the operation's port), the seed (this
//! machine's address towards the host) and the operation's random token. A host that has
//! fetched everything serves on until every peer is done, then the engine closes the agents'
//! stdin. Whatever a swarm leaves missing (a host that failed, a blob that failed) is then
//! routed as `http` is, so a swarm problem costs time, never the operation.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use kubegrid_agent::{
    fanout::{FanoutBlob, FanoutJob, FanoutLine},
    protocol::PROTOCOL_VERSION,
};
use kubegrid_fanout::{ManifestSigner, Node, NodeConfig, PeerAddr, PieceManifest, SignedManifest};
use serde::Serialize;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::local_ip_towards;
use crate::{
    progress::{Observer, Progress},
    session::{HostSession, LocalBlob},
};

/// The port hosts' nodes listen on unless `--p2p-port` says otherwise: outside the ranges
/// Kubernetes uses (6443, 2379-2380, 10250-10259, NodePorts 30000-32767).
pub const DEFAULT_PORT: u16 = 9460;

/// The fewest hosts needing blobs in one batch for which `--distribution auto` runs a
/// swarm. A star takes N·M/B and a swarm about M/B plus a fixed cost (hashing the blobs into
/// pieces, one more SSH round trip per host); the lab benchmark (docs/distribution.md)
/// measured p2p ahead of the star from 3 hosts on.
pub const AUTO_MIN_HOSTS: usize = 3;

/// How a swarm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P2pOptions {
    /// The port each host's node listens on, on the host's own address.
    pub port: u16,
    /// Each host's upload and download limit, bytes per second.
    pub rate_limit: Option<u64>,
    /// The fewest hosts a swarm runs for: 2 with `p2p`, [`AUTO_MIN_HOSTS`] with `auto`.
    pub min_hosts: usize,
}

impl Default for P2pOptions {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            rate_limit: None,
            min_hosts: 2,
        }
    }
}

/// What swarms did for one host over the operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSwarm {
    /// Blobs stored through the swarm.
    pub blobs: usize,
    /// Their pieces.
    pub pieces: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes that came from the seed.
    pub from_seed: u64,
    /// Bytes that came from other hosts.
    pub from_peers: u64,
    /// Bytes this host sent to other hosts.
    pub served: u64,
    /// Seconds its downloads took, summed.
    pub seconds: f64,
    /// Blobs the swarm could not deliver (they went over HTTP after), with why.
    pub failed: Vec<String>,
    /// Sources banned for sending a piece that failed its hash.
    pub banned: Vec<String>,
}

/// What the operation's swarms did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmReport {
    /// Bytes the engine's seed sent.
    pub seed_bytes: u64,
    /// Bytes of the distinct blobs seeded.
    pub blob_bytes: u64,
    /// Per host, by Node name.
    pub hosts: BTreeMap<String, HostSwarm>,
}

/// The operation's seed and what its swarms did.
#[derive(Debug, Default)]
pub struct SwarmState {
    token: String,
    signer: Option<ManifestSigner>,
    manifests: HashMap<String, SignedManifest>,
    seeds: BTreeMap<IpAddr, (Node, BTreeSet<String>)>,
    hosts: BTreeMap<String, HostSwarm>,
}

impl SwarmState {
    /// The report, once a swarm ran.
    pub fn report(&self) -> Option<SwarmReport> {
        if self.hosts.is_empty() {
            return None;
        }
        Some(SwarmReport {
            seed_bytes: self.seeds.values().map(|(n, _)| n.stats().bytes).sum(),
            blob_bytes: self.manifests.values().map(|m| m.manifest.size).sum(),
            hosts: self.hosts.clone(),
        })
    }
}

/// One host's part in a swarm.
struct Member {
    index: usize,
    name: String,
    need: Vec<LocalBlob>,
    listen: SocketAddr,
    seed_ip: IpAddr,
}

/// Spreads the blobs `wanted` names (by host index) through a swarm of those hosts, and
/// records in each session what arrived. `names` are the hosts' Node names by index. Fewer
/// than `opts.min_hosts` taking part (never fewer than 2) leaves them all to HTTP.
pub async fn spread(
    state: &mut SwarmState,
    sessions: &mut [Option<HostSession>],
    names: &[String],
    wanted: Vec<(usize, Vec<LocalBlob>)>,
    opts: P2pOptions,
    phase: &str,
    observer: Arc<dyn Observer>,
) {
    let members = members(sessions, names, wanted, opts.port).await;
    if members.len() < opts.min_hosts.max(2) {
        // One host alone gains nothing from a swarm, and a few gain less than it costs.
        return;
    }
    if let Err(e) = prepare(state, &members).await {
        tracing::warn!("p2p distribution unavailable, using http: {e}");
        return;
    }
    let mut order: Vec<&LocalBlob> = Vec::new();
    for m in &members {
        for b in &m.need {
            if !order.iter().any(|o| o.sha256 == b.sha256) {
                order.push(b);
            }
        }
    }
    let peers_of = |sha: &str| -> Vec<PeerAddr> {
        members
            .iter()
            .filter(|m| m.need.iter().any(|b| b.sha256 == sha))
            .map(|m| PeerAddr {
                id: m.name.clone(),
                addr: m.listen,
            })
            .collect()
    };
    let seed_key = state
        .signer
        .as_ref()
        .map(|s| hex::encode(s.public_key()))
        .unwrap_or_default();
    let (hold_tx, hold_rx) = watch::channel(false);
    let (fin_tx, mut fin_rx) = mpsc::unbounded_channel::<usize>();
    let mut set = JoinSet::new();
    for m in &members {
        let Some(session) = sessions[m.index].take() else {
            continue;
        };
        let seed = state.seeds.get(&m.seed_ip).map(|(n, _)| n.addr());
        let job = FanoutJob {
            protocol: PROTOCOL_VERSION,
            token: state.token.clone(),
            me: m.name.clone(),
            listen: m.listen,
            seed: seed.unwrap_or(SocketAddr::new(m.seed_ip, 0)),
            seed_key: seed_key.clone(),
            store_dir: None,
            rate_limit: opts.rate_limit,
            blobs: order
                .iter()
                .filter(|b| m.need.iter().any(|n| n.sha256 == b.sha256))
                .filter_map(|b| {
                    Some(FanoutBlob {
                        manifest: state.manifests.get(&b.sha256)?.clone(),
                        peers: peers_of(&b.sha256),
                    })
                })
                .collect(),
        };
        let mut line = serde_json::to_vec(&job).unwrap_or_default();
        line.push(b'\n');
        let (host, index, phase) = (m.name.clone(), m.index, phase.to_string());
        let (hold, fin, observer) = (hold_rx.clone(), fin_tx.clone(), observer.clone());
        set.spawn(async move {
            let mut session: HostSession = session;
            let mut tally = HostSwarm::default();
            let mut stored = Vec::new();
            let out = session
                .run_fanout(line, hold, |l| {
                    let Ok(ev) = serde_json::from_str::<FanoutLine>(l) else {
                        return;
                    };
                    if matches!(ev, FanoutLine::Finished { .. }) {
                        let _ = fin.send(index);
                    }
                    if let FanoutLine::Stored { sha256, .. } = &ev {
                        stored.push(sha256.clone());
                    }
                    if let Some(p) = record(&ev, &host, &phase, &mut tally) {
                        observer.event(&p);
                    }
                })
                .await;
            let _ = fin.send(index);
            if let Err(e) = &out {
                tally.failed.push(e.to_string());
            }
            session.note_store(stored);
            (index, host, session, tally)
        });
    }
    drop(fin_tx);
    // Everyone serves until the last peer is done, so late peers still find every source.
    let mut finished = BTreeSet::new();
    while finished.len() < set.len() {
        match fin_rx.recv().await {
            Some(i) => {
                finished.insert(i);
            }
            None => break,
        }
    }
    let _ = hold_tx.send(true);
    while let Some(joined) = set.join_next().await {
        let Ok((index, host, session, tally)) = joined else {
            continue;
        };
        sessions[index] = Some(session);
        let total = state.hosts.entry(host).or_default();
        total.blobs += tally.blobs;
        total.pieces += tally.pieces;
        total.bytes += tally.bytes;
        total.from_seed += tally.from_seed;
        total.from_peers += tally.from_peers;
        total.served += tally.served;
        total.seconds += tally.seconds;
        total.failed.extend(tally.failed);
        total.banned.extend(tally.banned);
    }
}

/// The hosts that take part: live, reached without a bastion, lacking some blob, with an
/// address peers can use.
async fn members(
    sessions: &[Option<HostSession>],
    names: &[String],
    wanted: Vec<(usize, Vec<LocalBlob>)>,
    port: u16,
) -> Vec<Member> {
    let mut out = Vec::new();
    for (index, blobs) in wanted {
        let Some(s) = sessions.get(index).and_then(Option::as_ref) else {
            continue;
        };
        let t = s.connection().target();
        let need: Vec<LocalBlob> = blobs.into_iter().filter(|b| s.lacks(&b.sha256)).collect();
        if t.bastion.is_some() || need.is_empty() {
            continue;
        }
        let host_ip = match tokio::net::lookup_host((t.address.as_str(), t.port)).await {
            Ok(mut a) => a.next().map(|a| a.ip()),
            Err(_) => None,
        };
        let (Some(host_ip), Ok(seed_ip)) = (host_ip, local_ip_towards(&t.address, t.port).await)
        else {
            tracing::warn!("{}: no address for p2p; its blobs go over http", t.host);
            continue;
        };
        out.push(Member {
            index,
            name: names.get(index).cloned().unwrap_or_else(|| t.host.clone()),
            need,
            listen: SocketAddr::new(host_ip, port),
            seed_ip,
        });
    }
    out
}

/// Builds and signs the manifests the members need and starts the seeds, where missing.
async fn prepare(state: &mut SwarmState, members: &[Member]) -> Result<(), String> {
    if state.signer.is_none() {
        state.signer = Some(ManifestSigner::generate());
        state.token = hex::encode(rand::random::<[u8; 16]>());
    }
    let mut blobs: BTreeMap<String, &LocalBlob> = BTreeMap::new();
    for b in members.iter().flat_map(|m| &m.need) {
        blobs.entry(b.sha256.clone()).or_insert(b);
    }
    for (sha, b) in &blobs {
        if state.manifests.contains_key(sha) {
            continue;
        }
        let (path, size) = (b.path.clone(), b.size);
        let built = tokio::task::spawn_blocking(move || {
            PieceManifest::build(&path, kubegrid_fanout::default_piece_size(size))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if built.sha256 != *sha {
            return Err(format!(
                "{} hashes to {}, not {sha}",
                b.path.display(),
                built.sha256
            ));
        }
        let signer = state.signer.as_ref().ok_or("no signer")?;
        state.manifests.insert(sha.clone(), signer.sign(built));
    }
    for m in members {
        if !state.seeds.contains_key(&m.seed_ip) {
            let node = Node::start(NodeConfig {
                token: state.token.clone(),
                listen: SocketAddr::new(m.seed_ip, 0),
                upload_limit: None,
                download_limit: None,
            })
            .await
            .map_err(|e| e.to_string())?;
            state.seeds.insert(m.seed_ip, (node, BTreeSet::new()));
        }
        let Some((node, seeded)) = state.seeds.get_mut(&m.seed_ip) else {
            continue;
        };
        for b in &m.need {
            if seeded.insert(b.sha256.clone()) {
                let manifest = state
                    .manifests
                    .get(&b.sha256)
                    .map(|s| Arc::new(s.manifest.clone()))
                    .ok_or("a manifest went missing")?;
                node.seed(manifest, &b.path).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Adds an agent line to the host's tally and turns it into progress.
fn record(ev: &FanoutLine, host: &str, phase: &str, tally: &mut HostSwarm) -> Option<Progress> {
    let p = |blob: &str, stage: &str, bytes, size, pieces, total, rate, message: String| {
        Progress::Swarm {
            host: host.to_string(),
            phase: phase.to_string(),
            blob: blob.to_string(),
            stage: stage.to_string(),
            bytes,
            size,
            pieces,
            total,
            rate,
            message,
        }
    };
    match ev {
        FanoutLine::Progress {
            sha256,
            bytes,
            size,
            pieces,
            total,
            rate,
        } => Some(p(
            sha256,
            "progress",
            *bytes,
            *size,
            *pieces,
            *total,
            *rate,
            String::new(),
        )),
        FanoutLine::Source {
            sha256,
            peer,
            state,
            message,
        } => {
            if state == "banned" {
                tally.banned.push(peer.clone());
            }
            Some(p(
                sha256,
                state,
                0,
                0,
                0,
                0,
                0,
                format!("{peer}: {message}"),
            ))
        }
        FanoutLine::Stored {
            sha256,
            size,
            from_seed,
            from_peers,
            seconds,
            ..
        } => {
            tally.blobs += 1;
            tally.pieces += size.div_ceil(kubegrid_fanout::default_piece_size(*size));
            tally.bytes += size;
            tally.from_seed += from_seed;
            tally.from_peers += from_peers;
            tally.seconds += seconds;
            let rate = (*size as f64 / seconds.max(1e-3)) as u64;
            Some(p(sha256, "stored", *size, *size, 0, 0, rate, String::new()))
        }
        FanoutLine::Failed { sha256, message } => {
            tally.failed.push(format!("{sha256}: {message}"));
            Some(p(sha256, "failed", 0, 0, 0, 0, 0, message.clone()))
        }
        FanoutLine::Finished { served, .. } => {
            tally.served = *served;
            None
        }
        FanoutLine::Hello { .. } | FanoutLine::Listening { .. } => None,
    }
}

#[cfg(test)]
#[path = "swarm_tests.rs"]
mod tests;
