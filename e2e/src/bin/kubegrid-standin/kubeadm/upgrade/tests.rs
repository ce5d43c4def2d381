//! `kubeadm upgrade` against a host under a temporary KUBEGRID_STANDIN_ROOT: each refusal of
//! kubeadm's version policy, the happy paths, and the external etcd version check against a
//! loopback HTTPS server with etcd's client-certificate authentication.

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener},
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::Arc,
    thread,
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde_json::json;

use super::*;
use crate::{Tool, kubeadm::host};

fn ctx(root: &Path, version: &str) -> Ctx {
    Ctx {
        tool: Tool::Kubeadm,
        root: root.to_path_buf(),
        version: KubeVersion::parse(version).unwrap(),
    }
}

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

/// A host with admin.conf, a control plane at `control_plane` (stacked etcd when `etcd`) and
/// a kubelet printing `kubelet`.
fn control_plane_host(root: &Path, control_plane: &str, kubelet: &str, etcd: bool) {
    let c = ctx(root, control_plane);
    host::write(&c, "/etc/kubernetes/admin.conf", "x", 0o600).unwrap();
    manifests::write(&c, &v(control_plane), etcd).unwrap();
    fake_kubelet(root, kubelet);
}

/// A kubelet that prints what the stand-in kubelet of `version` prints for `--version`.
fn fake_kubelet(root: &Path, version: &str) {
    let kubelet = Ctx {
        tool: Tool::Kubelet,
        root: root.to_path_buf(),
        version: v(version),
    };
    let line = crate::kubelet::version_line(&kubelet);
    assert!(
        line.starts_with(&format!("Kubernetes {version} (")),
        "{line}"
    );
    let path = root.join("usr/bin/kubelet");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, format!("#!/bin/sh\necho '{line}'\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_upgrade(c: &Ctx, args: &[&str]) -> (Result<(), Error>, Record) {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let mut rec = Record::open(c, &args).unwrap();
    let result = run(c, &args, &mut rec);
    (result, rec)
}

fn image(root: &Path, pod: &str) -> String {
    let text =
        fs::read_to_string(root.join(format!("etc/kubernetes/manifests/{pod}.yaml"))).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    doc["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn apply_rewrites_every_manifest_and_records() {
    let root = tempfile::tempdir().unwrap();
    control_plane_host(root.path(), "v1.31.4", "v1.31.4", true);
    let c = ctx(root.path(), "v1.32.4");
    let (result, rec) = run_upgrade(
        &c,
        &["apply", "v1.32.4", "-y", "--certificate-renewal=false"],
    );
    result.unwrap();
    for pod in CONTROL_PLANE_PODS {
        assert_eq!(
            image(root.path(), pod),
            format!("registry.k8s.io/{pod}:v1.32.4")
        );
    }
    assert_eq!(image(root.path(), "etcd"), "registry.k8s.io/etcd:3.5.16-0");
    assert_eq!(
        manifests::control_plane_version(&c).unwrap(),
        Some(v("v1.32.4"))
    );
    assert_eq!(rec.config["upgrade"]["from"], "v1.31.4");
    assert_eq!(rec.config["upgrade"]["to"], "v1.32.4");
    assert_eq!(rec.config["upgrade"]["certificateRenewal"], false);
    assert_eq!(rec.config["upgrade"]["etcd"], "stacked");
}

#[test]
fn apply_with_etcd_upgrade_false_keeps_the_etcd_manifest() {
    let root = tempfile::tempdir().unwrap();
    control_plane_host(root.path(), "v1.31.4", "v1.31.4", true);
    let c = ctx(root.path(), "v1.32.4");
    run_upgrade(&c, &["apply", "v1.32.4", "--yes", "--etcd-upgrade=false"])
        .0
        .unwrap();
    assert_eq!(image(root.path(), "etcd"), "registry.k8s.io/etcd:3.5.15-0");
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.32.4"
    );
}

/// (kubeadm's own version, the control plane's, the kubelet's, the target, what the refusal
/// says).
const APPLY_REFUSALS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "v1.32.4",
        "v1.31.4",
        "v1.31.4",
        "v1.33.4",
        "is higher than the kubeadm version \"v1.32.4\"",
    ),
    (
        "v1.32.4",
        "v1.31.4",
        "v1.31.4",
        "v1.32.3",
        "upgrades only to its own version",
    ),
    (
        "v1.31.4",
        "v1.32.4",
        "v1.31.4",
        "v1.31.4",
        "Downgrades are not supported yet",
    ),
    (
        "v1.33.4",
        "v1.31.4",
        "v1.31.4",
        "v1.33.4",
        "kubeadm can upgrade only 1 minor version at a time",
    ),
    (
        "v1.32.4",
        "v1.31.4",
        "v1.33.4",
        "v1.32.4",
        "is newer than the control plane version",
    ),
    (
        "v1.32.4",
        "v1.31.4",
        "v1.28.9",
        "v1.32.4",
        "at most 3 minors older",
    ),
];

#[test]
fn apply_refuses_what_kubeadm_refuses_and_changes_nothing() {
    for (own, current, kubelet, target, says) in APPLY_REFUSALS {
        let root = tempfile::tempdir().unwrap();
        control_plane_host(root.path(), current, kubelet, false);
        let before = fs::read_to_string(
            root.path()
                .join("etc/kubernetes/manifests/kube-apiserver.yaml"),
        )
        .unwrap();
        let c = ctx(root.path(), own);
        let err = run_upgrade(&c, &["apply", target, "-y"])
            .0
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(says),
            "{own} {current} {kubelet} {target}: {err}"
        );
        assert!(err.starts_with("[upgrade/version] FATAL: "), "{err}");
        let after = fs::read_to_string(
            root.path()
                .join("etc/kubernetes/manifests/kube-apiserver.yaml"),
        )
        .unwrap();
        assert_eq!(before, after, "{own} {current} {kubelet} {target}");
    }
}

#[test]
fn apply_needs_a_control_plane_admin_conf_and_confirmation() {
    let root = tempfile::tempdir().unwrap();
    let c = ctx(root.path(), "v1.32.4");
    host::write(&c, "/etc/kubernetes/admin.conf", "x", 0o600).unwrap();
    fake_kubelet(root.path(), "v1.31.4");
    let err = run_upgrade(&c, &["apply", "v1.32.4", "-y"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("this host has no control plane"), "{err}");
    manifests::write(&c, &v("v1.31.4"), true).unwrap();
    let err = run_upgrade(&c, &["apply", "v1.32.4"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("pass -y"), "{err}");
    let err = run_upgrade(&c, &["apply", "-y"]).0.unwrap_err().to_string();
    assert!(err.contains("missing version argument"), "{err}");
    let err = run_upgrade(&c, &["apply", "1.32", "-y"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a version like"), "{err}");
    fs::remove_file(root.path().join("etc/kubernetes/admin.conf")).unwrap();
    let err = run_upgrade(&c, &["apply", "v1.32.4", "-y"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to load admin kubeconfig"), "{err}");
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.31.4"
    );
}

#[test]
fn apply_without_a_cluster_config_copy_or_stacked_etcd_is_refused() {
    let root = tempfile::tempdir().unwrap();
    control_plane_host(root.path(), "v1.31.4", "v1.31.4", false);
    let err = run_upgrade(&ctx(root.path(), "v1.32.4"), &["apply", "v1.32.4", "-y"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("keeps no ClusterConfiguration"), "{err}");
}

#[test]
fn node_upgrades_a_control_plane_one_minor_and_refuses_downgrades_and_skips() {
    let root = tempfile::tempdir().unwrap();
    control_plane_host(root.path(), "v1.31.4", "v1.31.4", false);
    let err = run_upgrade(&ctx(root.path(), "v1.33.4"), &["node"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("only 1 minor version at a time"), "{err}");
    let (result, rec) = run_upgrade(
        &ctx(root.path(), "v1.32.4"),
        &["node", "--certificate-renewal=true"],
    );
    result.unwrap();
    assert_eq!(rec.config["upgrade"]["role"], "control-plane");
    for pod in CONTROL_PLANE_PODS {
        assert_eq!(
            image(root.path(), pod),
            format!("registry.k8s.io/{pod}:v1.32.4")
        );
    }
    let err = run_upgrade(&ctx(root.path(), "v1.31.4"), &["node"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("Downgrades are not supported yet"), "{err}");
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.32.4"
    );
}

#[test]
fn node_on_a_worker_checks_the_kubelet_skew_and_records() {
    let root = tempfile::tempdir().unwrap();
    let c = ctx(root.path(), "v1.32.4");
    let err = run_upgrade(&c, &["node"]).0.unwrap_err().to_string();
    assert!(
        err.contains("neither control-plane manifests nor /etc/kubernetes/kubelet.conf"),
        "{err}"
    );
    host::write(&c, "/etc/kubernetes/kubelet.conf", "x", 0o600).unwrap();
    fake_kubelet(root.path(), "v1.31.4");
    let (result, rec) = run_upgrade(&c, &["node"]);
    result.unwrap();
    assert_eq!(
        rec.config["upgrade"],
        json!({"command": "node", "role": "worker", "kubelet": "v1.31.4", "to": "v1.32.4"})
    );
    assert!(!root.path().join("etc/kubernetes/manifests").exists());
    let err = run_upgrade(&ctx(root.path(), "v1.30.4"), &["node"])
        .0
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is older than this Node's kubelet \"v1.31.4\""),
        "{err}"
    );
    fake_kubelet(root.path(), "v1.28.2");
    let err = run_upgrade(&c, &["node"]).0.unwrap_err().to_string();
    assert!(err.contains("more than 3 minors newer"), "{err}");
}

#[test]
fn plan_prints_the_versions_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    control_plane_host(root.path(), "v1.31.4", "v1.31.4", true);
    let c = ctx(root.path(), "v1.32.4");
    let before = fs::read_to_string(
        root.path()
            .join("etc/kubernetes/manifests/kube-apiserver.yaml"),
    )
    .unwrap();
    let (result, rec) = run_upgrade(&c, &["plan"]);
    result.unwrap();
    assert_eq!(rec.config["upgrade"]["current"], "v1.31.4");
    assert_eq!(rec.config["upgrade"]["target"], "v1.32.4");
    let err = run_upgrade(&c, &["plan", "v1.33.4"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("is higher than the kubeadm version"), "{err}");
    let after = fs::read_to_string(
        root.path()
            .join("etc/kubernetes/manifests/kube-apiserver.yaml"),
    )
    .unwrap();
    assert_eq!(before, after);
    let empty = tempfile::tempdir().unwrap();
    let c = ctx(empty.path(), "v1.32.4");
    host::write(&c, "/etc/kubernetes/admin.conf", "x", 0o600).unwrap();
    let err = run_upgrade(&c, &["plan"]).0.unwrap_err().to_string();
    assert!(err.contains("no control plane"), "{err}");
}

#[test]
fn policy_table() {
    assert!(apply_problems(&v("v1.32.4"), &v("v1.32.4"), &v("v1.32.4")).is_empty());
    assert!(apply_problems(&v("v1.32.4"), &v("v1.32.1"), &v("v1.32.4")).is_empty());
    assert_eq!(
        apply_problems(&v("v1.33.4"), &v("v1.31.4"), &v("v1.33.4")).len(),
        1
    );
    assert!(kubelet_problem(&v("v1.29.0"), &v("v1.32.4")).is_none());
    assert!(kubelet_problem(&v("v1.28.0"), &v("v1.32.4")).is_some());
    assert!(kubelet_problem(&v("v1.32.5"), &v("v1.32.4")).is_some());
    assert_eq!(etcd_version::minimum_for(&v("v1.33.4")), (3, 5, 24));
    assert_eq!(etcd_version::minimum_for(&v("v1.34.0")), (3, 6, 0));
    assert_eq!(etcd_version::parse("3.5.30"), Some((3, 5, 30)));
    assert_eq!(etcd_version::parse("3.4"), None);
}

/// A loopback etcd `/version` endpoint over TLS that requires a client certificate from the
/// same CA; serves `connections` requests, then stops.
fn serve_etcd(dir: &Path, version: &'static str, connections: usize) -> String {
    let validity = Duration::from_secs(3600);
    let ca = kubegrid_pki::generate_etcd_ca(validity).unwrap();
    let member = kubegrid_pki::EtcdMember {
        name: "etcd-a".into(),
        addresses: vec![],
    };
    let server = ca
        .issue(&kubegrid_pki::etcd_server_spec(&member, validity))
        .unwrap();
    let client = ca
        .issue(&kubegrid_pki::apiserver_etcd_client_spec(validity))
        .unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    fs::write(dir.join("client.crt"), &client.cert_pem).unwrap();
    fs::write(dir.join("client.key"), &client.key_pem).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    );
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..connections {
            let (sock, _) = listener.accept().unwrap();
            let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = StreamOwned::new(conn, sock);
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = if request.starts_with(b"GET /version ") {
                format!("{{\"etcdserver\":\"{version}\",\"etcdcluster\":\"3.5.0\"}}")
            } else {
                String::new()
            };
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// A control-plane host at v1.31.4 whose init ClusterConfiguration names external etcd at
/// `endpoints`, with the client files under /etc/kubernetes/pki/etcd.
fn external_etcd_host(root: &Path, endpoints: &[String]) {
    control_plane_host(root, "v1.31.4", "v1.31.4", false);
    let c = ctx(root, "v1.31.4");
    manifests::save_cluster_config(
        &c,
        &json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
            "kubernetesVersion": "v1.31.4",
            "etcd": {"external": {
                "endpoints": endpoints,
                "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
                "certFile": "/etc/kubernetes/pki/etcd/client.crt",
                "keyFile": "/etc/kubernetes/pki/etcd/client.key",
            }},
        }),
    )
    .unwrap();
}

#[test]
fn apply_checks_the_external_etcd_version_over_tls() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("etc/kubernetes/pki/etcd");
    let endpoint = serve_etcd(&pki, "3.5.30", 1);
    external_etcd_host(root.path(), std::slice::from_ref(&endpoint));
    let c = ctx(root.path(), "v1.32.4");
    let (result, rec) = run_upgrade(&c, &["apply", "v1.32.4", "-y"]);
    result.unwrap();
    assert_eq!(
        rec.config["upgrade"]["externalEtcdVersions"],
        json!([{"endpoint": endpoint, "version": "3.5.30"}])
    );
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.32.4"
    );
    assert!(
        !root
            .path()
            .join("etc/kubernetes/manifests/etcd.yaml")
            .exists()
    );
    let copy = manifests::cluster_config(&c).unwrap().unwrap();
    assert_eq!(copy["kubernetesVersion"], "v1.32.4");
}

#[test]
fn apply_refuses_an_old_or_unreachable_external_etcd_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("etc/kubernetes/pki/etcd");
    let old = serve_etcd(&pki, "3.4.23", 2);
    // A port nothing listens on: bound, then closed.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    external_etcd_host(root.path(), &[old.clone(), dead.clone()]);
    let c = ctx(root.path(), "v1.32.4");
    let err = run_upgrade(&c, &["apply", "v1.32.4", "-y"])
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("[ERROR ExternalEtcdVersion]"), "{err}");
    assert!(
        err.contains(&format!("{old}: this version of kubeadm only supports external etcd version >= 3.5.24 for Kubernetes v1.32.4. Current version: 3.4.23")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "failed to get the etcd version from {dead}: dial tcp"
        )),
        "{err}"
    );
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.31.4"
    );
    // As kubeadm: the check can be made non-fatal.
    let (result, rec) = run_upgrade(
        &c,
        &[
            "apply",
            "v1.32.4",
            "-y",
            "--ignore-preflight-errors=ExternalEtcdVersion",
        ],
    );
    result.unwrap();
    assert_eq!(rec.warnings.len(), 2, "{:?}", rec.warnings);
    assert_eq!(
        image(root.path(), "kube-apiserver"),
        "registry.k8s.io/kube-apiserver:v1.32.4"
    );
}

#[test]
fn a_missing_or_unreadable_kubelet_version_is_named() {
    let root = tempfile::tempdir().unwrap();
    let c = ctx(root.path(), "v1.32.4");
    let err = local_kubelet(&c).unwrap_err().to_string();
    assert!(
        err.contains("cannot run /usr/bin/kubelet --version"),
        "{err}"
    );
    fake_kubelet(root.path(), "v1.31.4");
    assert_eq!(local_kubelet(&c).unwrap(), v("v1.31.4"));
    fs::write(
        root.path().join("usr/bin/kubelet"),
        "#!/bin/sh\necho 'kubelet 1.31'\n",
    )
    .unwrap();
    let err = local_kubelet(&c).unwrap_err().to_string();
    assert!(err.contains("expected `Kubernetes vX.Y.Z`"), "{err}");
}
