//! The coordinator's control API, served by every daemon but answered only for the models
//! it coordinates:
//!
//! - `POST /v1/models/<key>/join?have=N` with `{"id", "addr"}` (the follower's fan-out
//!   address): registers the follower and answers the [`Published`] state, waiting (up to
//!   [`LONG_POLL`]) until it lists more than `N` files or is complete, so followers do not
//!   poll on a timer.
//!
//! - `GET /metrics` (Prometheus, OpenMetrics text) and `GET /healthz`, without a token.
//!
//! A join carries the cache's token (`Authorization: Bearer`, the fan-out token every node
//! shares); others get 401, so nobody outside the cache can add peers or read manifests.
//!
//! Every answer carries the coordinator's epoch (the Lease's `leaseTransitions` when it took
//! it) in its body and in `X-Kubegrid-Epoch`; followers drop answers from an epoch below the
//! Lease's. A daemon that does not (or no longer) coordinate the model answers 409.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use kubegrid_fanout::{PeerAddr, PieceManifest};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch};

use super::metrics::Metrics;

/// The header every coordinator answer carries its epoch in.
pub const EPOCH_HEADER: &str = "x-kubegrid-epoch";
/// The longest a join waits for news before answering what there is.
pub const LONG_POLL: Duration = Duration::from_secs(20);

/// What a coordinator publishes about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The coordinator's epoch.
    pub epoch: i32,
    /// The coordinator's identity (`node@address`).
    pub coordinator: String,
    /// The commit its files belong to.
    pub commit: String,
    /// The coordinator's fan-out address: the seed.
    pub seed: SocketAddr,
    /// The files verified so far, each with its piece manifest.
    pub files: Vec<PublishedFile>,
    /// Whether every file of the commit is listed.
    pub complete: bool,
    /// The whole model's size in bytes, once resolved (0 before), for followers' progress.
    #[serde(default)]
    pub size: u64,
    /// The peers fetching it, the coordinator first, in one order for every peer.
    pub peers: Vec<PeerAddr>,
}

/// One verified file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedFile {
    /// Its path in the model.
    pub path: String,
    /// Its pieces.
    pub manifest: PieceManifest,
}

/// A join request's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    /// The follower's node.
    pub id: String,
    /// Its fan-out address.
    pub addr: SocketAddr,
}

/// What the server answers from: per model key, the state it publishes, and the token a
/// join must carry (the fan-out's, the same on every node).
#[derive(Debug)]
pub(crate) struct Board {
    models: Mutex<HashMap<String, watch::Sender<Option<Published>>>>,
    token: String,
}

impl Board {
    /// A board that answers joins carrying `token`.
    pub(crate) fn new(token: &str) -> Self {
        Self {
            models: Mutex::new(HashMap::new()),
            token: token.to_string(),
        }
    }

    /// Whether `header` is `Bearer <token>`, compared in constant time.
    fn authorized(&self, header: Option<&hyper::header::HeaderValue>) -> bool {
        let Some(given) = header
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        let (a, b) = (given.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The publisher of `key`, created empty when missing.
    pub(crate) fn publisher(&self, key: &str) -> watch::Sender<Option<Published>> {
        self.models
            .lock()
            .expect("board lock")
            .entry(key.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    /// Stops answering for `key` (leadership lost); waiting joins end with 409.
    pub(crate) fn withdraw(&self, key: &str) {
        if let Some(tx) = self.models.lock().expect("board lock").get(key) {
            tx.send_replace(None);
        }
    }
}

/// Serves the control API on `listener` until the task is dropped; open connections (and
/// the joins waiting on them) end with it, as they would when the process dies.
pub(crate) async fn serve(listener: TcpListener, board: Arc<Board>, metrics: Arc<Metrics>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let board = Arc::clone(&board);
                let metrics = Arc::clone(&metrics);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        answer(Arc::clone(&board), Arc::clone(&metrics), request)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn reply(status: StatusCode, epoch: Option<i32>, body: String) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(e) = epoch {
        builder = builder.header(EPOCH_HEADER, e.to_string());
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn answer(
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Prometheus and the kubelet carry no token: these two tell counts, never manifests.
    if request.method() == Method::GET {
        let (content_type, body) = match request.uri().path() {
            "/metrics" => (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.render(),
            ),
            "/healthz" => ("text/plain", "ok\n".to_string()),
            _ => ("text/plain", String::new()),
        };
        let status = if body.is_empty() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        return Ok(Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    if !board.authorized(request.headers().get(hyper::header::AUTHORIZATION)) {
        return Ok(reply(
            StatusCode::UNAUTHORIZED,
            None,
            "{\"error\":\"a join must carry the cache's token\"}".into(),
        ));
    }
    let path = request.uri().path().to_string();
    let have: usize = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("have=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let key = match (
        request.method(),
        path.strip_prefix("/v1/models/")
            .and_then(|r| r.strip_suffix("/join")),
    ) {
        (&Method::POST, Some(key)) => key.to_string(),
        _ => {
            return Ok(reply(
                StatusCode::NOT_FOUND,
                None,
                "{\"error\":\"no such endpoint\"}".into(),
            ));
        }
    };
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(join) = serde_json::from_slice::<Join>(&body) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            None,
            "{\"error\":\"expected {id, addr}\"}".into(),
        ));
    };
    let tx = board.publisher(&key);
    // Register the follower in the coordinator's peer list, once, in a stable order.
    // A restarted follower comes back under its id with a new address.
    tx.send_if_modified(|p| {
        let Some(p) = p else { return false };
        match p.peers.iter_mut().find(|peer| peer.id == join.id) {
            Some(peer) if peer.addr == join.addr => false,
            Some(peer) => {
                peer.addr = join.addr;
                true
            }
            None => {
                p.peers.push(PeerAddr {
                    id: join.id.clone(),
                    addr: join.addr,
                });
                true
            }
        }
    });
    let mut rx = tx.subscribe();
    let news = |p: &Option<Published>| {
        p.as_ref()
            .is_none_or(|p| p.complete || p.files.len() > have)
    };
    let _ = tokio::time::timeout(LONG_POLL, rx.wait_for(news)).await;
    let now = rx.borrow().clone();
    Ok(match now {
        Some(p) => reply(
            StatusCode::OK,
            Some(p.epoch),
            serde_json::to_string(&p).unwrap_or_default(),
        ),
        None => reply(
            StatusCode::CONFLICT,
            None,
            format!("{{\"error\":\"not the coordinator of model {key}\"}}"),
        ),
    })
}
