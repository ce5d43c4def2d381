//! A round-based model of a swarm: the real [`Picker`] and [`neighbours`] over modelled links
//! instead of sockets, for swarms far larger than any lab (1,000 and 10,000 peers).
//!
//! Time runs in rounds of one piece-time: the time a link of rate `B` takes to carry one
//! piece, so a blob of `P` pieces takes `P` rounds at the link bound `M/B`. In a round each
//! peer sends at most `peer_up` pieces and receives at most `peer_down`, and the seed sends at
//! most `seed_up`. A piece received in a round can be relayed from the next one on, as a
//! piece is served only once verified. Peers see their sources' pieces as of the round's
//! start. Each round runs two passes, as the real seed does: first every peer asks for its
//! strip and for peers' pieces; then stalled peers may ask the seed for pieces it has already
//! sent, with whatever seed capacity is left (the seed serves first copies first).

use crate::{
    bitfield::Bitfield,
    schedule::{Bounds, Picker, SourceView, neighbours, splitmix},
};

/// A modelled swarm.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Peers, the seed not counted.
    pub peers: u32,
    /// Pieces in the blob.
    pub pieces: u32,
    /// Sources per peer besides the seed.
    pub neighbours: u32,
    /// Pieces a peer can send per round.
    pub peer_up: u32,
    /// Pieces a peer can receive per round.
    pub peer_down: u32,
    /// Pieces the seed can send per round.
    pub seed_up: u32,
    /// Peers that are dead from the start: they never fetch and never serve.
    pub dead: Vec<u32>,
    /// Rounds a peer finds nothing to fetch from peers before it asks the seed for pieces
    /// outside its strip.
    pub seed_grace: u32,
    /// The model gives up after this many rounds.
    pub max_rounds: u32,
    /// Varies the neighbour graph and tie-breaks.
    pub salt: u64,
}

impl SimConfig {
    /// `peers` peers and `pieces` pieces on equal links, with the crate's defaults.
    pub fn new(peers: u32, pieces: u32) -> Self {
        Self {
            peers,
            pieces,
            neighbours: 16,
            peer_up: 1,
            peer_down: 1,
            seed_up: 1,
            dead: Vec::new(),
            seed_grace: 2,
            max_rounds: pieces * 8 + 200,
            salt: 0x6b67_6669_6c65,
        }
    }
}

/// What a modelled run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// The round in which the last live peer completed (1-based); `None` if some never did.
    pub rounds: Option<u32>,
    /// The median peer's completion round.
    pub median_round: u32,
    /// Pieces the seed sent.
    pub seed_sent: u64,
    /// Live peers that completed.
    pub complete: u32,
    /// Live peers.
    pub live: u32,
}

impl SimReport {
    /// Finish time over the link bound M/B (`pieces` rounds).
    pub fn finish_ratio(&self, pieces: u32) -> Option<f64> {
        self.rounds.map(|r| f64::from(r) / f64::from(pieces))
    }

    /// The seed's upload in copies of the blob.
    pub fn seed_copies(&self, pieces: u32) -> f64 {
        self.seed_sent as f64 / f64::from(pieces)
    }
}

/// Runs the model.
pub fn simulate(cfg: &SimConfig) -> SimReport {
    let n = cfg.peers;
    let full = Bitfield::full(cfg.pieces);
    let empty = Bitfield::new(cfg.pieces);
    let mut dead = vec![false; n as usize];
    for &d in &cfg.dead {
        if let Some(x) = dead.get_mut(d as usize) {
            *x = true;
        }
    }
    let live = dead.iter().filter(|d| !**d).count() as u32;
    let bounds = Bounds {
        per_source: 1,
        per_seed: 1,
    };
    let pickers: Vec<Picker> = (0..n)
        .map(|i| Picker::new(cfg.pieces, i, n, cfg.salt ^ splitmix(u64::from(i)), bounds))
        .collect();
    let graph: Vec<Vec<u32>> = (0..n)
        .map(|i| neighbours(i, n, cfg.neighbours, cfg.salt))
        .collect();
    let mut have = vec![Bitfield::new(cfg.pieces); n as usize];
    let mut idle = vec![0u32; n as usize];
    let mut done_at: Vec<Option<u32>> = vec![None; n as usize];
    let mut seed_started = Bitfield::new(cfg.pieces);
    let mut seed_sent = 0u64;
    let mut complete = 0u32;

    for round in 1..=cfg.max_rounds {
        let mut sent = vec![0u32; n as usize];
        let mut seed_round = 0u32;
        let mut got: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
        let mut order: Vec<u32> = (0..n).filter(|&i| !dead[i as usize]).collect();
        order.sort_by_key(|&i| splitmix(cfg.salt ^ (u64::from(round) << 32) ^ u64::from(i)));
        for pass in 0..2 {
            for &i in &order {
                let iu = i as usize;
                if done_at[iu].is_some() {
                    continue;
                }
                let fallback = pass == 1 && idle[iu] >= cfg.seed_grace;
                if pass == 1 && !fallback {
                    continue;
                }
                let slots = cfg.peer_down.saturating_sub(got[iu].len() as u32);
                let mut inflight = Bitfield::new(cfg.pieces);
                for &p in &got[iu] {
                    inflight.set(p);
                }
                let mut views: Vec<SourceView<'_>> = graph[iu]
                    .iter()
                    .map(|&j| SourceView {
                        have: if dead[j as usize] {
                            &empty
                        } else {
                            &have[j as usize]
                        },
                        busy: 0,
                        seed: false,
                        usable: !dead[j as usize] && sent[j as usize] < cfg.peer_up,
                    })
                    .collect();
                views.push(SourceView {
                    have: &full,
                    busy: 0,
                    seed: true,
                    usable: seed_round < cfg.seed_up,
                });
                let picks = pickers[iu].pick(&have[iu], &inflight, &views, fallback, slots);
                for (src, p) in picks {
                    // The model's download link takes `peer_down` pieces a round, whatever
                    // their source.
                    if got[iu].len() as u32 >= cfg.peer_down {
                        break;
                    }
                    if views[src].seed {
                        // The seed serves a piece it already started only in the second pass.
                        if seed_started.get(p) && pass == 0 {
                            continue;
                        }
                        if seed_round >= cfg.seed_up {
                            continue;
                        }
                        seed_round += 1;
                        seed_started.set(p);
                        seed_sent += 1;
                    } else {
                        let j = graph[iu][src] as usize;
                        if sent[j] >= cfg.peer_up {
                            continue;
                        }
                        sent[j] += 1;
                    }
                    got[iu].push(p);
                }
            }
            // Whoever got nothing from peers in the first pass counts as stalled.
            if pass == 0 {
                for &i in &order {
                    let iu = i as usize;
                    if done_at[iu].is_none() {
                        idle[iu] = if got[iu].is_empty() { idle[iu] + 1 } else { 0 };
                    }
                }
            }
        }
        for (i, pieces) in got.into_iter().enumerate() {
            for p in pieces {
                have[i].set(p);
            }
            if done_at[i].is_none() && !dead[i] && have[i].is_full() {
                done_at[i] = Some(round);
                complete += 1;
            }
        }
        if complete == live {
            break;
        }
    }
    let mut rounds: Vec<u32> = done_at.iter().flatten().copied().collect();
    rounds.sort_unstable();
    SimReport {
        rounds: (complete == live).then(|| rounds.last().copied().unwrap_or(0)),
        median_round: rounds.get(rounds.len() / 2).copied().unwrap_or(0),
        seed_sent,
        complete,
        live,
    }
}
