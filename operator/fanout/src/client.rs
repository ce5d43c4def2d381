//! Requests to other peers: have long-polls and piece fetches.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, client::conn::http1, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{
    bitfield::Bitfield,
    limit::{self, RateLimit},
    wire,
};

/// How long a connection attempt may take.
const CONNECT: Duration = Duration::from_secs(5);
/// How long a piece body may go without a byte before the source counts as stalled.
const IDLE: Duration = Duration::from_secs(20);

/// A connection to one peer, reused for successive requests.
pub(crate) struct Conn {
    sender: http1::SendRequest<Empty<Bytes>>,
}

impl Conn {
    /// Connects to `addr`.
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out after {CONNECT:?}"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    async fn get(
        &mut self,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        let mut req = Request::get(path).header(header::HOST, "fanout");
        if let Some((a, b)) = range {
            req = req.header(header::RANGE, format!("bytes={a}-{b}"));
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| format!("build request: {e}"))?;
        self.sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET {}: {e}", redact(path)))
    }

    /// The source's have-set once its version passes `after` (or at once without one).
    pub(crate) async fn have(
        &mut self,
        token: &str,
        blob: &str,
        pieces: u32,
        after: Option<u64>,
    ) -> Result<(u64, Bitfield), String> {
        let mut path = wire::path(token, blob, "have");
        if let Some(a) = after {
            path.push_str(&format!("?after={a}"));
        }
        let resp = tokio::time::timeout(wire::LONG_POLL + IDLE, self.get(&path, None))
            .await
            .map_err(|_| "have request timed out".to_string())??;
        if resp.status() != StatusCode::OK {
            return Err(format!("have request answered {}", resp.status()));
        }
        let version = resp
            .headers()
            .get(wire::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or("have answer without a version")?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("have body: {e}"))?
            .to_bytes();
        let bits = Bitfield::from_bytes(pieces, &body).ok_or("have answer of the wrong length")?;
        Ok((version, bits))
    }
}

/// How a piece request ended, short of a hash check.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The piece arrived whole: this many bytes went to the sink.
    Bytes(u64),
    /// A seed declined to repeat the piece for now (503).
    Busy,
    /// The source does not hold it (404).
    Missing,
    /// The request failed.
    Failed(String),
}

/// Fetches bytes `start..start+len` of `blob` from `addr`, paced by `download`, handing
/// each chunk to `sink` as it arrives.
pub(crate) async fn piece(
    addr: SocketAddr,
    token: &str,
    blob: &str,
    (start, len): (u64, u64),
    download: Option<&RateLimit>,
    sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
) -> Fetched {
    let mut conn = match Conn::open(addr).await {
        Ok(c) => c,
        Err(e) => return Fetched::Failed(e),
    };
    let path = wire::path(token, blob, "data");
    let resp = match conn.get(&path, Some((start, start + len - 1))).await {
        Ok(r) => r,
        Err(e) => return Fetched::Failed(e),
    };
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::SERVICE_UNAVAILABLE => return Fetched::Busy,
        StatusCode::NOT_FOUND => return Fetched::Missing,
        other => return Fetched::Failed(format!("piece request answered {other}")),
    }
    let mut body = resp.into_body();
    let mut got = 0u64;
    loop {
        let frame = match tokio::time::timeout(IDLE, body.frame()).await {
            Err(_) => return Fetched::Failed(format!("no data for {IDLE:?}")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Fetched::Failed(format!("piece body: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            limit::take(download, data.len()).await;
            if got + data.len() as u64 > len {
                return Fetched::Failed("piece body longer than the piece".into());
            }
            if let Err(e) = sink(&data) {
                return Fetched::Failed(format!("store the piece: {e}"));
            }
            got += data.len() as u64;
        }
    }
    if got != len {
        return Fetched::Failed(format!("piece body ended at {got} of {len} bytes"));
    }
    Fetched::Bytes(got)
}

/// A path with its token hidden, for messages.
fn redact(path: &str) -> String {
    match wire::split(path) {
        Some((_, blob, what)) => format!("/fanout/<token>/{blob}/{what}"),
        None => path.to_string(),
    }
}
