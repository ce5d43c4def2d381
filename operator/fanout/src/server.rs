//! The peer's HTTP server: the have-sets and verified pieces of the blobs it holds.

use std::{
    collections::HashMap,
    convert::Infallible,
    fs::File,
    io,
    os::unix::fs::FileExt,
    pin::Pin,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Frame, Incoming, SizeHint},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};

use crate::{
    bitfield::Bitfield,
    limit::{self, RateLimit},
    manifest::PieceManifest,
    wire,
};

/// Bytes per read from a blob file; each is one body frame and one rate-limit step.
const CHUNK: usize = 256 << 10;

/// A blob the server can serve pieces of.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) manifest: Arc<PieceManifest>,
    pub(crate) file: Arc<File>,
    /// The verified pieces and their version, bumped on every change.
    pub(crate) have: watch::Sender<(u64, Bitfield)>,
    /// For a seed: the pieces it has started sending at least once.
    pub(crate) sent: Option<Mutex<Bitfield>>,
}

impl Entry {
    /// Adds verified piece `i` to what is served and tells waiting have requests.
    pub(crate) fn announce(&self, i: u32) {
        self.have.send_modify(|(v, b)| {
            if b.set(i) {
                *v += 1;
            }
        });
    }
}

/// Counters of what a node served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Piece bytes sent.
    pub bytes: u64,
    /// Piece requests answered with the piece.
    pub pieces: u64,
    /// Piece requests a seed declined (503) because first copies were still pending.
    pub declined: u64,
}

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicU64,
    pieces: AtomicU64,
    declined: AtomicU64,
    active: AtomicU64,
}

/// What every connection of one node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) token: String,
    pub(crate) blobs: RwLock<HashMap<String, Arc<Entry>>>,
    pub(crate) upload: Option<RateLimit>,
    /// A seed sends a piece again only while fewer uploads than this are running.
    pub(crate) seed_repeat_below: u64,
    /// Pieces a peer sends at once; more wait their turn.
    upload_permits: Arc<Semaphore>,
    /// Requests a peer holds (sending or waiting); more are declined.
    peer_queue: u64,
    /// Pieces a seed sends at once.
    seed_permits: Arc<Semaphore>,
    counters: Counters,
}

impl Shared {
    pub(crate) fn new(
        token: String,
        upload: Option<RateLimit>,
        seed_repeat_below: u64,
        (upload_slots, seed_slots): (usize, usize),
    ) -> Self {
        Self {
            token,
            blobs: RwLock::new(HashMap::new()),
            upload,
            seed_repeat_below,
            upload_permits: Arc::new(Semaphore::new(upload_slots)),
            peer_queue: upload_slots as u64,
            seed_permits: Arc::new(Semaphore::new(seed_slots)),
            counters: Counters::default(),
        }
    }

    pub(crate) fn entry(&self, sha256: &str) -> Option<Arc<Entry>> {
        self.blobs.read().ok()?.get(sha256).cloned()
    }

    pub(crate) fn insert(&self, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        if let Ok(mut blobs) = self.blobs.write() {
            blobs.insert(entry.manifest.sha256.clone(), entry.clone());
        }
        entry
    }

    pub(crate) fn stats(&self) -> ServeStats {
        let c = &self.counters;
        ServeStats {
            bytes: c.bytes.load(Ordering::Relaxed),
            pieces: c.pieces.load(Ordering::Relaxed),
            declined: c.declined.load(Ordering::Relaxed),
        }
    }
}

/// Accepts connections until the task is aborted; aborting it drops every connection too,
/// as a peer that dies would.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<PieceBody> {
    if req.method() != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some((token, blob, what)) = wire::split(req.uri().path()) else {
        return status(StatusCode::NOT_FOUND);
    };
    if !wire::token_eq(token, &shared.token) {
        return status(StatusCode::NOT_FOUND);
    }
    let Some(entry) = shared.entry(blob) else {
        return status(StatusCode::NOT_FOUND);
    };
    match what {
        "have" => have(&entry, wire::parse_after(req.uri().query())).await,
        "data" => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(wire::parse_range);
            data(shared, &entry, range)
        }
        _ => status(StatusCode::NOT_FOUND),
    }
}

async fn have(entry: &Entry, after: Option<u64>) -> Response<PieceBody> {
    let mut rx = entry.have.subscribe();
    if let Some(after) = after
        && rx.borrow().0 <= after
    {
        // Wait for news, but answer anyway after a while so the caller learns we are alive.
        let _ = tokio::time::timeout(wire::LONG_POLL, rx.wait_for(|(v, _)| *v > after)).await;
    }
    let (version, bytes) = {
        let cur = rx.borrow();
        (cur.0, cur.1.to_bytes())
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(wire::VERSION_HEADER, version)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(PieceBody::full(bytes))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn data(
    shared: &Arc<Shared>,
    entry: &Arc<Entry>,
    range: Option<(u64, u64)>,
) -> Response<PieceBody> {
    let m = &entry.manifest;
    let Some((start, end)) = range else {
        return status(StatusCode::RANGE_NOT_SATISFIABLE);
    };
    let piece = (start / m.piece_size) as u32;
    let (pstart, plen) = m.piece_span(piece);
    if piece >= m.piece_count() || start != pstart || end + 1 != pstart + plen {
        return status(StatusCode::RANGE_NOT_SATISFIABLE);
    }
    if !entry.have.borrow().1.get(piece) {
        return status(StatusCode::NOT_FOUND);
    }
    let counters = &shared.counters;
    // Requests accepted and not finished, queued or sending; counted now, not in the reader
    // task, so requests arriving together see each other.
    let active = counters.active.fetch_add(1, Ordering::Relaxed);
    let busy = || {
        counters.active.fetch_sub(1, Ordering::Relaxed);
        counters.declined.fetch_add(1, Ordering::Relaxed);
        let mut r = status(StatusCode::SERVICE_UNAVAILABLE);
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        r
    };
    if entry.sent.is_none() && active >= shared.peer_queue {
        // A peer does not queue past a few requests: a request waiting here would hold the
        // piece while another holder could send it now. 503 sends the requester elsewhere.
        return busy();
    }
    if let Some(sent) = &entry.sent {
        let Ok(mut sent) = sent.lock() else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        // The seed's upload is the scarce link: a piece it already sent is sent again only
        // when nothing else is queued or sending, so first copies always go first.
        if sent.get(piece) && active >= shared.seed_repeat_below {
            return busy();
        }
        sent.set(piece);
    }
    counters.pieces.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(2);
    let file = entry.file.clone();
    let shared = shared.clone();
    // A node sends a few pieces at a time and queues the rest in arrival order, as
    // BitTorrent's unchoke slots limit uploads: each piece then finishes sooner and is passed
    // on sooner, instead of every request finishing together at the end of an N-way share of
    // the uplink. For the seed this matters most: N strip pieces sent at once would all
    // arrive after N piece-times, leaving every peer's download idle until then.
    let permits = if entry.sent.is_some() {
        shared.seed_permits.clone()
    } else {
        shared.upload_permits.clone()
    };
    tokio::spawn(async move {
        let c = &shared.counters;
        let _permit = permits.acquire_owned().await;
        let mut off = pstart;
        let stop = pstart + plen;
        while off < stop {
            let n = CHUNK.min((stop - off) as usize);
            let file = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, off).map(|()| buf)
            })
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
            let chunk = match read {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            };
            limit::take(shared.upload.as_ref(), n).await;
            if tx.send(Ok(chunk)).await.is_err() {
                break;
            }
            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
            off += n as u64;
        }
        c.active.fetch_sub(1, Ordering::Relaxed);
    });
    Response::builder()
        .status(StatusCode::PARTIAL_CONTENT)
        .header(header::CONTENT_LENGTH, plen)
        .header(
            header::CONTENT_RANGE,
            format!("bytes {pstart}-{}/{}", stop_incl(pstart, plen), m.size),
        )
        .body(PieceBody {
            rx: Some(rx),
            len: plen,
        })
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn stop_incl(start: u64, len: u64) -> u64 {
    start + len - 1
}

fn status(code: StatusCode) -> Response<PieceBody> {
    let mut r = Response::new(PieceBody::full(Vec::new()));
    *r.status_mut() = code;
    r
}

/// A response body fed chunk by chunk from a reader task, or given whole.
pub(crate) struct PieceBody {
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    len: u64,
}

impl PieceBody {
    fn full(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        let (tx, rx) = mpsc::channel(1);
        if len > 0 {
            let _ = tx.try_send(Ok(Bytes::from(bytes)));
        }
        Self { rx: Some(rx), len }
    }
}

impl Body for PieceBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map(Frame::data))),
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}
