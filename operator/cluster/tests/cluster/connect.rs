//! `connect` with an in-memory kubeconfig, over real TLS to a local endpoint.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{Arc, mpsc},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use kubegrid_cluster::{CheckOptions, Error, check_api_readyz, connect};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    client_pem: (String, String),
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");

    let server_key = KeyPair::generate().expect("server key");
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .expect("server cert");

    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    let client_cert = client_params
        .signed_by(&client_key, &ca)
        .expect("client cert");

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server: (
            server_cert.der().clone(),
            PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
        ),
        client_pem: (client_cert.pem(), client_key.serialize_pem()),
    }
}

fn kubeconfig(pki: &Pki, server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: kubegrid\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         users:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: admin@kubegrid\n  context:\n    cluster: kubegrid\n    user: admin\n\
         current-context: admin@kubegrid\n",
        STANDARD.encode(&pki.ca_pem),
        STANDARD.encode(&pki.client_pem.0),
        STANDARD.encode(&pki.client_pem.1),
    )
}

/// Serves one HTTPS request that requires a client certificate from the CA,
/// answering `ok`, and reports the request line.
fn serve_readyz_once(pki: &Pki) -> (String, mpsc::Receiver<String>) {
    kubegrid_cluster::install_crypto_provider();
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("ca root");
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .expect("client verifier");
    let config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("https://{}", listener.local_addr().expect("address"));
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        let connection = ServerConnection::new(Arc::new(config)).expect("tls connection");
        let mut tls = StreamOwned::new(connection, tcp);
        let mut request = Vec::new();
        let mut buffer = [0_u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = tls.read(&mut buffer).expect("read request");
            assert!(read > 0, "client closed before sending a request");
            request.extend_from_slice(&buffer[..read]);
        }
        let line = String::from_utf8_lossy(&request)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let verified_client = tls
            .conn
            .peer_certificates()
            .is_some_and(|certs| !certs.is_empty());
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .expect("write response");
        tls.flush().expect("flush");
        sender
            .send(format!("{line} client-cert={verified_client}"))
            .expect("report");
    });
    (address, receiver)
}

#[tokio::test]
async fn client_from_embedded_kubeconfig_talks_mutual_tls() {
    let pki = pki();
    let (address, requests) = serve_readyz_once(&pki);
    let client = connect(&kubeconfig(&pki, &address)).await.expect("connect");
    let opts = CheckOptions {
        readyz_timeout: Duration::from_secs(10),
        ..CheckOptions::default()
    };
    let result = check_api_readyz(&client, &opts).await;

    assert!(result.ok, "{result:#?}");
    let seen = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("server saw a request");
    assert_eq!(seen, "GET /readyz HTTP/1.1 client-cert=true");
}

#[tokio::test]
async fn kubeconfig_that_is_not_yaml_is_refused() {
    let Err(err) = connect("clusters: [unterminated").await else {
        panic!("not a kubeconfig")
    };
    assert!(matches!(err, Error::ParseKubeconfig { .. }), "{err:?}");
}

#[tokio::test]
async fn kubeconfig_without_a_current_context_is_refused() {
    let Err(err) = connect("apiVersion: v1\nkind: Config\nclusters: []\n").await else {
        panic!("a kubeconfig without a context must be refused")
    };
    assert!(matches!(err, Error::LoadKubeconfig { .. }), "{err:?}");
}
