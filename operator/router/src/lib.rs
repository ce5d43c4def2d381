//! kubegrid's serving router: the request path in front of an LLMService that may be scaled
//! to zero.
//!
//! KEDA cannot wake a service from vLLM's own metrics: at zero replicas nothing reports
//! them, so a query on `vllm:num_requests_waiting` reads 0 for ever. The router is what
//! clients reach instead (the LLMService's Service selects it): it forwards each request to
//! the replicas' Service and, while none answers (no ready endpoint refuses the connection),
//! holds the request and counts it in `kubegrid_router_pending_requests`, labelled with
//! vLLM's own `model_name` and `namespace` so that the ScaledObject's query adds it to
//! vLLM's queue. KEDA then activates the service, the first replica becomes ready, and the
//! held requests go through in arrival order of their retries.
//!
//! Only a connection that was refused or timed out is retried, so a request is never sent
//! twice; its body is read whole first (up to a limit) so it can be sent once a replica is
//! there. A request held longer than the queue timeout gets 503 with `Retry-After`. The
//! router serves its own `/metrics` and `/healthz`; everything else is forwarded, responses
//! streamed (server-sent events included).
//!
//! Stopping ([`Router::stop`]) drains: the listener closes at once, every request in flight
//! finishes (a held one keeps waiting for a replica), idle keep-alive connections close, and
//! only when the drain time runs out are the requests still held answered 503 with
//! `Retry-After` (the client retries on the other router) and what still streams cut.

mod metrics;
mod proxy;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

pub use metrics::METRIC_NAMES;

/// What went wrong starting the router.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How the router runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The replicas' Service, `HOST:PORT`.
    pub backend: String,
    /// vLLM's served model name (the LLMService's name): the `model_name` label.
    pub model_name: String,
    /// The LLMService's namespace: the `namespace` label.
    pub namespace: String,
    /// How long a request may wait for a replica.
    pub queue_timeout: Duration,
    /// How many requests may wait at once; more get 503 at once.
    pub max_pending: usize,
    /// The largest request body held (bytes); larger ones get 413.
    pub max_body: usize,
    /// How long one connection attempt to the backend may take.
    pub connect_timeout: Duration,
}

impl Config {
    /// A router for `model_name` in `namespace` forwarding to `backend`, with the defaults:
    /// requests wait up to 15 minutes (a cold start loads the model), at most 1000 at once,
    /// bodies up to 16 MiB, 2 s per connection attempt.
    pub fn new(listen: SocketAddr, backend: &str, model_name: &str, namespace: &str) -> Self {
        Self {
            listen,
            backend: backend.into(),
            model_name: model_name.into(),
            namespace: namespace.into(),
            queue_timeout: Duration::from_secs(900),
            max_pending: 1000,
            max_body: 16 << 20,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// Where a router is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepting connections and forwarding.
    Serving,
    /// Stopped accepting (new connections are refused); the requests in flight finish.
    Draining,
    /// The drain time ran out: held requests are answered 503, what still streams is cut.
    GivingUp,
}

/// What a stop left undone when its drain time ran out (all zero when everything finished).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Requests still waiting for a replica (or still connecting to one), answered 503
    /// with `Retry-After`.
    pub held: usize,
    /// Connections still open after that (an answer still streaming, a body still being
    /// read), closed.
    pub cut: usize,
}

/// A running router; dropping it stops it at once, cutting whatever is in flight.
pub struct Router {
    addr: SocketAddr,
    pending: watch::Receiver<usize>,
    phase: watch::Receiver<Phase>,
    stop: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<Drained>>,
}

impl Router {
    /// Binds `cfg.listen` and serves until stopped or dropped.
    pub async fn start(cfg: Config) -> Result<Self, Error> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: cfg.listen,
            source,
        })?;
        let (tx, pending) = watch::channel(0);
        let (phase_tx, phase) = watch::channel(Phase::Serving);
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::new(proxy::Shared::new(cfg, tx, phase_tx));
        let task = tokio::spawn(proxy::serve(listener, shared, stopped));
        tracing::info!(%addr, "serving");
        Ok(Self {
            addr,
            pending,
            phase,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The number of requests waiting for a replica, as it changes.
    pub fn pending(&self) -> watch::Receiver<usize> {
        self.pending.clone()
    }

    /// Where the router is in its life, as it changes.
    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.clone()
    }

    /// Starts stopping: no new connections, and the requests in flight get up to `drain`
    /// to finish (see the crate's documentation). [`Router::wait`] tells when it is done.
    /// A second call changes nothing.
    pub fn stop(&mut self, drain: Duration) {
        if let Some(stop) = self.stop.take() {
            // The serve task ends only after a stop or a drop, so it still listens.
            let _ = stop.send(drain);
        }
    }

    /// Waits until the router has stopped (it does not before [`Router::stop`], short of the
    /// process ending); what the drain left undone. Later calls return at once.
    pub async fn wait(&mut self) -> Drained {
        match self.task.take() {
            // The task is aborted only by the drop, so an error is its panic: passed on.
            Some(task) => match task.await {
                Ok(drained) => drained,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
            None => Drained::default(),
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
