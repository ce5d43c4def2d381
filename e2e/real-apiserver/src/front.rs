//! The routed client over HTTPS: one endpoint on 127.0.0.1 that serves both the real server's
//! groups and the fake's, for a program in another process (the `kubegrid operator` binary)
//! that connects with a kubeconfig as it would to a kube-apiserver.
//!
//! Every request goes through [`RealApiServer::routed_client`], so the paths go where
//! [`Routes::kubegrid`] says. Clients present a certificate signed by the server's CA; the
//! certificate's common name names the client on the fake's side (as
//! [`FakeCluster::client_as`]). Watches stream through: each response body is passed on frame
//! by frame as it arrives. The front counts the requests it forwards to each side
//! ([`Front::tally`]) and keeps the list of them ([`Front::seen`]).

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kube::client::Body;
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_pki::{LeafSpec, Usage};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::{Error, RealApiServer, Result, Routes};

/// How long the front's certificates are valid.
const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// One request the front forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Whether it went to the real server (else to the fake).
    pub real: bool,
    /// The client's name (its certificate's common name).
    pub client: String,
}

/// How many requests went to each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// To the real server.
    pub real: u64,
    /// To the fake.
    pub fake: u64,
}

impl Tally {
    /// Both sides together.
    pub fn total(&self) -> u64 {
        self.real + self.fake
    }
}

#[derive(Default)]
struct Counts {
    real: AtomicU64,
    fake: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// A running front. Dropping it closes the listener and cuts open connections.
pub struct Front {
    address: SocketAddr,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl Front {
    /// Serves `server` and `fake` on a free port of 127.0.0.1, on the current tokio runtime.
    pub async fn start(server: &RealApiServer, fake: &FakeCluster) -> Result<Front> {
        let ca = server.ca();
        let certificate = ca
            .issue(&LeafSpec {
                common_name: "kubegrid-test-front".into(),
                organizations: Vec::new(),
                dns_names: vec!["localhost".into()],
                ip_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
                usage: Usage::Server,
                validity: VALIDITY,
            })
            .map_err(|source| Error::IssueCertificate {
                what: "front's serving certificate",
                source,
            })?;
        let config = kubegrid_fake_apiserver::server_config(
            &certificate.cert_pem,
            &certificate.key_pem,
            Some(ca.cert_pem()),
        )
        .map_err(|e| Error::Front {
            what: "configure TLS",
            detail: e.to_string(),
        })?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Front {
                what: "listen on 127.0.0.1",
                detail: e.to_string(),
            })?;
        let address = listener.local_addr().map_err(|e| Error::Front {
            what: "read the listening address",
            detail: e.to_string(),
        })?;
        let counts = Arc::new(Counts::default());
        let shared = Shared {
            server_client: server.client(),
            server_warnings: server.warnings().clone(),
            fake: fake.clone(),
            routes: Routes::kubegrid(),
            counts: Arc::clone(&counts),
        };
        let accept = tokio::spawn(async move {
            // Dropping the set (when the front is dropped) cuts every open connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        // A failed accept concerns that client only.
                        if let Ok((tcp, _)) = accepted {
                            connections.spawn(connection(acceptor.clone(), tcp, shared.clone()));
                        }
                    }
                    // Reaps finished connections so the set does not grow.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Front {
            address,
            counts,
            accept,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// Writes (mode 0600) a kubeconfig for the front to `path`, with a client certificate
    /// named `name` signed by `server`'s CA (the one [`Front::start`] was given).
    pub fn write_kubeconfig(&self, server: &RealApiServer, name: &str, path: &Path) -> Result<()> {
        let issue = |source| Error::IssueCertificate {
            what: "front client certificate",
            source,
        };
        let client = server
            .ca()
            .issue(&LeafSpec {
                common_name: name.into(),
                organizations: Vec::new(),
                dns_names: Vec::new(),
                ip_addresses: Vec::new(),
                usage: Usage::Client,
                validity: VALIDITY,
            })
            .map_err(issue)?;
        let text = kubegrid_pki::kubeconfig(
            "kubegrid-test-front",
            &self.url(),
            server.ca().cert_pem(),
            name,
            &client,
        )
        .map_err(issue)?;
        crate::write(path, &text)?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
            Error::Io {
                what: "restrict the front's kubeconfig to its owner",
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// The requests forwarded so far, per side.
    pub fn tally(&self) -> Tally {
        Tally {
            real: self.counts.real.load(Ordering::SeqCst),
            fake: self.counts.fake.load(Ordering::SeqCst),
        }
    }

    /// Every request forwarded so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.counts.seen).clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What every connection needs.
#[derive(Clone)]
struct Shared {
    server_client: kube::Client,
    server_warnings: crate::Warnings,
    fake: FakeCluster,
    routes: Routes,
    counts: Arc<Counts>,
}

type FrontBody = UnsyncBoxBody<bytes::Bytes, kube::Error>;

/// One client connection: the TLS handshake, then HTTP/1.1 requests until it closes, each
/// sent through a routed client named by the client's certificate.
async fn connection(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream, shared: Shared) {
    // A failed handshake (no or a foreign certificate) concerns that client only.
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let name = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(kubegrid_fake_apiserver::common_name)
        .unwrap_or_default();
    let routed = RealApiServer::routed_client_of(
        &shared.server_client,
        &shared.server_warnings,
        &shared.fake,
        Some(&name),
    );
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let routed = routed.clone();
        let shared = shared.clone();
        let name = name.clone();
        async move { Ok::<_, std::convert::Infallible>(forward(routed, &shared, name, request).await) }
    });
    // A connection the client drops (a watch it ends) ends here; nothing else depends on it.
    let _served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn forward(
    routed: kube::Client,
    shared: &Shared,
    client: String,
    request: Request<Incoming>,
) -> Response<FrontBody> {
    let (mut parts, body) = request.into_parts();
    let real = shared.routes.to_real(parts.uri.path());
    let counter = if real {
        &shared.counts.real
    } else {
        &shared.counts.fake
    };
    counter.fetch_add(1, Ordering::SeqCst);
    lock(&shared.counts.seen).push(Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        real,
        client,
    });
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return failure(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}")),
    };
    // The outgoing client frames the request itself and names its own host.
    for hop in [header::HOST, header::CONNECTION, header::TRANSFER_ENCODING] {
        parts.headers.remove(hop);
    }
    match routed
        .send(Request::from_parts(parts, Body::from(bytes)))
        .await
    {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for hop in [header::CONNECTION, header::TRANSFER_ENCODING] {
                parts.headers.remove(hop);
            }
            Response::from_parts(parts, body.boxed_unsync())
        }
        Err(e) => failure(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// A `Status` object, as kube-apiserver answers errors.
fn failure(code: StatusCode, message: &str) -> Response<FrontBody> {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("kubegrid test front: {message}"), "code": code.as_u16(),
    });
    let body = Full::new(bytes::Bytes::from(status.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
