//! Forwarding: read the request, connect to the replicas' Service (holding the request while
//! no replica answers), send it once, stream the answer back.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderName, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
    task::JoinSet,
    time::Instant,
};

use crate::{
    Config, Drained, Phase,
    metrics::{Metrics, Outcome},
};

type Body = BoxBody<Bytes, hyper::Error>;

/// The first wait between connection attempts; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between attempts: a replica that became ready is used within this.
const MAX_RETRY: Duration = Duration::from_secs(1);
/// Once the drain time ran out, how long the 503s to held requests get to be written before
/// every connection still open is closed.
const FLUSH: Duration = Duration::from_secs(2);

/// Headers that describe one connection, not the request (RFC 9110 section 7.6.1), the
/// framing hyper sets itself, and `Expect`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    // The router answered it already (it read the whole body); the replica gets the body at
    // once, without waiting for a 100 Continue of its own.
    "expect",
];

/// What every connection shares.
pub(crate) struct Shared {
    cfg: Config,
    metrics: Metrics,
    pending: watch::Sender<usize>,
    phase: watch::Sender<Phase>,
    /// Requests answered 503 because the drain time ran out.
    stopped: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(
        cfg: Config,
        pending: watch::Sender<usize>,
        phase: watch::Sender<Phase>,
    ) -> Self {
        let metrics = Metrics::new(&cfg.model_name, &cfg.namespace);
        Self {
            cfg,
            metrics,
            pending,
            phase,
            stopped: AtomicUsize::new(0),
        }
    }
}

/// Counts one request as waiting while it lives.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.metrics.pending(1);
        shared.pending.send_modify(|n| *n += 1);
        Self(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.metrics.pending(-1);
        self.0.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Accepts connections until `stop` says how long to drain, then drains (see the crate's
/// documentation); what the drain left undone.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<Duration>,
) -> Drained {
    let mut connections = JoinSet::new();
    let drain = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(connection(stream, Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            drain = &mut stop => break drain.unwrap_or_default(),
        }
    };
    // Closed before anything else: a client connecting from now on is refused at once and
    // retries, reaching the other router, instead of waiting in a queue nobody reads.
    drop(listener);
    shared.phase.send_replace(Phase::Draining);
    tracing::info!(
        connections = connections.len(),
        held = *shared.pending.borrow(),
        drain_secs = drain.as_secs_f64(),
        "stopping: new connections are refused; the requests in flight may finish"
    );
    if tokio::time::timeout(drain, join_all(&mut connections))
        .await
        .is_ok()
    {
        tracing::info!("stopped: every request finished");
        return Drained::default();
    }
    shared.phase.send_replace(Phase::GivingUp);
    let _ = tokio::time::timeout(FLUSH, join_all(&mut connections)).await;
    let drained = Drained {
        held: shared.stopped.load(Ordering::Relaxed),
        cut: connections.len(),
    };
    tracing::warn!(
        held = drained.held,
        cut = drained.cut,
        "stopped: the drain time ran out; held requests were answered 503, open connections closed"
    );
    connections.abort_all();
    drained
}

async fn join_all(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

/// Serves one client connection; once the router stops accepting, the request under way
/// finishes and the connection closes (at once when idle).
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut phase = shared.phase.subscribe();
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(answer(&shared, request).await) }
    });
    let served = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = phase.wait_for(|p| *p != Phase::Serving) => {}
    }
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

fn local(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/metrics" => {
            let mut r = local(StatusCode::OK, shared.metrics.text());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/healthz" => local(StatusCode::OK, "ok\n".into()),
        _ => forward(shared, request).await,
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let cfg = &shared.cfg;
    let (parts, body) = request.into_parts();
    // Read whole, so that it can be sent whenever a replica answers, and only once.
    let bytes = match Limited::new(body, cfg.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            shared.metrics.ended(Outcome::Rejected);
            return if e.is::<http_body_util::LengthLimitError>() {
                local(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "kubegrid router: request body over {} bytes\n",
                        cfg.max_body
                    ),
                )
            } else {
                local(
                    StatusCode::BAD_REQUEST,
                    format!("kubegrid router: reading the request body: {e}\n"),
                )
            };
        }
    };
    let started = Instant::now();
    let sender = match connect(shared).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let mut sender = sender;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) && name != header::HOST {
            out = out.header(name, value);
        }
    }
    out = out.header(header::HOST, cfg.backend.as_str());
    let Ok(out) = out.body(Full::new(bytes)) else {
        shared.metrics.ended(Outcome::Rejected);
        return local(
            StatusCode::BAD_REQUEST,
            "kubegrid router: bad request\n".into(),
        );
    };
    shared.metrics.waited(started.elapsed().as_secs_f64());
    match sender.send_request(out).await {
        Ok(response) => {
            shared.metrics.ended(Outcome::Forwarded);
            let (mut parts, body) = response.into_parts();
            let hop: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|n| is_hop_by_hop(n) && *n != header::CONTENT_LENGTH)
                .cloned()
                .collect();
            for name in hop {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            shared.metrics.ended(Outcome::Failed);
            tracing::warn!(backend = %cfg.backend, "the replica failed the request: {e}");
            local(
                StatusCode::BAD_GATEWAY,
                format!(
                    "kubegrid router: the replica at {} failed the request: {e}\n",
                    cfg.backend
                ),
            )
        }
    }
}

/// A connection to a replica: at once when one answers; otherwise the request waits (counted
/// as pending) and the connection is tried again with backoff until the queue timeout.
async fn connect(
    shared: &Shared,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Response<Body>> {
    let cfg = &shared.cfg;
    let deadline = Instant::now() + cfg.queue_timeout;
    let mut waiting: Option<Waiting<'_>> = None;
    let mut wait = FIRST_RETRY;
    let mut phase = shared.phase.subscribe();
    loop {
        let problem = tokio::select! {
            attempt = attempt(cfg) => match attempt {
                Ok(sender) => return Ok(sender),
                Err(problem) => problem,
            },
            _ = phase.wait_for(|p| *p == Phase::GivingUp) => return Err(stopping(shared)),
        };
        if waiting.is_none() {
            if *shared.pending.borrow() >= cfg.max_pending {
                shared.metrics.ended(Outcome::Rejected);
                return Err(local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "kubegrid router: {} requests already wait for a replica of {}; try again later\n",
                        cfg.max_pending, cfg.model_name
                    ),
                ));
            }
            tracing::info!(backend = %cfg.backend, "no replica answers ({problem}); holding the request");
            waiting = Some(Waiting::new(shared));
        }
        let now = Instant::now();
        if now + wait > deadline {
            shared.metrics.ended(Outcome::TimedOut);
            let mut response = local(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "kubegrid router: no replica of {} answered at {} within {:?} ({problem}); the service may still be starting\n",
                    cfg.model_name, cfg.backend, cfg.queue_timeout
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return Err(response);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = phase.wait_for(|p| *p == Phase::GivingUp) => return Err(stopping(shared)),
        }
        wait = (wait * 2).min(MAX_RETRY);
    }
}

/// One connection attempt to the replicas' Service, bounded by the connect timeout.
async fn attempt(
    cfg: &Config,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let stream =
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(&cfg.backend)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no connection within {:?}", cfg.connect_timeout)),
        };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The answer to a request still held when the router's drain time ran out: 503, to be
/// retried at once (the router's Service no longer lists this pod).
fn stopping(shared: &Shared) -> Response<Body> {
    shared.metrics.ended(Outcome::Stopped);
    shared.stopped.fetch_add(1, Ordering::Relaxed);
    let mut response = local(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "kubegrid router: this router is stopping and no replica of {} answered at {} before it did; retry\n",
            shared.cfg.model_name, shared.cfg.backend
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
