//! What a download does as its manifest or its swarm grows, and how it decides a piece is
//! lost.

use std::{os::unix::fs::FileExt as _, sync::Arc, time::Instant};

use tokio::{sync::mpsc, task::JoinSet};

use super::Run;
use crate::{
    bitfield::Bitfield,
    error::{Error, Result},
    manifest::PieceManifest,
    options::Swarm,
    schedule::{Picker, neighbours, splitmix},
    source::{Ev, Src, poll_have},
};

impl Run<'_> {
    /// Takes `swarm` in: cuts the strips over it and adds its peers this peer fetches from
    /// that are not sources yet; their indices, for their have-polls.
    pub(super) fn join(&mut self, swarm: &Swarm) -> Vec<usize> {
        let index = swarm
            .peers
            .iter()
            .position(|p| p.id == swarm.me)
            .unwrap_or(0) as u32;
        let n = swarm.peers.len() as u32;
        let salt = u64::from_str_radix(&self.manifest.sha256[..16], 16).unwrap_or(0);
        let pieces = self.manifest.piece_count();
        self.picker = Picker::new(
            pieces,
            index,
            n,
            salt ^ splitmix(u64::from(index)),
            self.opts.bounds,
        );
        let mut added = Vec::new();
        for j in neighbours(index, n, self.opts.neighbours, salt) {
            let p = &swarm.peers[j as usize];
            if !self.srcs.iter().any(|s| !s.seed && s.id == p.id) {
                self.srcs
                    .push(Src::new(&p.id, p.addr, false, Bitfield::new(pieces)));
                added.push(self.srcs.len() - 1);
            }
        }
        added
    }

    /// Starts source `i`'s have long-poll.
    pub(super) fn poll(&self, i: usize, pollers: &mut JoinSet<()>, tx: &mpsc::UnboundedSender<Ev>) {
        pollers.spawn(poll_have(
            self.srcs[i].addr,
            self.token.clone(),
            self.manifest.sha256.clone(),
            self.manifest.piece_count(),
            i,
            tx.clone(),
        ));
    }

    /// Takes `next` as the blob's manifest when it extends the current one. On a resumed
    /// download, the pieces whose hashes just came are checked on disk first (a blocking
    /// task reports each as [`Ev::OnDisk`]), so a restarted peer does not fetch again what
    /// it held before its hashes were known.
    pub(super) fn grow(
        &mut self,
        next: Arc<PieceManifest>,
        have: &Bitfield,
        tx: &mpsc::UnboundedSender<Ev>,
    ) -> Result<()> {
        if !next.extends(&self.manifest) {
            return Err(Error::BadManifest {
                blob: self.manifest.sha256.clone(),
                reason: format!(
                    "the seed's manifest changed under the download (now blob {}, {} bytes in \
                     pieces of {}, {} piece hashes), instead of adding piece hashes",
                    next.sha256,
                    next.size,
                    next.piece_size,
                    next.pieces.len()
                ),
            });
        }
        next.validate_growing()?;
        let new: Vec<u32> = (self.manifest.known_pieces()..next.known_pieces())
            .filter(|&p| !have.get(p))
            .collect();
        self.manifest = next;
        if !self.recheck || new.is_empty() {
            return Ok(());
        }
        for &p in &new {
            self.checking.set(p);
        }
        let (manifest, file, tx) = (self.manifest.clone(), self.partial.file(), tx.clone());
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            for p in new {
                let (start, len) = manifest.piece_span(p);
                buf.resize(len as usize, 0);
                let held =
                    file.read_exact_at(&mut buf, start).is_ok() && manifest.check_piece(p, &buf);
                if tx.send(Ev::OnDisk(p, held)).is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    /// Takes piece `p` as held when it was found on disk.
    pub(super) fn found_on_disk(&mut self, p: u32, verified: bool, have: &mut Bitfield) {
        self.checking.unset(p);
        if verified && have.set(p) {
            self.entry.announce(p);
            self.resumed_late += 1;
        }
    }

    /// Fails when nothing is in flight, no usable source offers a missing piece, and the
    /// seed has been gone (or absent) for longer than `give_up_after`.
    pub(super) fn check_lost(&self, have: &Bitfield, since: Instant, now: Instant) -> Result<()> {
        let waited = now.duration_since(since) >= self.opts.give_up_after;
        let seed_gone = self.srcs.iter().filter(|s| s.seed).all(|s| {
            s.banned
                || s.down_since
                    .is_some_and(|t| now.duration_since(t) >= self.opts.give_up_after)
        });
        if !(waited && seed_gone) {
            return Ok(());
        }
        let missing = Bitfield::full(self.manifest.piece_count()).and_not(have);
        let offered = self
            .srcs
            .iter()
            .filter(|s| !s.banned && s.down_since.is_none())
            .any(|s| {
                let mut m = missing.clone();
                m.intersect(&s.have);
                m.count() > 0
            });
        if offered {
            return Ok(());
        }
        let piece = missing.ones().next().unwrap_or(0);
        let (start, len) = self.manifest.piece_span(piece);
        let sources = self
            .srcs
            .iter()
            .map(|s| {
                let state = if s.banned {
                    "banned".to_string()
                } else if let Some(e) = &s.error {
                    format!("down: {e}")
                } else {
                    "lacks it".to_string()
                };
                format!("{} {state}", s.id)
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::FetchPiece {
            blob: self.manifest.sha256.clone(),
            piece,
            start,
            end: start + len.max(1) - 1,
            sources,
        })
    }
}
