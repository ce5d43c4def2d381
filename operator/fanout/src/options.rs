//! What a caller hands a download: the swarm and the tunables.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::schedule::Bounds;

/// A peer as the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    /// Its name (a host name, a pod name), for messages and reports.
    pub id: String,
    /// Where its node listens.
    pub addr: SocketAddr,
}

/// The swarm one blob spreads through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swarm {
    /// Every peer fetching the blob, this one included, in the same order for every peer:
    /// a peer's position picks its strip and its neighbours.
    pub peers: Vec<PeerAddr>,
    /// This peer's id in `peers`.
    pub me: String,
    /// The seed's address, when there is one.
    pub seed: Option<SocketAddr>,
}

/// Tunables of a download.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Requests in flight per source.
    pub bounds: Bounds,
    /// Requests in flight to peers overall (the seed has its own bound). As many as there are
    /// neighbours, so a peer can draw from all of them at once: with fewer, each source's
    /// uplink is split among more requesters than a downloader has slots, and downloads run
    /// below the link rate.
    pub slots: u32,
    /// Peers fetched from, besides the seed.
    pub neighbours: u32,
    /// How long a peer with nothing in flight waits before asking the seed for pieces
    /// outside its strip.
    pub seed_grace: Duration,
    /// How long a peer with nothing to fetch and no seed waits before it gives up.
    pub give_up_after: Duration,
    /// How often progress is reported.
    pub progress_every: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            bounds: Bounds::default(),
            slots: 16,
            neighbours: 16,
            seed_grace: Duration::from_millis(500),
            give_up_after: Duration::from_secs(20),
            progress_every: Duration::from_millis(500),
        }
    }
}
