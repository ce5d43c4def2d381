//! The fake over HTTPS, reached by a kube client built from a kubeconfig as kubegrid builds
//! it: server certificate checked against the CA, client certificate checked by the fake.

use std::{net::SocketAddr, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, Config,
    api::{ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kubegrid_fake_apiserver::{FakeCluster, node, serve_mutual_tls, serve_tls};
use kubegrid_pki::{Ca, IssuedCert, LeafSpec, Usage};

const DAY: Duration = Duration::from_secs(86_400);

fn leaf(ca: &Ca, common_name: &str, usage: Usage) -> IssuedCert {
    ca.issue(&LeafSpec {
        common_name: common_name.into(),
        organizations: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        usage,
        validity: DAY,
    })
    .expect("issue leaf")
}

async fn client(ca: &Ca, user: &IssuedCert, address: SocketAddr) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = kubegrid_pki::kubeconfig(
        "fake",
        &format!("https://{address}"),
        ca.cert_pem(),
        "admin",
        user,
    )
    .expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&text).expect("parse kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("load kubeconfig");
    Client::try_from(config).expect("client")
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn serves_reads_and_patches_over_mutual_tls() {
    let ca = Ca::generate("kubernetes", DAY).expect("ca");
    let server = leaf(&ca, "kube-apiserver", Usage::Server);
    let admin = leaf(&ca, "kubernetes-admin", Usage::Client);
    let fake = FakeCluster::new();
    fake.add_node(node("n1", true, &[], &[]));
    let (address, handle) = serve_mutual_tls(
        &fake,
        any_port(),
        &server.cert_pem,
        &server.key_pem,
        ca.cert_pem(),
    )
    .expect("serve");
    assert_eq!(handle.address(), address);
    let client = client(&ca, &admin, address).await;

    let readyz = client
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .expect("readyz");
    assert_eq!(readyz, "ok");
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "metadata": { "labels": { "a": "b" } } })),
        )
        .await
        .expect("patch");
    let listed = nodes.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        fake.node_labels("n1"),
        Some(serde_json::json!({ "a": "b" }))
    );
    assert!(fake.state().tls_connections >= 1);
    assert!(
        fake.state().tls_errors.is_empty(),
        "{:?}",
        fake.state().tls_errors
    );

    handle.stop();
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "still listening after stop"
    );
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let ca = Ca::generate("kubernetes", DAY).expect("ca");
    let stranger = Ca::generate("someone-else", DAY).expect("other ca");
    let server = leaf(&ca, "kube-apiserver", Usage::Server);
    let intruder = leaf(&stranger, "kubernetes-admin", Usage::Client);
    let fake = FakeCluster::new();
    let (address, _handle) = serve_mutual_tls(
        &fake,
        any_port(),
        &server.cert_pem,
        &server.key_pem,
        ca.cert_pem(),
    )
    .expect("serve");
    let client = client(&ca, &intruder, address).await;

    let result = client
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(fake.requests_matching("GET").is_empty());
    // The server records the refused handshake on its own thread, maybe after the client
    // has seen the failure.
    let errors = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        fake.wait_for(|f| {
            let errors = f.state().tls_errors.clone();
            (!errors.is_empty()).then_some(errors)
        }),
    )
    .await
    .expect("the server records the refused handshake");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("UnknownIssuer"), "{errors:?}");
}

#[test]
fn serving_without_a_key_is_refused_with_what_was_expected() {
    let ca = Ca::generate("kubernetes", DAY).expect("ca");
    let server = leaf(&ca, "kube-apiserver", Usage::Server);
    let err = serve_tls(&FakeCluster::new(), any_port(), &server.cert_pem, "").expect_err("no key");
    assert!(
        err.to_string()
            .starts_with("failed to read the server key PEM:"),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("expected one PRIVATE KEY block"),
        "{err}"
    );
}

#[test]
fn a_node_turns_not_ready_and_back() {
    let fake = FakeCluster::new();
    fake.add_node(node("n1", true, &[("x", "y")], &[]));
    let ready = |fake: &FakeCluster| {
        fake.state().nodes["n1"]["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
            .clone()
    };
    assert!(fake.set_node_ready("n1", false));
    assert_eq!(ready(&fake), "False");
    assert!(fake.set_node_ready("n1", true));
    assert_eq!(ready(&fake), "True");
    assert_eq!(
        fake.node_labels("n1"),
        Some(serde_json::json!({ "x": "y" }))
    );
    assert!(!fake.set_node_ready("n2", true));
}

/// Over mutual TLS a watch streams too, and a client is named by its certificate's common
/// name: partitioning that name cuts it off.
#[tokio::test]
async fn watches_stream_and_certificate_names_partition_over_tls() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{WatchEvent, WatchParams};

    let ca = Ca::generate("kubernetes", DAY).expect("ca");
    let server = leaf(&ca, "kube-apiserver", Usage::Server);
    let replica = leaf(&ca, "replica-a", Usage::Client);
    let fake = FakeCluster::new();
    let (address, _handle) = serve_mutual_tls(
        &fake,
        any_port(),
        &server.cert_pem,
        &server.key_pem,
        ca.cert_pem(),
    )
    .expect("serve");
    let leases: Api<Lease> = Api::namespaced(client(&ca, &replica, address).await, "default");
    let rv = fake.resource_version().to_string();
    let mut events = leases
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.put(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "leader", "namespace": "default" },
    }));
    let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
        .await
        .expect("an event within 20 s")
        .expect("a readable event")
        .expect("the stream is open");
    assert!(matches!(event, WatchEvent::Added(_)), "{event:?}");

    fake.partition("replica-a");
    let cut = leases.get("leader").await;
    assert!(cut.is_err(), "{cut:?}");
    fake.heal("replica-a");
    leases.get("leader").await.expect("reachable after heal");
    assert!(!fake.requests_from("replica-a").is_empty());
}

/// One `GET /readyz` over a fresh mutual-TLS connection trusting `server_ca`, presenting
/// `user`: the server certificate's common name and the reply, or why it failed.
fn readyz(
    address: SocketAddr,
    server_ca: &Ca,
    user: &IssuedCert,
) -> Result<(String, String), String> {
    use std::io::{Read, Write};

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(user.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(user.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(kubegrid_fake_apiserver::common_name)
        .unwrap_or_default();
    Ok((served, String::from_utf8_lossy(&reply).into_owned()))
}

/// Like kube-apiserver's dynamic reload: the client CA bundle and the serving certificate are
/// read from their files on every handshake.
#[test]
fn mutual_tls_files_follow_the_bundle_and_the_serving_certificate_on_disk() {
    let a = Ca::generate("ca-a", DAY).expect("ca a");
    let b = Ca::generate("ca-b", DAY).expect("ca b");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, bundle) = (
        dir.path().join("apiserver.crt"),
        dir.path().join("apiserver.key"),
        dir.path().join("ca.crt"),
    );
    let first = leaf(&a, "server-1", Usage::Server);
    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    std::fs::write(&bundle, a.cert_pem()).unwrap();
    let fake = FakeCluster::new();
    let (address, _handle) =
        kubegrid_fake_apiserver::serve_mutual_tls_files(&fake, any_port(), &cert, &key, &bundle)
            .expect("serve");
    let user_a = leaf(&a, "user-a", Usage::Client);
    let user_b = leaf(&b, "user-b", Usage::Client);

    let (served, reply) = readyz(address, &a, &user_a).expect("a client of CA A");
    assert_eq!(served, "server-1");
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"),
        "{reply}"
    );
    let refused = readyz(address, &a, &user_b);
    assert!(
        refused.is_err(),
        "a client of CA B before B is trusted: {refused:?}"
    );
    // The server records the refused handshake on its own thread, maybe after the client
    // has seen the failure.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let errors = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                fake.wait_for(|f| {
                    let errors = f.state().tls_errors.clone();
                    (!errors.is_empty()).then_some(errors)
                }),
            )
            .await
        })
        .expect("the server records the refused handshake");
    assert!(
        errors.iter().any(|e| e.contains("UnknownIssuer")),
        "{errors:?}"
    );

    std::fs::write(&bundle, format!("{}{}", a.cert_pem(), b.cert_pem())).unwrap();
    let (_, reply) =
        readyz(address, &a, &user_b).expect("a client of CA B once B is in the bundle");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    readyz(address, &a, &user_a).expect("CA A still trusted");

    let second = leaf(&a, "server-2", Usage::Server);
    std::fs::write(&key, &second.key_pem).unwrap();
    std::fs::write(&cert, &second.cert_pem).unwrap();
    let (served, _) = readyz(address, &a, &user_a).expect("after the serving certificate changed");
    assert_eq!(served, "server-2");

    // B alone: A's clients are refused from the next handshake on.
    std::fs::write(&bundle, b.cert_pem()).unwrap();
    assert!(readyz(address, &a, &user_a).is_err());
    readyz(address, &a, &user_b).expect("CA B alone");
}

#[test]
fn mutual_tls_files_refuse_a_missing_file_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let err = kubegrid_fake_apiserver::serve_mutual_tls_files(
        &FakeCluster::new(),
        any_port(),
        &missing,
        &missing,
        &missing,
    )
    .expect_err("missing files");
    assert!(
        err.to_string()
            .starts_with("failed to read the server certificate file"),
        "{err}"
    );
}
