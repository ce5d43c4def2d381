//! Kubeconfigs as kubeadm writes admin.conf.

use base64::{Engine, engine::general_purpose::STANDARD};
use kubegrid_pki::{ADMIN_USER, IssuedCert, admin_client_spec, generate_kubernetes_ca, kubeconfig};
use serde_yaml::Value;

use crate::common::{
    DAY, Scratch, assert_golden, assert_verifies, in_ci, openssl_available, tool_available,
};

#[test]
fn kubeconfig_layout_matches_golden() {
    let client = IssuedCert {
        cert_pem: "-----BEGIN CERTIFICATE-----\nY2xpZW50\n-----END CERTIFICATE-----\n".to_owned(),
        key_pem: "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n".to_owned(),
    };
    let ca = "-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n";
    let rendered = kubeconfig("lab", "https://10.0.0.100:6443", ca, ADMIN_USER, &client).unwrap();
    assert_golden("admin.conf", &rendered);
}

#[test]
fn admin_kubeconfig_embeds_working_credentials() {
    let ca = generate_kubernetes_ca(3650 * DAY).unwrap();
    let admin = ca.issue(&admin_client_spec(365 * DAY)).unwrap();
    let text = kubeconfig(
        "gpu-lab",
        "https://cp.example:6443",
        ca.cert_pem(),
        ADMIN_USER,
        &admin,
    )
    .unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let s = |v: &Value| v.as_str().expect("string").to_owned();
    let b64 = |v: &Value| String::from_utf8(STANDARD.decode(s(v)).unwrap()).unwrap();
    assert_eq!(s(&doc["apiVersion"]), "v1");
    assert_eq!(s(&doc["kind"]), "Config");
    assert_eq!(s(&doc["current-context"]), "kubernetes-admin@gpu-lab");
    let cluster = &doc["clusters"][0];
    assert_eq!(s(&cluster["name"]), "gpu-lab");
    assert_eq!(s(&cluster["cluster"]["server"]), "https://cp.example:6443");
    assert_eq!(
        b64(&cluster["cluster"]["certificate-authority-data"]),
        ca.cert_pem()
    );
    let context = &doc["contexts"][0];
    assert_eq!(s(&context["name"]), "kubernetes-admin@gpu-lab");
    assert_eq!(s(&context["context"]["cluster"]), "gpu-lab");
    assert_eq!(s(&context["context"]["user"]), "kubernetes-admin");
    let user = &doc["users"][0];
    assert_eq!(s(&user["name"]), "kubernetes-admin");
    let cert = b64(&user["user"]["client-certificate-data"]);
    assert_eq!(cert, admin.cert_pem);
    assert_eq!(b64(&user["user"]["client-key-data"]), admin.key_pem);
    if openssl_available("admin_kubeconfig_embeds_working_credentials") {
        assert_verifies(ca.cert_pem(), &cert, Some("sslclient"));
    }
}

#[test]
fn names_needing_quotes_stay_intact() {
    let client = IssuedCert {
        cert_pem: "c".to_owned(),
        key_pem: "k".to_owned(),
    };
    let text = kubeconfig("a: b #c", "https://[fd00::1]:6443", "ca", "yes", &client).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["clusters"][0]["name"].as_str(), Some("a: b #c"));
    assert_eq!(doc["users"][0]["name"].as_str(), Some("yes"));
    assert_eq!(doc["current-context"].as_str(), Some("yes@a: b #c"));
}

#[test]
fn kubectl_reads_the_kubeconfig() {
    if !tool_available(
        "kubectl",
        &["version", "--client"],
        "kubectl_reads_the_kubeconfig",
        in_ci(),
    ) {
        return;
    }
    let ca = generate_kubernetes_ca(DAY).unwrap();
    let admin = ca.issue(&admin_client_spec(DAY)).unwrap();
    let text = kubeconfig(
        "lab",
        "https://10.0.0.100:6443",
        ca.cert_pem(),
        ADMIN_USER,
        &admin,
    )
    .unwrap();
    let scratch = Scratch::new();
    let path = scratch.file("admin.conf", &text);
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        kubectl(&["config", "current-context"]).trim(),
        "kubernetes-admin@lab"
    );
    let server = kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    assert_eq!(server, "https://10.0.0.100:6443");
    let key = kubectl(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.users[0].user.client-key-data}",
    ]);
    assert_eq!(STANDARD.decode(key).unwrap(), admin.key_pem.as_bytes());
}
