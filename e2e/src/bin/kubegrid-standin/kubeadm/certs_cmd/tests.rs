use std::fs;

use serde_json::json;

use super::*;
use crate::{
    Tool,
    checks::KubeVersion,
    kubeadm::{certs::Plan, kubeconfigs},
    kubeadm_config::Facts,
    pki::issued_by,
};

const DAY: Duration = Duration::from_secs(86_400);

fn ctx(root: &std::path::Path) -> Ctx {
    Ctx {
        tool: Tool::Kubeadm,
        root: root.to_path_buf(),
        version: KubeVersion::parse("v1.31.4").unwrap(),
    }
}

/// An init host: staged CA, external etcd's CA certificate without its key, kubeadm's files.
fn init_host(ctx: &Ctx) -> Signer {
    let ca = Signer::generate("kubernetes", 3650 * DAY).unwrap();
    let etcd = Signer::generate("etcd-ca", 3650 * DAY).unwrap();
    host::write(ctx, &pki_path("ca.crt"), &ca.cert_pem, 0o644).unwrap();
    host::write(ctx, &pki_path("ca.key"), &ca.key_pem, 0o600).unwrap();
    host::write(ctx, &pki_path("etcd/ca.crt"), &etcd.cert_pem, 0o644).unwrap();
    let (c, k) = etcd
        .issue(
            &pki::LeafSpec::client("kube-apiserver-etcd-client", &[]),
            365 * DAY,
        )
        .unwrap();
    host::write(ctx, &pki_path("apiserver-etcd-client.crt"), &c, 0o644).unwrap();
    host::write(ctx, &pki_path("apiserver-etcd-client.key"), &k, 0o600).unwrap();
    let facts = Facts {
        control_plane: true,
        node_name: Some("cp-1".into()),
        server: Some("https://10.0.0.10:6443".into()),
        ..Facts::default()
    };
    let docs = json!([{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "etcd": {"external": {}}}]);
    host::write_init(ctx, &facts, &docs).unwrap();
    ca
}

#[test]
fn residual_times_read_like_kubeadms() {
    let d = time::Duration::seconds;
    assert_eq!(residual(d(-5)), "<invalid>");
    assert_eq!(residual(d(30)), "30s");
    assert_eq!(residual(d(600)), "10m");
    assert_eq!(residual(d(7200)), "2h");
    assert_eq!(residual(d(364 * 86400 + 3600)), "364d");
    assert_eq!(residual(d(3649 * 86400)), "9y");
    let t = OffsetDateTime::from_unix_timestamp(1_796_511_060).unwrap();
    assert_eq!(expires(t), "Dec 05, 2026 22:51 UTC");
}

#[test]
fn check_expiration_lists_what_is_on_the_host() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    init_host(&ctx);
    let now = OffsetDateTime::now_utc();
    let out = check_expiration(&ctx, now).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "");
    assert!(
        lines[1].starts_with("CERTIFICATE ")
            && lines[1].ends_with("CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"),
        "{out}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let admin = row("admin.conf");
    // The expiry takes five words: `Dec 05, 2027 23:11 UTC`.
    assert_eq!(&admin[6..], ["364d", "ca", "no"], "{out}");
    assert_eq!(
        &row("apiserver-etcd-client")[7..],
        ["etcd-ca", "yes"],
        "{out}"
    );
    assert_eq!(
        &row("front-proxy-client")[7..],
        ["front-proxy-ca", "no"],
        "{out}"
    );
    for name in [
        "apiserver",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "scheduler.conf",
        "super-admin.conf",
    ] {
        row(name);
    }
    // Stacked etcd's certificates are absent here, so not listed.
    assert!(!out.contains("etcd-server"), "{out}");
    assert!(out.contains("\nCERTIFICATE AUTHORITY   EXPIRES"), "{out}");
    assert_eq!(&row("ca")[6..], ["9y", "no"], "{out}");
    assert_eq!(&row("etcd-ca")[6..], ["9y", "yes"], "{out}");

    // It reads the files: a certificate rewritten on disk shows.
    let ca = Signer::from_pem(
        "ca",
        &fs::read_to_string(ctx.host_path(&pki_path("ca.crt"))).unwrap(),
        &fs::read_to_string(ctx.host_path(&pki_path("ca.key"))).unwrap(),
    )
    .unwrap();
    let cert = fs::read_to_string(ctx.host_path(&pki_path("apiserver.crt"))).unwrap();
    let key = fs::read_to_string(ctx.host_path(&pki_path("apiserver.key"))).unwrap();
    host::write(
        &ctx,
        &pki_path("apiserver.crt"),
        &ca.resign(&cert, &key, 10 * DAY).unwrap(),
        0o644,
    )
    .unwrap();
    let out = check_expiration(&ctx, now).unwrap();
    let line = out.lines().find(|l| l.starts_with("apiserver ")).unwrap();
    assert!(line.contains(" 9d ") || line.contains(" 10d "), "{line}");
}

#[test]
fn renew_resigns_present_leaves_keeping_their_keys() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let ca = init_host(&ctx);
    let read = |p: &str| fs::read_to_string(ctx.host_path(p)).unwrap();
    let api_before = read(&pki_path("apiserver.crt"));
    let key_before = read(&pki_path("apiserver.key"));
    let admin_before = read("/etc/kubernetes/admin.conf");
    let etcd_client_before = read(&pki_path("apiserver-etcd-client.crt"));

    // Renewing one certificate whose CA key is absent is refused with the reason.
    let err = renew(&ctx, "apiserver-etcd-client")
        .unwrap_err()
        .to_string();
    assert!(err.contains("etcd-ca key is not on this host"), "{err}");
    let err = renew(&ctx, "kubelet").unwrap_err().to_string();
    assert!(err.contains("unknown certificate \"kubelet\""), "{err}");

    renew(&ctx, "all").unwrap();
    let api_after = read(&pki_path("apiserver.crt"));
    assert_ne!(api_after, api_before);
    assert_eq!(read(&pki_path("apiserver.key")), key_before);
    let (before, after) = (
        CertInfo::parse(&api_before).unwrap(),
        CertInfo::parse(&api_after).unwrap(),
    );
    assert_eq!(
        (&after.cn, &after.dns, &after.ips),
        (&before.cn, &before.dns, &before.ips)
    );
    let serial = |pem: &str| {
        let p = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        p.parse_x509().unwrap().raw_serial().to_vec()
    };
    assert_ne!(serial(&api_after), serial(&api_before));
    assert!(issued_by(&api_after, &ca.cert_pem));
    // The key on disk still matches the renewed certificate: it serves.
    crate::tls::server_config(
        &ctx.host_path(&pki_path("apiserver.crt")),
        &ctx.host_path(&pki_path("apiserver.key")),
        None,
    )
    .unwrap();
    // External etcd's client is left alone under `all`.
    assert_eq!(
        read(&pki_path("apiserver-etcd-client.crt")),
        etcd_client_before
    );

    let admin_after = read("/etc/kubernetes/admin.conf");
    assert!(admin_after.starts_with("# STAND-IN"));
    let field = |text: &str, f: &str| kubeconfigs::embedded(text, "users", "user", f).unwrap();
    assert_ne!(
        field(&admin_after, "client-certificate-data"),
        field(&admin_before, "client-certificate-data")
    );
    assert_eq!(
        field(&admin_after, "client-key-data"),
        field(&admin_before, "client-key-data")
    );
    let renewed = CertInfo::parse(&field(&admin_after, "client-certificate-data")).unwrap();
    assert_eq!(
        (renewed.cn.as_str(), renewed.orgs.as_slice()),
        (
            "kubernetes-admin",
            &["kubeadm:cluster-admins".to_string()][..]
        )
    );
    assert!(issued_by(
        &field(&admin_after, "client-certificate-data"),
        &ca.cert_pem
    ));
    let _ = Plan::new(&Facts::default(), &Value::Null);
}
