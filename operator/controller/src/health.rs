//! The HTTP endpoint for Prometheus and the kubelet's probes: `/metrics`, `/healthz` and
//! `/readyz`.
//!
//! `/healthz` answers while the process serves requests at all. `/readyz` answers 200 once
//! this replica has reached the API server (a standby replica is ready too: it is ready to
//! take over), and 503 while it cannot.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{
    error::{Error, Result},
    metrics::Metrics,
};

/// What the probes report.
#[derive(Debug, Default)]
pub struct Probes {
    api_reachable: AtomicBool,
}

impl Probes {
    /// Records whether the API server answered the last request that mattered.
    pub fn set_api_reachable(&self, ok: bool) {
        self.api_reachable.store(ok, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.api_reachable.load(Ordering::Relaxed)
    }
}

/// A bound listener, so callers learn the port (`:0` in tests) before serving.
pub struct Server {
    listener: TcpListener,
    metrics: Arc<Metrics>,
    probes: Arc<Probes>,
}

impl Server {
    /// Binds `addr`.
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        probes: Arc<Probes>,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Serve {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Self {
            listener,
            metrics,
            probes,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the task is dropped; each connection gets its own task.
    pub async fn serve(self) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&self.metrics);
            let probes = Arc::clone(&self.probes);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let reply = answer(req.uri().path(), &metrics, &probes);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    }
}

fn answer(path: &str, metrics: &Metrics, probes: &Probes) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if probes.ready() => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the Kubernetes API server has not answered yet\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
