//! The fake over HTTPS, on a thread and runtime of its own, so synchronous tests (that run
//! the `kubegrid` binary) and asynchronous ones can both use it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_rustls::TlsAcceptor;

use crate::{
    FakeCluster, State,
    error::{Error, Result},
    routes, service,
};

/// A running HTTPS fake. Dropping it (or [`ServerHandle::stop`]) stops the server: the
/// listener closes and open connections are cut.
#[derive(Debug)]
pub struct ServerHandle {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server and waits until its thread has ended.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Err: the thread already ended, which is what we want.
            let _ended = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread already showed in the test output.
            let _joined = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Serves `fake` over HTTPS on `listen` (port 0 picks a free one) with the given server
/// certificate chain and private key (PEM), accepting any client. Returns the bound address
/// and the handle that stops it.
pub fn serve_tls(
    fake: &FakeCluster,
    listen: SocketAddr,
    server_cert_pem: &str,
    server_key_pem: &str,
) -> Result<(SocketAddr, ServerHandle)> {
    serve(fake, listen, server_cert_pem, server_key_pem, None)
}

/// Like [`serve_tls`], but as kube-apiserver with `--client-ca-file`: every client must
/// present a certificate signed by `client_ca_pem`, or its handshake fails (and is counted
/// in [`State::tls_errors`]).
pub fn serve_mutual_tls(
    fake: &FakeCluster,
    listen: SocketAddr,
    server_cert_pem: &str,
    server_key_pem: &str,
    client_ca_pem: &str,
) -> Result<(SocketAddr, ServerHandle)> {
    serve(
        fake,
        listen,
        server_cert_pem,
        server_key_pem,
        Some(client_ca_pem),
    )
}

/// Like [`serve_mutual_tls`], but the server certificate, its key and the client CA bundle
/// are files, read again on every handshake, as kube-apiserver reloads its serving
/// certificate and `--client-ca-file` without a restart: a test points it at files that
/// kubegrid rewrites (in a lab host's root file system) during a renewal or CA rotation.
/// A client is accepted when any CA of the bundle verifies its certificate; a refused
/// handshake, or files that cannot be read at that moment, count in [`State::tls_errors`].
/// The files must be readable when it starts.
pub fn serve_mutual_tls_files(
    fake: &FakeCluster,
    listen: SocketAddr,
    cert_path: &Path,
    key_path: &Path,
    client_ca_path: &Path,
) -> Result<(SocketAddr, ServerHandle)> {
    let files = Files {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        client_ca: client_ca_path.to_path_buf(),
    };
    // Refuse unusable files up front, as the PEM variants do.
    files.acceptor()?;
    start(fake, listen, Certs::Files(Arc::new(files)))
}

/// The files [`serve_mutual_tls_files`] reads on every handshake.
#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

impl Files {
    fn acceptor(&self) -> Result<TlsAcceptor> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let config = server_config(
            &read("server certificate", &self.cert)?,
            &read("server key", &self.key)?,
            Some(&read("client CA", &self.client_ca)?),
        )?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Where a connection's TLS configuration comes from.
#[derive(Clone)]
enum Certs {
    /// Built once at start.
    Fixed(TlsAcceptor),
    /// Read from files for each connection.
    Files(Arc<Files>),
}

fn serve(
    fake: &FakeCluster,
    listen: SocketAddr,
    server_cert_pem: &str,
    server_key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<(SocketAddr, ServerHandle)> {
    let config = server_config(server_cert_pem, server_key_pem, client_ca_pem)?;
    start(
        fake,
        listen,
        Certs::Fixed(TlsAcceptor::from(Arc::new(config))),
    )
}

fn start(
    fake: &FakeCluster,
    listen: SocketAddr,
    certs: Certs,
) -> Result<(SocketAddr, ServerHandle)> {
    // Time too: watches end after their `timeoutSeconds`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::StartThread { source })?;
    let listen_err = |source| Error::Listen { listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    let address = listener.local_addr().map_err(listen_err)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(listen_err)?
    };
    let (stop, mut stopped) = oneshot::channel::<()>();
    let state = fake.shared();
    let thread = std::thread::Builder::new()
        .name(format!("fake-apiserver-{address}"))
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            // A failed accept (the client gave up) concerns that client only.
                            if let Ok((tcp, _)) = accepted {
                                tokio::spawn(connection(certs.clone(), tcp, Arc::clone(&state)));
                            }
                        }
                    }
                }
            });
            // Dropping the runtime here cancels every open connection's task.
        })
        .map_err(|source| Error::StartThread { source })?;
    Ok((
        address,
        ServerHandle {
            address,
            stop: Some(stop),
            thread: Some(thread),
        },
    ))
}

/// One client connection: the TLS handshake, then HTTP/1.1 requests until it closes.
/// The client is named, for [`FakeCluster::partition`], by its certificate's common name
/// or else by the bearer token of each request.
async fn connection(certs: Certs, tcp: TcpStream, state: Arc<Mutex<State>>) {
    let acceptor = match certs {
        Certs::Fixed(acceptor) => acceptor,
        Certs::Files(files) => match files.acceptor() {
            Ok(acceptor) => acceptor,
            Err(e) => {
                let mut state = lock(&state);
                state.tls_errors.push(e.to_string());
                state.store.notify();
                return;
            }
        },
    };
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => {
            lock(&state).tls_connections += 1;
            tls
        }
        Err(e) => {
            let mut state = lock(&state);
            state.tls_errors.push(e.to_string());
            // The client may see its failure first (TLS 1.3 checks its certificate after
            // the client's side of the handshake is done); waiters learn of it here.
            state.store.notify();
            return;
        }
    };
    let certificate_name = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| common_name(leaf));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        let name = certificate_name.clone().or_else(|| bearer(&request));
        async move {
            let (parts, body) = request.into_parts();
            match body.collect().await {
                Ok(collected) => service::call(state, name, parts, collected.to_bytes()).await,
                Err(e) => Ok(routes::response(
                    routes::bad_request(&format!("unreadable request body: {e}")),
                    service::full,
                )),
            }
        }
    });
    // A connection the client drops mid-request ends here, and so does one whose client is
    // partitioned (the service's error closes it); nothing else depends on it.
    let _served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// The subject common name of a DER certificate: how a mutual-TLS client is named, here and
/// by other test servers that name their clients the same way.
pub fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}

/// The token of an `Authorization: Bearer` header.
fn bearer<B>(request: &Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().expect("fake state lock poisoned")
}

/// rustls' server configuration with the ring provider, offering HTTP/1.1: the server
/// certificate chain and key (PEM), and with `client_ca_pem` the CA every client certificate
/// must be signed by (as kube-apiserver's `--client-ca-file`). Other test servers reuse it.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("server certificate", &e, "CERTIFICATE blocks"))?;
    if certs.is_empty() {
        return Err(Error::ReadPem {
            what: "server certificate",
            detail: "no CERTIFICATE block".into(),
            expected: "the server certificate, then any intermediates",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| pem_error("server key", &e, "one PRIVATE KEY block"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_err = |what| {
        move |e: rustls::Error| Error::ConfigureTls {
            what,
            source: Box::new(e),
        }
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| pem_error("client CA", &e, "CERTIFICATE blocks"))?;
                roots.add(cert).map_err(tls_err("client CA"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::ConfigureTls {
                    what: "client CA",
                    source: Box::new(e),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(tls_err("server certificate and key"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn pem_error(
    what: &'static str,
    e: &rustls::pki_types::pem::Error,
    expected: &'static str,
) -> Error {
    Error::ReadPem {
        what,
        detail: e.to_string(),
        expected,
    }
}
