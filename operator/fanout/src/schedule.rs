//! Which piece to ask which source for: the part of the fan-out the simulation exercises.
//!
//! The order is the seed's strip first, then rarest-first from peers, then the seed again
//! only when the peers have nothing left to give:
//!
//! - **Strips.** Each peer owns the pieces `p` with `p % peers == index` and fetches only
//!   those from the seed while the swarm is healthy, so the seed sends each piece about once
//!   and every peer starts with something the others want. This is the fluid-model optimum
//!   (the seed's upload split into `N` distinct streams, each relayed to the rest), the
//!   arrangement behind Dragonfly's seed-peer scheduling, and it keeps the seed from becoming
//!   the star again.
//! - **Rarest-first among peers**, as BitTorrent and Kraken do, ties broken by a per-peer
//!   hash so peers that see the same counts still pick different pieces.
//! - **Seed fallback** when a peer is stalled (the caller decides when; a strip owner that
//!   died leaves its pieces nowhere else), in a per-peer order so stalled peers ask the seed
//!   for different pieces.
//! - **Bounds.** At most `per_source` requests in flight to one peer and `slots` to peers
//!   overall, so one slow source cannot take every connection; and `per_seed` to the seed,
//!   outside `slots`, so a peer busy with other peers never leaves the seed's link idle.

use crate::bitfield::Bitfield;

/// Connection bounds for [`Picker::pick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Requests in flight to any one peer.
    pub per_source: u32,
    /// Requests in flight to the seed.
    pub per_seed: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            per_source: 1,
            per_seed: 1,
        }
    }
}

/// What the picker knows of one source.
#[derive(Debug, Clone, Copy)]
pub struct SourceView<'a> {
    /// The pieces it last said it holds.
    pub have: &'a Bitfield,
    /// Requests in flight to it from this peer.
    pub busy: u32,
    /// Whether it is the seed.
    pub seed: bool,
    /// Whether it may be asked now: not banned, not backing off after an error.
    pub usable: bool,
}

/// One peer's piece picker for one blob.
#[derive(Debug, Clone)]
pub struct Picker {
    pieces: u32,
    index: u32,
    peers: u32,
    salt: u64,
    bounds: Bounds,
}

impl Picker {
    /// The picker of the peer at `index` among `peers` peers (the seed not counted), for a
    /// blob of `pieces` pieces. `salt` varies tie-breaks between peers and blobs.
    pub fn new(pieces: u32, index: u32, peers: u32, salt: u64, bounds: Bounds) -> Self {
        Self {
            pieces,
            index,
            peers: peers.max(1),
            salt,
            bounds,
        }
    }

    /// Whether piece `p` is in this peer's strip: the peer fetches it from the seed first.
    pub fn owns(&self, p: u32) -> bool {
        p % self.peers == self.index % self.peers
    }

    /// Requests `(source index, piece)` to start now: up to `slots` to peers, and to the seed
    /// as its bound allows. `have` and `inflight` are this peer's pieces and those already
    /// requested; `seed_fallback` lets the seed serve pieces outside the strip.
    pub fn pick(
        &self,
        have: &Bitfield,
        inflight: &Bitfield,
        sources: &[SourceView<'_>],
        seed_fallback: bool,
        slots: u32,
    ) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        let mut wanted = Bitfield::full(self.pieces).and_not(have);
        wanted = wanted.and_not(inflight);
        let mut busy: Vec<u32> = sources.iter().map(|s| s.busy).collect();
        let room = |i: usize, busy: &[u32]| {
            let s = &sources[i];
            let cap = if s.seed {
                self.bounds.per_seed
            } else {
                self.bounds.per_source
            };
            s.usable && busy[i] < cap
        };

        // Holders of each wanted piece among usable peers (not the seed).
        let mut counts = vec![0u32; self.pieces as usize];
        for s in sources.iter().filter(|s| s.usable && !s.seed) {
            let mut held = s.have.clone();
            held.intersect(&wanted);
            for p in held.ones() {
                counts[p as usize] += 1;
            }
        }
        let seed = sources.iter().position(|s| s.seed && s.usable);

        // 1. The strip, from the seed, for pieces no peer offers yet.
        if let Some(si) = seed {
            let mut strip: Vec<u32> = wanted
                .ones()
                .filter(|&p| self.owns(p) && counts[p as usize] == 0 && sources[si].have.get(p))
                .collect();
            strip.sort_by_key(|&p| self.mix(p));
            for p in strip {
                if !room(si, &busy) {
                    break;
                }
                busy[si] += 1;
                wanted.unset(p);
                out.push((si, p));
            }
        }

        // 2. Rarest first among peers.
        let mut rare: Vec<u32> = wanted.ones().filter(|&p| counts[p as usize] > 0).collect();
        rare.sort_by_key(|&p| (counts[p as usize], self.mix(p)));
        let mut to_peers = 0;
        for p in rare {
            if to_peers >= slots {
                break;
            }
            let best = (0..sources.len())
                .filter(|&i| !sources[i].seed && sources[i].have.get(p) && room(i, &busy))
                .min_by_key(|&i| (busy[i], self.mix(p ^ ((i as u32) << 20))));
            if let Some(i) = best {
                busy[i] += 1;
                wanted.unset(p);
                out.push((i, p));
                to_peers += 1;
            }
        }

        // 3. The seed, for what no peer holds, once the caller says the peer is stalled.
        if seed_fallback && let Some(si) = seed {
            let mut rest: Vec<u32> = wanted
                .ones()
                .filter(|&p| counts[p as usize] == 0 && sources[si].have.get(p))
                .collect();
            rest.sort_by_key(|&p| self.mix(p));
            for p in rest {
                if !room(si, &busy) {
                    break;
                }
                busy[si] += 1;
                out.push((si, p));
            }
        }
        out
    }

    /// A per-peer pseudo-random order over pieces.
    fn mix(&self, p: u32) -> u64 {
        splitmix(self.salt ^ (u64::from(self.index) << 32) ^ u64::from(p))
    }
}

/// The peers a peer fetches from: the ones at `k` pseudo-random offsets around the ring of
/// `n` peers (a random circulant graph: every peer is a source for exactly `k` others, and
/// the graph's diameter grows with log n), or every other peer when `n <= k + 1`. Peers
/// compute it alone from their index, so no coordinator hands out neighbour lists.
pub fn neighbours(index: u32, n: u32, k: u32, salt: u64) -> Vec<u32> {
    if n <= k + 1 {
        return (0..n).filter(|&i| i != index).collect();
    }
    let mut offsets: Vec<u32> = Vec::with_capacity(k as usize);
    let mut j = 0u64;
    while (offsets.len() as u32) < k {
        let off = 1 + (splitmix(salt ^ j) % u64::from(n - 1)) as u32;
        if !offsets.contains(&off) {
            offsets.push(off);
        }
        j += 1;
    }
    offsets.iter().map(|off| (index + off) % n).collect()
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of a u64.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
