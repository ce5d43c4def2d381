use std::net::IpAddr;

use serde_json::Value;
use time::OffsetDateTime;

use super::*;
use crate::{
    Tool,
    checks::KubeVersion,
    kubeadm::{
        host,
        kubeconfigs::{self, embedded},
    },
    kubeadm_config::{self, Flow},
    pki::issued_by,
    yaml,
};

const DAY: Duration = Duration::from_secs(86_400);

const INIT: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.11
  bindPort: 6443
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
clusterName: gpu-lab
controlPlaneEndpoint: k8s-api.lab.internal:6443
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.112.0.0/12
  dnsDomain: lab.local
apiServer:
  certSANs:
  - 192.0.2.7
  - api.example.org
certificateValidityPeriod: 48h0m0s
ETCD
";

const EXTERNAL: &str = "etcd:
  external:
    endpoints: [https://10.0.0.11:2379]
    caFile: /etc/kubernetes/pki/etcd/ca.crt
    certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key";

const JOIN_CP: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: k8s-api.lab.internal:6443
    caCertHashes: [\"sha256:9b4c1f0e3d2a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e\"]
nodeRegistration:
  name: cp-2
controlPlane:
  localAPIEndpoint:
    advertiseAddress: 10.0.0.12
    bindPort: 6443
  certificateKey: 7f2c3a9d1e5b4c6a8d0f2e4b6c8a0d2f4e6b8c0a2d4f6e8b0c2a4d6f8e0b2c4a
";

fn ctx(root: &Path) -> Ctx {
    Ctx {
        tool: Tool::Kubeadm,
        root: root.to_path_buf(),
        version: KubeVersion::parse("v1.31.4").unwrap(),
    }
}

fn config(flow: Flow, text: &str) -> (Facts, Value) {
    let docs = yaml::parse_docs(text).unwrap();
    let checked = kubeadm_config::check(
        flow,
        &docs,
        &KubeVersion::parse("v1.31.4").unwrap(),
        &|_| true,
    );
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    (checked.facts, Value::Array(docs))
}

/// The cluster CA as kubegrid stages it: made by kubegrid's own PKI.
fn stage_ca(ctx: &Ctx) -> kubegrid_pki::Ca {
    let ca = kubegrid_pki::Ca::generate("kubernetes", 3650 * DAY).unwrap();
    host::write(ctx, "/etc/kubernetes/pki/ca.crt", ca.cert_pem(), 0o644).unwrap();
    host::write(ctx, "/etc/kubernetes/pki/ca.key", ca.key_pem(), 0o600).unwrap();
    ca
}

fn read(ctx: &Ctx, path: &str) -> String {
    fs::read_to_string(ctx.host_path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(ctx: &Ctx, name: &str) -> CertInfo {
    CertInfo::parse(&read(ctx, &pki_path(name))).unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|i| i.parse().unwrap()).collect()
}

#[test]
fn init_writes_kubeadms_certificates_and_kubeconfigs_under_the_staged_ca() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let ca = stage_ca(&ctx);
    let (facts, docs) = config(Flow::Init, &INIT.replace("ETCD", EXTERNAL));
    host::write_init(&ctx, &facts, &docs).unwrap();

    let api = cert(&ctx, "apiserver.crt");
    assert_eq!(api.cn, "kube-apiserver");
    assert_eq!(
        api.dns,
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.lab.local",
            "cp-1",
            "k8s-api.lab.internal",
            "api.example.org"
        ]
    );
    assert_eq!(api.ips, ips(&["10.112.0.1", "10.0.0.11", "192.0.2.7"]));
    assert!(api.server_auth);
    // certificateValidityPeriod: 48h.
    let left = api.not_after - OffsetDateTime::now_utc();
    assert!(
        left <= 2 * DAY && left > 2 * DAY - Duration::from_secs(120),
        "{left}"
    );
    let kc = cert(&ctx, "apiserver-kubelet-client.crt");
    assert_eq!(
        (kc.cn.as_str(), kc.orgs.as_slice()),
        (
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins".to_string()][..]
        )
    );
    assert!(kc.client_auth);
    for leaf in ["apiserver.crt", "apiserver-kubelet-client.crt"] {
        assert!(
            issued_by(&read(&ctx, &pki_path(leaf)), ca.cert_pem()),
            "{leaf}"
        );
    }
    let front_ca = read(&ctx, &pki_path("front-proxy-ca.crt"));
    assert_eq!(CertInfo::parse(&front_ca).unwrap().cn, "front-proxy-ca");
    assert!(CertInfo::parse(&front_ca).unwrap().is_ca);
    assert_eq!(
        cert(&ctx, "front-proxy-client.crt").cn,
        "front-proxy-client"
    );
    assert!(issued_by(
        &read(&ctx, &pki_path("front-proxy-client.crt")),
        &front_ca
    ));
    assert!(read(&ctx, &pki_path("sa.key")).contains("PRIVATE KEY"));
    assert!(read(&ctx, &pki_path("sa.pub")).contains("PUBLIC KEY"));
    // External etcd: kubegrid provides pki/etcd, kubeadm generates nothing there.
    assert!(!ctx.host_path(&pki_path("etcd")).exists());
    assert!(
        !ctx.host_path(&pki_path("apiserver-etcd-client.crt"))
            .exists()
    );

    for (file, cn, org, server) in [
        (
            "admin.conf",
            "kubernetes-admin",
            Some("kubeadm:cluster-admins"),
            "https://k8s-api.lab.internal:6443",
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            Some("system:masters"),
            "https://k8s-api.lab.internal:6443",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            None,
            "https://10.0.0.11:6443",
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            None,
            "https://10.0.0.11:6443",
        ),
        (
            "kubelet.conf",
            "system:node:cp-1",
            Some("system:nodes"),
            "https://k8s-api.lab.internal:6443",
        ),
    ] {
        let text = read(&ctx, &format!("/etc/kubernetes/{file}"));
        assert!(text.starts_with("# STAND-IN"), "{file}");
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["clusters"][0]["cluster"]["server"], server, "{file}");
        assert_eq!(doc["clusters"][0]["name"], "gpu-lab", "{file}");
        assert_eq!(
            embedded(&text, "clusters", "cluster", "certificate-authority-data").as_deref(),
            Some(ca.cert_pem()),
            "{file}"
        );
        let client = embedded(&text, "users", "user", "client-certificate-data").unwrap();
        assert!(
            embedded(&text, "users", "user", "client-key-data")
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let info = CertInfo::parse(&client).unwrap();
        assert_eq!(info.cn, cn, "{file}");
        assert_eq!(
            info.orgs,
            org.map(String::from).into_iter().collect::<Vec<_>>(),
            "{file}"
        );
        assert!(issued_by(&client, ca.cert_pem()), "{file}");
        let mode = fs::metadata(ctx.host_path(&format!("/etc/kubernetes/{file}")))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
    let manifest = read(&ctx, "/etc/kubernetes/manifests/kube-apiserver.yaml");
    for flag in [
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--secure-port=6443",
    ] {
        assert!(manifest.contains(flag), "{flag}: {manifest}");
    }

    // As upstream: what is on disk and valid is kept, byte for byte.
    let kept = [
        "/etc/kubernetes/pki/apiserver.crt",
        "/etc/kubernetes/pki/front-proxy-ca.key",
        "/etc/kubernetes/pki/sa.key",
        "/etc/kubernetes/admin.conf",
    ]
    .map(|p| (p, read(&ctx, p)));
    host::write_init(&ctx, &facts, &docs).unwrap();
    for (path, before) in kept {
        assert_eq!(read(&ctx, path), before, "{path} was regenerated");
    }
}

#[test]
fn init_refuses_certificates_and_kubeconfigs_from_another_ca() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    stage_ca(&ctx);
    let (facts, docs) = config(Flow::Init, &INIT.replace("ETCD", EXTERNAL));
    let plan = Plan::new(&facts, &docs);
    let stranger = Signer::generate("kubernetes", DAY).unwrap();
    let (c, k) = stranger.issue(&plan.apiserver(), DAY).unwrap();
    host::write(&ctx, &pki_path("apiserver.crt"), &c, 0o644).unwrap();
    host::write(&ctx, &pki_path("apiserver.key"), &k, 0o600).unwrap();
    let err = host::write_init(&ctx, &facts, &docs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate apiserver (/etc/kubernetes/pki/apiserver.crt) is not signed by corresponding CA"), "{err}");

    // Signed by the CA but without the SANs kubeadm wants.
    let ca = Signer::from_pem(
        "ca",
        &read(&ctx, &pki_path("ca.crt")),
        &read(&ctx, &pki_path("ca.key")),
    )
    .unwrap();
    let narrow = LeafSpec {
        cn: "kube-apiserver".into(),
        dns: vec!["kubernetes".into()],
        server: true,
        ..LeafSpec::default()
    };
    let (c, k) = ca.issue(&narrow, DAY).unwrap();
    host::write(&ctx, &pki_path("apiserver.crt"), &c, 0o644).unwrap();
    host::write(&ctx, &pki_path("apiserver.key"), &k, 0o600).unwrap();
    let err = host::write_init(&ctx, &facts, &docs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lacks the SANs") && err.contains("cp-1") && err.contains("10.112.0.1"),
        "{err}"
    );

    fs::remove_file(ctx.host_path(&pki_path("apiserver.crt"))).unwrap();
    let other = kubeconfigs::render(
        "gpu-lab",
        "https://k8s-api.lab.internal:6443",
        Some(&stranger.cert_pem),
        "x",
        None,
        "",
    );
    host::write(&ctx, "/etc/kubernetes/admin.conf", &other, 0o600).unwrap();
    let err = host::write_init(&ctx, &facts, &docs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"/etc/kubernetes/admin.conf\" exists already but has got the wrong CA cert"),
        "{err}"
    );
}

#[test]
fn stacked_init_generates_every_ca_and_etcds_certificates_for_a_year() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let text = INIT
        .replace("ETCD", "")
        .replace("certificateValidityPeriod: 48h0m0s\n", "");
    let (facts, docs) = config(Flow::Init, &text);
    host::write_init(&ctx, &facts, &docs).unwrap();
    let ca = read(&ctx, &pki_path("ca.crt"));
    let root_ca = CertInfo::parse(&ca).unwrap();
    assert!(root_ca.is_ca && root_ca.cn == "kubernetes");
    let etcd_ca = read(&ctx, &pki_path("etcd/ca.crt"));
    assert_eq!(CertInfo::parse(&etcd_ca).unwrap().cn, "etcd-ca");
    for name in ["etcd/server.crt", "etcd/peer.crt"] {
        let info = cert(&ctx, name);
        assert_eq!(info.cn, "cp-1");
        assert_eq!(info.dns, ["cp-1", "localhost"]);
        assert_eq!(info.ips, ips(&["10.0.0.11", "127.0.0.1", "::1"]));
        assert!(info.server_auth && info.client_auth);
        assert!(issued_by(&read(&ctx, &pki_path(name)), &etcd_ca));
    }
    assert_eq!(
        cert(&ctx, "etcd/healthcheck-client.crt").cn,
        "kube-etcd-healthcheck-client"
    );
    assert_eq!(
        cert(&ctx, "apiserver-etcd-client.crt").cn,
        "kube-apiserver-etcd-client"
    );
    assert!(issued_by(
        &read(&ctx, &pki_path("apiserver-etcd-client.crt")),
        &etcd_ca
    ));
    let left = cert(&ctx, "apiserver.crt").not_after - OffsetDateTime::now_utc();
    assert!(left <= 365 * DAY && left > 364 * DAY, "{left}");
    let ca_left = root_ca.not_after - OffsetDateTime::now_utc();
    assert!(ca_left > 3649 * DAY, "{ca_left}");
}

#[test]
fn a_control_plane_join_signs_with_the_staged_ca_and_a_worker_gets_no_credentials() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let (facts, docs) = config(Flow::Join, JOIN_CP);
    // Without the CA on the host: kubeconfigs without credentials, no certificates.
    host::write_join(&ctx, &facts, &docs).unwrap();
    assert!(!ctx.host_path(&pki_path("apiserver.crt")).exists());
    assert!(
        embedded(
            &read(&ctx, "/etc/kubernetes/admin.conf"),
            "users",
            "user",
            "client-certificate-data"
        )
        .is_none()
    );
    host::reset(&ctx).unwrap();

    let ca = stage_ca(&ctx);
    host::write_join(&ctx, &facts, &docs).unwrap();
    let api = cert(&ctx, "apiserver.crt");
    assert!(
        api.dns.contains(&"cp-2".to_string())
            && api.dns.contains(&"k8s-api.lab.internal".to_string())
    );
    // No ClusterConfiguration in a join: kubeadm's default service subnet and domain.
    assert_eq!(api.ips, ips(&["10.96.0.1", "10.0.0.12"]));
    assert!(
        api.dns
            .contains(&"kubernetes.default.svc.cluster.local".to_string())
    );
    for file in [
        "admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "kubelet.conf",
    ] {
        let text = read(&ctx, &format!("/etc/kubernetes/{file}"));
        let client = embedded(&text, "users", "user", "client-certificate-data").unwrap();
        assert!(issued_by(&client, ca.cert_pem()), "{file}");
    }
    assert_eq!(
        CertInfo::parse(
            &embedded(
                &read(&ctx, "/etc/kubernetes/kubelet.conf"),
                "users",
                "user",
                "client-certificate-data"
            )
            .unwrap()
        )
        .unwrap()
        .cn,
        "system:node:cp-2"
    );
    assert!(!ctx.host_path("/etc/kubernetes/super-admin.conf").exists());

    // A worker: the discovery CA when its file is there, never client credentials.
    let worker = tempfile::tempdir().unwrap();
    let wctx = self::ctx(worker.path());
    let text = JOIN_CP.replace("cp-2", "w-1");
    let text = &text[..text.find("controlPlane:").unwrap()];
    let (facts, docs) = config(Flow::Join, text);
    host::write_join(&wctx, &facts, &docs).unwrap();
    let kubelet = read(&wctx, "/etc/kubernetes/kubelet.conf");
    assert!(kubelet.contains("TLS bootstrap"), "{kubelet}");
    assert!(
        embedded(
            &kubelet,
            "clusters",
            "cluster",
            "certificate-authority-data"
        )
        .is_none()
    );
    assert!(embedded(&kubelet, "users", "user", "client-certificate-data").is_none());
    host::write(&wctx, "/etc/kubernetes/pki/ca.crt", ca.cert_pem(), 0o644).unwrap();
    fs::remove_file(wctx.host_path("/etc/kubernetes/kubelet.conf")).unwrap();
    host::write_join(&wctx, &facts, &docs).unwrap();
    let kubelet = read(&wctx, "/etc/kubernetes/kubelet.conf");
    assert_eq!(
        embedded(
            &kubelet,
            "clusters",
            "cluster",
            "certificate-authority-data"
        )
        .as_deref(),
        Some(ca.cert_pem())
    );
}
