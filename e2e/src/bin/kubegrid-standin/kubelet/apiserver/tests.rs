use std::{net::TcpStream, path::Path, time::Instant};

use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::*;
use crate::{
    pki::{LeafSpec, Signer},
    tls::client::get,
};

const DAY: Duration = Duration::from_secs(86_400);

fn put(root: &Path, path: &str, text: &str) {
    let full = host(root, path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(full, text).unwrap();
}

/// A manifest as kubeadm's, on loopback and an ephemeral port.
fn manifest(root: &Path) {
    put(
        root,
        MANIFEST,
        "# STAND-IN test manifest\napiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.31.4\n    command:\n    - kube-apiserver\n    - --bind-address=127.0.0.1\n    - --secure-port=0\n    - --client-ca-file=/etc/kubernetes/pki/ca.crt\n    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n",
    );
}

fn serving(root: &Path, ca: &Signer, cn: &str) -> Vec<u8> {
    let spec = LeafSpec {
        cn: cn.into(),
        ips: vec![IpAddr::from([127, 0, 0, 1])],
        server: true,
        ..LeafSpec::default()
    };
    let (cert, key) = ca.issue(&spec, DAY).unwrap();
    put(root, "/etc/kubernetes/pki/apiserver.key", &key);
    put(root, "/etc/kubernetes/pki/apiserver.crt", &cert);
    CertificateDer::from_pem_slice(cert.as_bytes())
        .unwrap()
        .to_vec()
}

/// Waits until the server listens (`Some`) or has stopped (`None`), as `want`.
fn wait_listening(server: &ApiServer, want: bool) -> Option<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = server.listening();
        if now.is_some() == want {
            return now;
        }
        assert!(Instant::now() < deadline, "listening should be {want}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_trusted_clients_follows_its_files_and_the_manifest() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ca_a = Signer::generate("ca-a", DAY).unwrap();
    let ca_b = Signer::generate("ca-b", DAY).unwrap();
    let first = serving(root, &ca_a, "kube-apiserver");
    put(root, "/etc/kubernetes/pki/ca.crt", &ca_a.cert_pem);
    manifest(root);
    let server = ApiServer::spawn(root);
    let addr = wait_listening(&server, true).unwrap();
    let admin_a = ca_a
        .issue(
            &LeafSpec::client("kubernetes-admin", &["kubeadm:cluster-admins"]),
            DAY,
        )
        .unwrap();
    let admin_b = ca_b
        .issue(
            &LeafSpec::client("kubernetes-admin", &["kubeadm:cluster-admins"]),
            DAY,
        )
        .unwrap();
    let client_a = Some((admin_a.0.as_str(), admin_a.1.as_str()));
    let client_b = Some((admin_b.0.as_str(), admin_b.1.as_str()));

    for path in ["/readyz", "/livez", "/healthz"] {
        let (served, reply) = get(addr, &ca_a.cert_pem, client_a, path).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{path}: {reply}");
        assert!(reply.ends_with("\r\n\r\nok"), "{path}: {reply}");
        assert_eq!(served, first);
    }
    let (_, reply) = get(addr, &ca_a.cert_pem, client_a, "/api").unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    // No client certificate, or one the bundle does not trust: the handshake fails.
    assert!(get(addr, &ca_a.cert_pem, None, "/readyz").is_err());
    let refused = get(addr, &ca_a.cert_pem, client_b, "/readyz");
    assert!(refused.is_err(), "{refused:?}");

    // CA B joins the bundle (old first, as a rotation's trust phase writes it): no restart.
    put(
        root,
        "/etc/kubernetes/pki/ca.crt",
        &format!("{}{}", ca_a.cert_pem, ca_b.cert_pem),
    );
    let (_, reply) = get(addr, &ca_a.cert_pem, client_b, "/readyz").unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    get(addr, &ca_a.cert_pem, client_a, "/readyz").unwrap();

    // A new serving certificate (signed by B) is what the next connection sees.
    let second = serving(root, &ca_b, "kube-apiserver");
    assert!(
        get(addr, &ca_a.cert_pem, client_a, "/readyz").is_err(),
        "A's clients do not trust B's serving certificate"
    );
    let (served, _) = get(addr, &ca_b.cert_pem, client_a, "/readyz").unwrap();
    assert_eq!(served, second);
    assert_ne!(served, first);

    // The old CA dropped: A's clients are refused.
    put(root, "/etc/kubernetes/pki/ca.crt", &ca_b.cert_pem);
    assert!(get(addr, &ca_b.cert_pem, client_a, "/readyz").is_err());
    get(addr, &ca_b.cert_pem, client_b, "/readyz").unwrap();

    // The static pod stops with its manifest moved away, and starts with it back.
    let manifest_path = host(root, MANIFEST);
    let aside = root.join("kube-apiserver.yaml.moved");
    fs::rename(&manifest_path, &aside).unwrap();
    assert_eq!(wait_listening(&server, false), None);
    assert!(
        TcpStream::connect(addr).is_err(),
        "{addr} still accepts connections"
    );
    fs::rename(&aside, &manifest_path).unwrap();
    let again = wait_listening(&server, true).unwrap();
    let (_, reply) = get(again, &ca_b.cert_pem, client_b, "/readyz").unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn manifest_flags_are_read_and_missing_ones_named() {
    let ok = "spec:\n  containers:\n  - command: [kube-apiserver, --tls-cert-file=/c, --tls-private-key-file=/k, --client-ca-file=/ca]\n";
    let flags = parse_manifest(ok).unwrap();
    assert_eq!((flags.port, flags.bind), (6443, IpAddr::from([0, 0, 0, 0])));
    assert_eq!(
        (
            flags.cert.as_str(),
            flags.key.as_str(),
            flags.client_ca.as_str()
        ),
        ("/c", "/k", "/ca")
    );
    let err = parse_manifest("spec:\n  containers:\n  - command: [kube-apiserver, --tls-cert-file=/c, --tls-private-key-file=/k]\n").unwrap_err();
    assert!(err.contains("--client-ca-file"), "{err}");
    let err = parse_manifest("spec:\n  containers:\n  - command: [kube-apiserver, --secure-port=http, --tls-cert-file=/c, --tls-private-key-file=/k, --client-ca-file=/ca]\n").unwrap_err();
    assert!(
        err.contains("--secure-port=http is not a port number"),
        "{err}"
    );
}
