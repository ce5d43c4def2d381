//! Filling one blob from the swarm while serving what has arrived.

mod grow;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, sync::watch, task::JoinSet};

use crate::{
    bitfield::Bitfield,
    client::{self, Fetched},
    error::{Error, Result},
    flush::Flusher,
    limit::RateLimit,
    manifest::PieceManifest,
    node::Node,
    options::{FetchOptions, Swarm},
    schedule::{Picker, SourceView},
    server::Entry,
    source::{Ev, Src},
    store::{PartialBlob, stored_path},
};

/// What a download reports as it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum FetchEvent {
    /// How far it is.
    Progress {
        /// The blob.
        blob: String,
        /// Verified bytes held.
        bytes: u64,
        /// The blob's size.
        size: u64,
        /// Verified pieces held.
        pieces: u32,
        /// Pieces in the blob.
        total: u32,
        /// Bytes per second received since the last report.
        rate: u64,
    },
    /// A source sent a piece that failed its hash and is no longer asked for this blob.
    Banned {
        /// The blob.
        blob: String,
        /// The source.
        peer: String,
        /// The piece it sent.
        piece: u32,
    },
    /// A source stopped answering; it is asked again when it answers a have request.
    SourceDown {
        /// The blob.
        blob: String,
        /// The source.
        peer: String,
        /// Why.
        error: String,
    },
}

/// How a download ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReport {
    /// The blob.
    pub blob: String,
    /// Where it is stored.
    pub path: PathBuf,
    /// Pieces found verified on disk: at the start, or (for a growing blob) when their
    /// hashes came.
    pub resumed_pieces: u32,
    /// Bytes received from the seed.
    pub from_seed: u64,
    /// Bytes received from peers.
    pub from_peers: u64,
    /// Sources banned for bad pieces.
    pub banned: Vec<String>,
    /// Seconds the download took.
    pub seconds: f64,
}

impl Node {
    /// Fetches `manifest`'s blob into `store` from `swarm`, serving each piece as soon as it
    /// is verified, and returns once the whole blob is stored. The node keeps serving it
    /// afterwards, until dropped. `events` hears progress, bans and sources going down.
    pub async fn fetch(
        &self,
        manifest: Arc<PieceManifest>,
        swarm: &Swarm,
        store: &Path,
        opts: &FetchOptions,
        events: &(dyn Fn(FetchEvent) + Send + Sync),
    ) -> Result<FetchReport> {
        let (_keep, feed) = watch::channel(manifest);
        let (_keep_swarm, swarms) = watch::channel(swarm.clone());
        self.fetch_growing(feed, swarms, store, opts, events).await
    }

    /// As [`Node::fetch`], for a blob whose seed still receives it: `feed` carries its
    /// manifest, which may start without piece hashes ([`PieceManifest::growing`]) and
    /// gains them as the seed publishes them. Only pieces whose hash is known are asked
    /// for, so the blob is complete, and stored, once the last hash has come and its piece
    /// verified. A manifest on `feed` that does not extend the one before (another blob,
    /// size or piece size, or changed hashes) ends the fetch with an error; the pieces
    /// verified so far stay on disk for the next try.
    ///
    /// `swarms` carries the swarm, which may grow while the blob downloads (peers that
    /// start later join it): each peer sent is added as a source, and the strips are cut
    /// again over the larger swarm, so that every peer's strip matches what the others
    /// now think it is. Peers are never dropped from a running fetch.
    pub async fn fetch_growing(
        &self,
        mut feed: watch::Receiver<Arc<PieceManifest>>,
        mut swarms: watch::Receiver<Swarm>,
        store: &Path,
        opts: &FetchOptions,
        events: &(dyn Fn(FetchEvent) + Send + Sync),
    ) -> Result<FetchReport> {
        let started = Instant::now();
        let manifest = feed.borrow_and_update().clone();
        manifest.validate_growing()?;
        let blob = manifest.sha256.clone();
        let stored = stored_path(store, &blob);
        if let Ok(file) = std::fs::File::open(&stored) {
            // Names in the store are verified on the way in.
            self.serve_whole(manifest.clone(), file, false);
            return Ok(FetchReport {
                blob,
                path: stored,
                resumed_pieces: manifest.piece_count(),
                from_seed: 0,
                from_peers: 0,
                banned: Vec::new(),
                seconds: 0.0,
            });
        }
        let (store2, m2) = (store.to_path_buf(), manifest.clone());
        let opened = tokio::task::spawn_blocking(move || PartialBlob::open(&store2, m2))
            .await
            .map_err(|e| Error::ReadBlob {
                path: store.to_path_buf(),
                source: std::io::Error::other(e),
            })??;
        let partial = Arc::new(opened.blob);
        let mut have = opened.have;
        let resumed = have.count();
        let entry = self.shared.insert(Entry {
            manifest: manifest.clone(),
            file: partial.file(),
            have: watch::channel((0, have.clone())).0,
            sent: None,
        });
        let recheck = opened.existed && !manifest.is_complete();
        let swarm = swarms.borrow_and_update().clone();
        let run = Run::new(
            self,
            manifest.clone(),
            &swarm,
            opts,
            partial.clone(),
            entry,
            recheck,
        );
        let flusher = Flusher::start(partial.file());
        let (from_seed, from_peers, banned, resumed_late) = run
            .drive(&mut have, &mut feed, &mut swarms, &flusher, events)
            .await?;
        flusher.finish().await.map_err(|source| Error::WriteBlob {
            op: "sync",
            path: partial.path().to_path_buf(),
            source,
        })?;
        let path = tokio::task::spawn_blocking(move || match Arc::try_unwrap(partial) {
            Ok(p) => p.finish(&have),
            Err(_) => Err(Error::WriteBlob {
                op: "finish",
                path: PathBuf::from(&blob),
                source: std::io::Error::other("a piece writer is still running"),
            }),
        })
        .await
        .map_err(|e| Error::ReadBlob {
            path: stored.clone(),
            source: std::io::Error::other(e),
        })??;
        Ok(FetchReport {
            blob: manifest.sha256.clone(),
            path,
            resumed_pieces: resumed + resumed_late,
            from_seed,
            from_peers,
            banned,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// One download's moving parts.
struct Run<'a> {
    node: &'a Node,
    manifest: Arc<PieceManifest>,
    token: String,
    opts: &'a FetchOptions,
    partial: Arc<PartialBlob>,
    entry: Arc<Entry>,
    picker: Picker,
    srcs: Vec<Src>,
    /// Whether the partial file was there at the start: pieces whose hashes come later may
    /// be on disk already, and are checked there before they are asked for.
    recheck: bool,
    /// Pieces being checked on disk, not asked for meanwhile.
    checking: Bitfield,
    /// Pieces found on disk after the start.
    resumed_late: u32,
}

impl<'a> Run<'a> {
    fn new(
        node: &'a Node,
        manifest: Arc<PieceManifest>,
        swarm: &Swarm,
        opts: &'a FetchOptions,
        partial: Arc<PartialBlob>,
        entry: Arc<Entry>,
        recheck: bool,
    ) -> Self {
        let pieces = manifest.piece_count();
        let mut srcs = Vec::new();
        if let Some(seed) = swarm.seed {
            // A seed holding the whole blob has every piece; a growing one says what it holds.
            let have = if manifest.is_complete() {
                Bitfield::full(pieces)
            } else {
                Bitfield::new(pieces)
            };
            srcs.push(Src::new("seed", seed, true, have));
        }
        let mut run = Self {
            node,
            token: node.shared.token.clone(),
            picker: Picker::new(pieces, 0, 1, 0, opts.bounds),
            checking: Bitfield::new(pieces),
            recheck,
            resumed_late: 0,
            manifest,
            opts,
            partial,
            entry,
            srcs,
        };
        run.join(swarm);
        run
    }

    /// Runs until every piece is held; returns bytes from the seed and from peers, the
    /// banned sources, and the pieces found on disk once their hashes came.
    async fn drive(
        mut self,
        have: &mut Bitfield,
        feed: &mut watch::Receiver<Arc<PieceManifest>>,
        swarms: &mut watch::Receiver<Swarm>,
        flusher: &Flusher,
        events: &(dyn Fn(FetchEvent) + Send + Sync),
    ) -> Result<(u64, u64, Vec<String>, u32)> {
        let (mut feed_open, mut swarms_open) = (true, true);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pollers = JoinSet::new();
        for i in 0..self.srcs.len() {
            self.poll(i, &mut pollers, &tx);
        }
        for i in have.ones() {
            self.entry.announce(i);
        }
        let mut tasks = JoinSet::new();
        let mut inflight = Bitfield::new(self.manifest.piece_count());
        let (mut from_seed, mut from_peers) = (0u64, 0u64);
        let mut stalled_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_report = (Instant::now(), have.count());
        while !have.is_full() {
            let now = Instant::now();
            self.schedule(have, &mut inflight, stalled_since, now, &mut tasks, &tx);
            if inflight.count() == 0 {
                let since = *stalled_since.get_or_insert(now);
                self.check_lost(have, since, now)?;
            } else {
                stalled_since = None;
            }
            tokio::select! {
                Some(ev) = rx.recv() => match ev {
                    Ev::Have(i, bits) => self.srcs[i].up(bits),
                    Ev::OnDisk(p, verified) => self.found_on_disk(p, verified, have),
                    Ev::Down(i, error) => {
                        if self.srcs[i].down(now, &error) {
                            events(FetchEvent::SourceDown {
                                blob: self.manifest.sha256.clone(),
                                peer: self.srcs[i].id.clone(),
                                error,
                            });
                        }
                    }
                    Ev::Piece(i, p, outcome) => {
                        inflight.unset(p);
                        let s = &mut self.srcs[i];
                        s.busy = s.busy.saturating_sub(1);
                        match outcome {
                            Fetched::Bytes(n) => {
                                have.set(p);
                                self.entry.announce(p);
                                flusher.written(self.manifest.piece_span(p).1);
                                if s.seed { from_seed += n } else { from_peers += n }
                            }
                            Fetched::Missing => s.have.unset(p),
                            Fetched::Busy => s.retry_at = Some(now + BUSY_BACKOFF),
                            Fetched::Failed(e) if e.starts_with(BAD_PIECE) => {
                                s.banned = true;
                                tracing::warn!(peer = %s.id, piece = p, "banned for a piece that failed its hash");
                                events(FetchEvent::Banned {
                                    blob: self.manifest.sha256.clone(),
                                    peer: s.id.clone(),
                                    piece: p,
                                });
                            }
                            Fetched::Failed(e) => {
                                s.retry_at = Some(now + Duration::from_millis(500));
                                s.error = Some(e);
                            }
                        }
                    }
                },
                changed = feed.changed(), if feed_open => match changed {
                    Ok(()) => {
                        let next = feed.borrow_and_update().clone();
                        self.grow(next, have, &tx)?;
                    }
                    // The sender is gone: the manifest stays as it is.
                    Err(_) => feed_open = false,
                },
                changed = swarms.changed(), if swarms_open => match changed {
                    Ok(()) => {
                        let swarm = swarms.borrow_and_update().clone();
                        for i in self.join(&swarm) {
                            self.poll(i, &mut pollers, &tx);
                        }
                    }
                    Err(_) => swarms_open = false,
                },
                _ = tick.tick() => {}
            }
            for s in &mut self.srcs {
                if s.silent_since_start(now, NEVER_ANSWERED) {
                    events(FetchEvent::SourceDown {
                        blob: self.manifest.sha256.clone(),
                        peer: s.id.clone(),
                        error: format!(
                            "no answer since the start: {}",
                            s.error.as_deref().unwrap_or("unknown error")
                        ),
                    });
                }
            }
            if last_report.0.elapsed() >= self.opts.progress_every {
                let pieces = have.count();
                let bytes = self.held_bytes(have);
                let delta = bytes.saturating_sub(self.held_bytes_of(last_report.1));
                let rate = (delta as f64 / last_report.0.elapsed().as_secs_f64()) as u64;
                events(FetchEvent::Progress {
                    blob: self.manifest.sha256.clone(),
                    bytes,
                    size: self.manifest.size,
                    pieces,
                    total: self.manifest.piece_count(),
                    rate,
                });
                last_report = (Instant::now(), pieces);
            }
        }
        tasks.shutdown().await;
        pollers.shutdown().await;
        events(FetchEvent::Progress {
            blob: self.manifest.sha256.clone(),
            bytes: self.manifest.size,
            size: self.manifest.size,
            pieces: have.count(),
            total: self.manifest.piece_count(),
            rate: 0,
        });
        let banned = self
            .srcs
            .iter()
            .filter(|s| s.banned)
            .map(|s| s.id.clone())
            .collect();
        Ok((from_seed, from_peers, banned, self.resumed_late))
    }

    /// Starts the requests the picker chooses.
    fn schedule(
        &mut self,
        have: &Bitfield,
        inflight: &mut Bitfield,
        stalled_since: Option<Instant>,
        now: Instant,
        tasks: &mut JoinSet<()>,
        tx: &mpsc::UnboundedSender<Ev>,
    ) {
        let to_peers: u32 = self.srcs.iter().filter(|s| !s.seed).map(|s| s.busy).sum();
        let slots = self.opts.slots.saturating_sub(to_peers);
        let fallback = stalled_since.is_some_and(|t| now.duration_since(t) >= self.opts.seed_grace);
        // Pieces whose hash is not known yet are never asked for: nothing could verify them.
        let known = self.manifest.known_pieces();
        let mut blocked = have.clone();
        for p in self.checking.ones() {
            blocked.set(p);
        }
        for p in known..self.manifest.piece_count() {
            blocked.set(p);
        }
        let picks = {
            let views: Vec<SourceView<'_>> = self.srcs.iter().map(|s| s.view(now)).collect();
            self.picker
                .pick(&blocked, inflight, &views, fallback, slots)
        };
        for (i, p) in picks {
            let Some(want) = self.manifest.pieces.get(p as usize).cloned() else {
                continue;
            };
            inflight.set(p);
            let s = &mut self.srcs[i];
            s.busy += 1;
            let span = self.manifest.piece_span(p);
            let (addr, token, blob) = (s.addr, self.token.clone(), self.manifest.sha256.clone());
            let (partial, tx) = (self.partial.clone(), tx.clone());
            let download: Option<Arc<RateLimit>> = self.node.download.clone();
            tasks.spawn(async move {
                // The piece goes to its place in the partial file as it arrives, hashed on
                // the way, so memory holds one chunk per request, not one piece. Bytes of a
                // piece that fails its hash stay unmarked: never served, and re-verified
                // (and refused) by a resume.
                let mut hasher = Sha256::new();
                let mut at = span.0;
                let mut sink = |chunk: &[u8]| {
                    hasher.update(chunk);
                    partial.write_at(chunk, at)?;
                    at += chunk.len() as u64;
                    Ok(())
                };
                let got =
                    client::piece(addr, &token, &blob, span, download.as_deref(), &mut sink).await;
                let outcome = match got {
                    Fetched::Bytes(n) if hex::encode(hasher.finalize()) != want => {
                        let _ = n;
                        Fetched::Failed(format!("{BAD_PIECE} {p}"))
                    }
                    other => other,
                };
                let _ = tx.send(Ev::Piece(i, p, outcome));
            });
        }
    }

    fn held_bytes(&self, have: &Bitfield) -> u64 {
        have.ones().map(|p| self.manifest.piece_span(p).1).sum()
    }

    fn held_bytes_of(&self, pieces: u32) -> u64 {
        u64::from(pieces) * self.manifest.piece_size
    }
}

/// How long a source that never answered may stay silent before it is reported down.
const NEVER_ANSWERED: Duration = Duration::from_secs(5);

/// How long a source that answered 503 (its upload slots full) is left alone.
const BUSY_BACKOFF: Duration = Duration::from_millis(30);

/// The prefix of the failure a piece that fails its hash becomes.
const BAD_PIECE: &str = "bad piece";
