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

mod metrics;
mod proxy;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

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

/// A running router; dropping it stops accepting.
pub struct Router {
    addr: SocketAddr,
    pending: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Router {
    /// Binds `cfg.listen` and serves until dropped.
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
        let shared = Arc::new(proxy::Shared::new(cfg, tx));
        let task = tokio::spawn(proxy::serve(listener, shared));
        tracing::info!(%addr, "serving");
        Ok(Self {
            addr,
            pending,
            task,
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

    /// Runs until the listener fails (it does not, short of the process ending).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.task.abort();
    }
}
