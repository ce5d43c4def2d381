//! The blob server: plain HTTP/1.1 that serves an operation's blobs to its hosts.
//!
//! `GET` and `HEAD` on `/blobs/<token>/<sha256>`, with `Range: bytes=N-` and `bytes=N-M`
//! (206 and Content-Range; 416 past the end). The token is random per operation, so only
//! holders of the operation's plans can read; the bytes' integrity is the agents' sha256
//! check, not the transport's. It listens on the engine's own address towards the hosts
//! (one listener per distinct address, port chosen by the kernel), never on every
//! interface, and stops when dropped: with the operation.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    fs::File,
    io,
    net::{IpAddr, SocketAddr},
    os::unix::fs::FileExt,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Bytes, Frame, Incoming, SizeHint},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

use super::range::{ByteRange, RangeAsk, parse_range};
use crate::session::LocalBlob;

/// Bytes per read from a blob file; each is one body frame.
const CHUNK: usize = 512 << 10;
/// Chunks read ahead of the socket per response.
const READ_AHEAD: usize = 4;

/// Counters of what the server did, for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests answered with a blob's bytes (200 or 206, GET or HEAD).
    pub requests: u64,
    /// Of those, requests whose range started past byte 0: resumed transfers.
    pub resumed: u64,
    /// Body bytes handed to connections.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    resumed: AtomicU64,
    bytes: AtomicU64,
}

/// What the request handlers share.
#[derive(Debug)]
struct Shared {
    token: String,
    files: RwLock<BTreeMap<String, LocalBlob>>,
    counters: Counters,
}

/// An operation's blob server.
#[derive(Debug)]
pub struct BlobServer {
    shared: Arc<Shared>,
    listeners: BTreeMap<IpAddr, (SocketAddr, JoinHandle<()>)>,
}

impl Default for BlobServer {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobServer {
    /// A server with a fresh random token, no blobs and no listener yet.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                token: hex::encode(rand::random::<[u8; 16]>()),
                files: RwLock::new(BTreeMap::new()),
                counters: Counters::default(),
            }),
            listeners: BTreeMap::new(),
        }
    }

    /// Makes `blob` servable under its sha256.
    pub fn add(&self, blob: &LocalBlob) {
        if let Ok(mut files) = self.shared.files.write() {
            files
                .entry(blob.sha256.clone())
                .or_insert_with(|| blob.clone());
        }
    }

    /// The listener on `ip`, started now (port 0: the kernel picks) unless it runs already.
    pub async fn listen(&mut self, ip: IpAddr) -> io::Result<SocketAddr> {
        if let Some((addr, _)) = self.listeners.get(&ip) {
            return Ok(*addr);
        }
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, self.shared.clone()));
        tracing::debug!(%addr, "blob server listening");
        self.listeners.insert(ip, (addr, task));
        Ok(addr)
    }

    /// The addresses it listens on.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.values().map(|(a, _)| *a).collect()
    }

    /// The URL prefix a host reaches through listener `addr`; a blob's URL is this plus
    /// its sha256.
    pub fn base_url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/blobs/{}/", self.shared.token)
    }

    /// What it served so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        ServerStats {
            requests: c.requests.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for BlobServer {
    fn drop(&mut self) {
        // Aborting an accept loop drops its connections' JoinSet, which aborts them too;
        // their file readers stop at their next chunk, finding nobody to hand it to.
        for (_, task) in self.listeners.values() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: transient; the agents retry.
                tracing::warn!("blob server: accept failed: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&req, &shared, peer)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "blob server connection ended: {e}");
            }
        });
    }
}

/// Answers one request.
fn answer(req: &Request<Incoming>, shared: &Shared, peer: SocketAddr) -> Response<Payload> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    // Unknown token and unknown blob look alike: a wrong token learns nothing.
    let blob = req
        .uri()
        .path()
        .strip_prefix("/blobs/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(token, _)| same(token, &shared.token))
        .and_then(|(_, sha)| shared.files.read().ok()?.get(sha).cloned());
    let Some(blob) = blob else {
        return plain(StatusCode::NOT_FOUND, "no such blob\n");
    };
    let file = match File::open(&blob.path).and_then(|f| Ok((f.metadata()?.len(), f))) {
        Ok((len, f)) if len == blob.size => f,
        Ok((len, _)) => {
            tracing::error!(
                "blob server: {} holds {len} bytes, the bundle lists {}",
                blob.path.display(),
                blob.size
            );
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "bundle file changed\n");
        }
        Err(e) => {
            tracing::error!("blob server: cannot open {}: {e}", blob.path.display());
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read blob\n");
        }
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAsk::Whole, |v| parse_range(v, blob.size));
    let (status, start, len) = match range {
        RangeAsk::Whole => (StatusCode::OK, 0, blob.size),
        RangeAsk::Part(ByteRange { start, end }) => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            if let Ok(v) = format!("bytes */{}", blob.size).parse() {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    if start > 0 {
        c.resumed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "blob server: {peer} resumes blob {} at byte {start} of {}",
            &blob.sha256[..12],
            blob.size
        );
    } else {
        tracing::debug!("blob server: {peer} fetches blob {}", &blob.sha256[..12]);
    }
    let head = req.method() == Method::HEAD;
    let body = if head || len == 0 {
        Payload::Empty
    } else {
        c.bytes.fetch_add(len, Ordering::Relaxed);
        Payload::file(file, blob.path.clone(), start, len)
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, blob.size),
        );
    }
    builder
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad response\n"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Payload> {
    let mut r = Response::new(Payload::Text(Some(Bytes::from_static(text.as_bytes()))));
    *r.status_mut() = status;
    r
}

/// Token comparison that takes as long whichever byte differs.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A response body: nothing, a short text, or a file range read ahead on a blocking thread
/// in large chunks, never buffered whole.
enum Payload {
    Empty,
    Text(Option<Bytes>),
    File {
        chunks: mpsc::Receiver<io::Result<Bytes>>,
        left: u64,
    },
}

impl Payload {
    fn file(file: File, path: PathBuf, start: u64, len: u64) -> Self {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            let end = start + len;
            let mut at = start;
            while at < end {
                let n = usize::try_from(end - at).map_or(CHUNK, |l| l.min(CHUNK));
                let mut buf = vec![0u8; n];
                let chunk = file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf));
                let failed = chunk.is_err();
                if let Err(e) = &chunk {
                    tracing::error!("blob server: reading {}: {e}", path.display());
                }
                // The receiver is gone when the connection closed: stop reading.
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
                at += n as u64;
            }
        });
        Payload::File {
            chunks: rx,
            left: len,
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Payload::Empty => Poll::Ready(None),
            Payload::Text(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
            Payload::File { chunks, left } => match chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    *left -= b.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if *left > 0 => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob reader stopped early",
                )))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Payload::Empty => true,
            Payload::Text(t) => t.is_none(),
            Payload::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Payload::Empty => SizeHint::with_exact(0),
            Payload::Text(t) => SizeHint::with_exact(t.as_ref().map_or(0, |b| b.len() as u64)),
            Payload::File { left, .. } => SizeHint::with_exact(*left),
        }
    }
}
