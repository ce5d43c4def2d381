use serde_json::json;

use super::*;
use crate::{Tool, checks::KubeVersion, pki::CertInfo, tls::client::get};

fn ctx(root: &Path) -> Ctx {
    Ctx {
        tool: Tool::Kubelet,
        root: root.to_path_buf(),
        version: KubeVersion::parse("v1.31.4").unwrap(),
    }
}

#[test]
fn the_config_names_address_port_and_files_else_kubelets_defaults() {
    let default = Serving::from_config(&Value::Null);
    assert_eq!(default.addr, "0.0.0.0:10250".parse().unwrap());
    assert_eq!(
        (default.cert.as_str(), default.key.as_str()),
        (DEFAULT_CERT, DEFAULT_KEY)
    );
    let set = Serving::from_config(
        &json!({"address": "127.0.0.1", "port": 0, "tlsCertFile": "/c", "tlsPrivateKeyFile": "/k"}),
    );
    assert_eq!(set.addr, "127.0.0.1:0".parse().unwrap());
    assert_eq!((set.cert.as_str(), set.key.as_str()), ("/c", "/k"));
}

#[test]
fn serves_healthz_with_its_self_signed_certificate_and_follows_the_file() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let serving = Serving::from_config(&json!({"address": "127.0.0.1", "port": 0}));
    ensure_certificate(&ctx, &serving, "127.0.0.1").unwrap();
    let cert = fs::read_to_string(ctx.host_path(DEFAULT_CERT)).unwrap();
    let info = CertInfo::parse(&cert).unwrap();
    let (host, unix) = info.cn.split_once('@').unwrap();
    assert_eq!(host, "127.0.0.1");
    assert!(unix.parse::<u64>().unwrap() > 1_700_000_000);
    assert!(pki::issued_by(&cert, &cert), "self-signed");
    // Present: kept.
    ensure_certificate(&ctx, &serving, "127.0.0.1").unwrap();
    assert_eq!(
        fs::read_to_string(ctx.host_path(DEFAULT_CERT)).unwrap(),
        cert
    );

    let addr = spawn(&ctx, &serving).unwrap();
    let (_, reply) = get(addr, &cert, None, "/healthz").unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("ok"),
        "{reply}"
    );
    let (_, reply) = get(addr, &cert, None, "/pods").unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");

    // A certificate rewritten on disk is served by the next connection.
    let (new_cert, new_key) = pki::self_signed(
        "127.0.0.1@1",
        &[],
        &["127.0.0.1".parse().unwrap()],
        pki::LEAF_VALIDITY,
    )
    .unwrap();
    fs::write(ctx.host_path(DEFAULT_KEY), &new_key).unwrap();
    fs::write(ctx.host_path(DEFAULT_CERT), &new_cert).unwrap();
    assert!(
        get(addr, &cert, None, "/healthz").is_err(),
        "the old certificate is no longer served"
    );
    get(addr, &new_cert, None, "/healthz").unwrap();
}
