//! What a download knows of each source, and the long poll that keeps it current.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    bitfield::Bitfield,
    client::{Conn, Fetched},
    schedule::SourceView,
};

/// One source of a download: a peer or the seed.
pub(crate) struct Src {
    /// Its id, for messages.
    pub(crate) id: String,
    /// Where its node listens.
    pub(crate) addr: SocketAddr,
    /// Whether it is the seed (whose have-set is full unless the blob is still growing).
    pub(crate) seed: bool,
    /// The pieces it last said it holds.
    pub(crate) have: Bitfield,
    /// Requests in flight to it.
    pub(crate) busy: u32,
    /// It sent a piece that failed its hash: never asked again for this blob.
    pub(crate) banned: bool,
    /// Since when its have long-poll fails; cleared when it answers again.
    pub(crate) down_since: Option<Instant>,
    /// Not asked before this (after a failed or declined request).
    pub(crate) retry_at: Option<Instant>,
    /// The last failure, for the lost-piece error.
    pub(crate) error: Option<String>,
    /// Whether it has answered at all. Peers start at slightly different times, so a peer
    /// that refuses connections at first is only reported once it stays silent.
    pub(crate) answered: bool,
    /// Whether its going down was reported.
    pub(crate) reported: bool,
}

/// What the download's tasks tell its loop.
pub(crate) enum Ev {
    /// Source `.0` answered its have long-poll.
    Have(usize, Bitfield),
    /// Source `.0`'s have long-poll failed.
    Down(usize, String),
    /// A request to source `.0` for piece `.1` ended.
    Piece(usize, u32, Fetched),
    /// Piece `.0`, whose hash came after the start, was checked on disk: whether it held.
    OnDisk(u32, bool),
}

impl Src {
    pub(crate) fn new(id: &str, addr: SocketAddr, seed: bool, have: Bitfield) -> Self {
        Self {
            id: id.to_string(),
            addr,
            seed,
            have,
            busy: 0,
            banned: false,
            down_since: None,
            retry_at: None,
            error: None,
            answered: false,
            reported: false,
        }
    }

    pub(crate) fn view(&self, now: Instant) -> SourceView<'_> {
        SourceView {
            have: &self.have,
            busy: self.busy,
            seed: self.seed,
            usable: !self.banned
                && self.down_since.is_none()
                && self.retry_at.is_none_or(|t| now >= t),
        }
    }

    pub(crate) fn up(&mut self, have: Bitfield) {
        // A seed of a whole blob keeps its full set; a growing seed's set is what it says.
        if !(self.seed && self.have.is_full()) {
            self.have = have;
        }
        self.down_since = None;
        self.error = None;
        self.answered = true;
        self.reported = false;
    }

    /// Marks the source down; returns whether to report it now: a source that answered
    /// before and was up until now.
    pub(crate) fn down(&mut self, now: Instant, error: &str) -> bool {
        self.error = Some(error.to_string());
        let was_up = self.down_since.is_none();
        self.down_since.get_or_insert(now);
        let report = was_up && self.answered;
        self.reported |= report;
        report
    }

    /// Whether a source that never answered has now been silent for `patience`, and was
    /// not reported yet (it is, once).
    pub(crate) fn silent_since_start(&mut self, now: Instant, patience: Duration) -> bool {
        let silent = !self.answered
            && !self.reported
            && self
                .down_since
                .is_some_and(|t| now.duration_since(t) >= patience);
        self.reported |= silent;
        silent
    }
}

/// Long-polls one source's have-set for as long as the download runs.
pub(crate) async fn poll_have(
    addr: SocketAddr,
    token: String,
    blob: String,
    pieces: u32,
    i: usize,
    tx: mpsc::UnboundedSender<Ev>,
) {
    let mut conn: Option<Conn> = None;
    let mut after = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = match conn.as_mut() {
            Some(c) => c.have(&token, &blob, pieces, after).await,
            None => match Conn::open(addr).await {
                Ok(c) => {
                    conn = Some(c);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        let ev = match result {
            Ok((v, bits)) => {
                after = Some(v);
                backoff = Duration::from_millis(100);
                Ev::Have(i, bits)
            }
            Err(e) => {
                conn = None;
                Ev::Down(i, e)
            }
        };
        let down = matches!(ev, Ev::Down(..));
        if tx.send(ev).is_err() {
            return;
        }
        if down {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
