//! The coordinator's control API, served by every daemon but answered only for the models
//! it coordinates:
//!
//! - `POST /v1/models/<key>/join?have=N&since=V` with `{"id", "addr"}` (the follower's
//!   fan-out address): registers the follower and answers the [`Published`] state, waiting
//!   (up to [`LONG_POLL`]) until its version is above `V` (a file added, a piece hash
//!   published, the model complete), so followers do not poll on a timer. A join without
//!   `since` (a follower that predates growing files) waits until more than `N` whole files
//!   are listed or the model is complete, and is told only of whole files.
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
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
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
    /// Bumped on every change, so a join can wait for news (`since=`); 0 from a coordinator
    /// that predates it.
    #[serde(default)]
    pub version: u64,
    /// In an answer, the index of the first file listed: a join's `have=N` says it knows the
    /// first `N` files whole, so they are not sent again (piece hashes of a large model
    /// would otherwise go out with every piece published).
    #[serde(default)]
    pub files_from: usize,
}

impl Published {
    /// The answer to a join, built from the published state without copying the files it
    /// leaves out (every piece published wakes every follower's join, and a large model's
    /// earlier files hold most of the piece hashes). A follower that sends `since` and knows
    /// the first `have` files whole gets the files after those; one that predates growing
    /// files (no `since`) gets the files whose every piece hash is known.
    fn answer(&self, since: Option<u64>, have: usize) -> Self {
        let whole = |f: &&PublishedFile| f.manifest.is_complete();
        let (files_from, files) = match since {
            Some(_) => {
                let skip = self.files.iter().take(have).take_while(whole).count();
                (skip, self.files[skip..].to_vec())
            }
            None => (0, self.files.iter().filter(whole).cloned().collect()),
        };
        Self {
            epoch: self.epoch,
            coordinator: self.coordinator.clone(),
            commit: self.commit.clone(),
            seed: self.seed,
            files,
            complete: self.complete,
            size: self.size,
            peers: self.peers.clone(),
            version: self.version,
            files_from,
        }
    }

    /// The first files whose manifests are complete: what a join's `have` counts.
    pub(crate) fn whole_prefix(&self) -> usize {
        self.files
            .iter()
            .take_while(|f| f.manifest.is_complete())
            .count()
    }

    /// This answer merged onto `known`, the state before it (files before `files_from` are
    /// taken from there); `None` when `known` lacks them.
    pub(crate) fn merged_onto(mut self, known: Option<&Published>) -> Option<Self> {
        if self.files_from > 0 {
            let earlier = known?.files.get(..self.files_from)?;
            self.files.splice(0..0, earlier.iter().cloned());
            self.files_from = 0;
        }
        Some(self)
    }
}

/// One file: verified whole once its manifest is complete; the last file may still be
/// under way, its manifest growing (see `grow`).
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
    /// The last version handed out: one counter for every model, so a version never goes
    /// back when a model's state is replaced.
    versions: AtomicU64,
}

impl Board {
    /// A board that answers joins carrying `token`.
    pub(crate) fn new(token: &str) -> Self {
        Self {
            models: Mutex::new(HashMap::new()),
            token: token.to_string(),
            versions: AtomicU64::new(0),
        }
    }

    /// A version above every one handed out before.
    pub(crate) fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
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
    let query = |name: &str| {
        request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(name)))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let have = query("have=").unwrap_or(0) as usize;
    // A follower that sends `since` copies files as they grow; one that does not is told
    // only of whole files.
    let since = query("since=");
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
            Some(peer) if peer.addr == join.addr => return false,
            Some(peer) => peer.addr = join.addr,
            None => p.peers.push(PeerAddr {
                id: join.id.clone(),
                addr: join.addr,
            }),
        }
        p.version = board.next_version();
        true
    });
    let mut rx = tx.subscribe();
    let news = |p: &Option<Published>| {
        p.as_ref().is_none_or(|p| match since {
            Some(since) => p.version > since,
            None => {
                p.complete || p.files.iter().filter(|f| f.manifest.is_complete()).count() > have
            }
        })
    };
    let _ = tokio::time::timeout(LONG_POLL, rx.wait_for(news)).await;
    let now = rx.borrow().as_ref().map(|p| p.answer(since, have));
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

#[cfg(test)]
mod tests {
    use kubegrid_fanout::PieceManifest;

    use super::{Published, PublishedFile};

    fn file(path: &str, known: usize) -> PublishedFile {
        let mut manifest = PieceManifest::growing(&"a".repeat(64), 3 << 22, 4 << 20);
        manifest.pieces = vec!["b".repeat(64); known];
        PublishedFile {
            path: path.into(),
            manifest,
        }
    }

    fn state() -> Published {
        Published {
            epoch: 1,
            coordinator: "gpu-a@10.0.0.1:9462".into(),
            commit: "c".repeat(40),
            seed: "10.0.0.1:9461".parse().unwrap(),
            files: vec![file("a", 3), file("b", 3), file("c", 1)],
            complete: false,
            size: 9 << 22,
            peers: Vec::new(),
            version: 7,
            files_from: 0,
        }
    }

    #[test]
    fn an_answer_leaves_out_the_whole_files_the_follower_knows_and_merges_back() {
        let known = state();
        let mut now = state();
        now.files[2] = file("c", 2);
        let answer = now.answer(Some(6), 2);
        assert_eq!(answer.files_from, 2);
        assert_eq!(answer.files.len(), 1, "only the file under way is sent");
        assert_eq!(answer.clone().merged_onto(Some(&known)), Some(now.clone()));
        // A follower that was told of nothing cannot take an answer that starts later.
        assert_eq!(answer.merged_onto(None), None);
        // The file under way is never left out, whatever `have` says.
        assert_eq!(now.answer(Some(6), 3).files_from, 2);
        assert_eq!(now.whole_prefix(), 2);
    }

    #[test]
    fn a_follower_without_since_is_told_only_of_whole_files() {
        let old = state().answer(None, 0);
        assert_eq!(
            old.files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
