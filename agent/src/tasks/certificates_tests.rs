use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;
use crate::testutil::ctx_in;

fn cert_and_key(name: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn args(path: &Path, certificate: Option<&str>, ca: Option<&str>) -> CertificatesArgs {
    CertificatesArgs {
        path: path.to_path_buf(),
        certificate: certificate.map(str::to_string),
        ca: ca.map(str::to_string),
    }
}

fn kubeconfig(ca: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.2:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        pem::encode_data(ca),
        pem::encode_data(cert),
        pem::encode_data(key),
    )
}

#[test]
fn a_combined_file_keeps_its_key_byte_for_byte_mode_owner_and_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (old, key) = cert_and_key("old");
    let (new, _) = cert_and_key("new");
    let pki = dir.path().join("pki");
    fs::create_dir_all(&pki).unwrap();
    let target = pki.join("kubelet-client-2026-01-01.pem");
    // kubelet writes the certificate first, then the key; the blank line between stays.
    fs::write(&target, format!("{old}\n{key}")).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    let current = pki.join("kubelet-client-current.pem");
    symlink(&target, &current).unwrap();

    let out = apply(&args(&current, Some(&new), None), &ctx).unwrap();
    assert!(out.changed);
    assert_eq!(
        out.message,
        format!(
            "rewrite {} (via {}): 1 certificate(s) replaced by 1, 1 other block(s) kept",
            target.display(),
            current.display()
        )
    );
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("{new}\n{key}")
    );
    assert!(
        fs::symlink_metadata(&current)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));

    let again = apply(&args(&current, Some(&new), None), &ctx).unwrap();
    assert!(!again.changed, "{}", again.message);
    assert_eq!(
        again.message,
        format!("{} already holds these certificates", current.display())
    );
}

#[test]
fn a_bundle_becomes_the_new_certificates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (a, _) = cert_and_key("a");
    let (b, _) = cert_and_key("b");
    let (c, _) = cert_and_key("c");
    let path = dir.path().join("ca.crt");
    fs::write(&path, format!("{a}{b}")).unwrap();
    let both = format!("{c}{a}");
    let out = apply(&args(&path, Some(&both), None), &ctx).unwrap();
    assert!(
        out.message
            .ends_with("2 certificate(s) replaced by 2, 0 other block(s) kept")
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), both);
}

#[test]
fn a_kubeconfig_gets_new_data_and_keeps_its_key_data() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (ca, _) = cert_and_key("ca");
    let (next_ca, _) = cert_and_key("next-ca");
    let (cert, key) = cert_and_key("admin");
    let (renewed, _) = cert_and_key("admin");
    let path = dir.path().join("admin.conf");
    fs::write(
        &path,
        format!("# kubeadm\n{}", kubeconfig(&ca, &cert, &key)),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let bundle = format!("{ca}{next_ca}");

    let out = apply(&args(&path, Some(&renewed), Some(&bundle)), &ctx).unwrap();
    assert_eq!(
        out.message,
        format!(
            "rewrite {}: users[kubernetes-admin].client-certificate-data, clusters[kubernetes].certificate-authority-data",
            path.display()
        )
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!(
            "    client-key-data: {}\n",
            pem::encode_data(&key)
        )),
        "the key's line is kept verbatim:\n{text}"
    );
    assert!(!text.contains("# kubeadm"), "comments are not kept");
    let doc = pem::kubeconfig(&text).unwrap();
    let user = &pem::entries(&doc, "users", "user")[0].1;
    let cluster = &pem::entries(&doc, "clusters", "cluster")[0].1;
    assert_eq!(
        pem::decode_data(pem::setting(user, "client-certificate-data").unwrap()).unwrap(),
        renewed
    );
    assert_eq!(
        pem::decode_data(pem::setting(cluster, "certificate-authority-data").unwrap()).unwrap(),
        bundle
    );
    assert_eq!(
        pem::setting(cluster, "server"),
        Some("https://10.0.0.2:6443")
    );
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);

    let again = apply(&args(&path, Some(&renewed), Some(&bundle)), &ctx).unwrap();
    assert!(!again.changed, "{}", again.message);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    // Only the CA: the message names only what changes.
    let ca_only = apply(&args(&path, None, Some(&next_ca)), &ctx).unwrap();
    assert!(
        ca_only
            .message
            .ends_with(": clusters[kubernetes].certificate-authority-data"),
        "{}",
        ca_only.message
    );
}

#[test]
fn a_kubeconfig_naming_its_certificate_file_gets_that_file_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (old, key) = cert_and_key("kubelet");
    let (new, _) = cert_and_key("kubelet");
    let conf = dir.path().join("kubelet.conf");
    let text = "apiVersion: v1\nkind: Config\nclusters: []\nusers:\n- name: default-auth\n  user:\n    client-certificate: pki/kubelet-client-current.pem\n    client-key: pki/kubelet-client-current.pem\n";
    fs::write(&conf, text).unwrap();
    let pem_path = dir.path().join("pki/kubelet-client-current.pem");
    fs::create_dir_all(pem_path.parent().unwrap()).unwrap();
    fs::write(&pem_path, format!("{old}{key}")).unwrap();
    let out = apply(&args(&conf, Some(&new), None), &ctx).unwrap();
    assert!(out.changed);
    assert!(
        out.message
            .starts_with(&format!("rewrite {}: ", pem_path.display()))
    );
    assert_eq!(
        fs::read_to_string(&pem_path).unwrap(),
        format!("{new}{key}")
    );
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        text,
        "the kubeconfig is unchanged"
    );
}

#[test]
fn check_mode_reports_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), true);
    let (old, key) = cert_and_key("old");
    let (new, _) = cert_and_key("new");
    let path = dir.path().join("server.pem");
    fs::write(&path, format!("{old}{key}")).unwrap();
    let out = apply(&args(&path, Some(&new), None), &ctx).unwrap();
    assert!(out.changed);
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{old}{key}"));
}

#[test]
fn refuses_missing_files_keys_as_input_and_a_ca_for_a_pem_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (cert, key) = cert_and_key("x");
    let missing = dir.path().join("nope.crt");
    let err = apply(&args(&missing, Some(&cert), None), &ctx).unwrap_err();
    assert!(matches!(err, Error::CertificateFileMissing { .. }));
    assert!(err.to_string().contains(": no such file; hint: "), "{err}");

    let path = dir.path().join("server.crt");
    fs::write(&path, &cert).unwrap();
    let with_key = format!("{cert}{key}");
    let err = apply(&args(&path, Some(&with_key), None), &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the certificate given for {} holds a PEM block that is not a CERTIFICATE; hint: pass PEM CERTIFICATE blocks only, never a key",
            path.display()
        )
    );
    let err = apply(&args(&path, None, Some(&cert)), &ctx).unwrap_err();
    assert!(
        err.to_string()
            .contains("a CA can only be set in a kubeconfig"),
        "{err}"
    );
    let err = apply(&args(&path, None, None), &ctx).unwrap_err();
    assert!(
        err.to_string().contains("neither a certificate nor a CA"),
        "{err}"
    );

    let key_only = dir.path().join("server.key");
    fs::write(&key_only, &key).unwrap();
    let err = apply(&args(&key_only, Some(&cert), None), &ctx).unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM CERTIFICATE block"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&key_only).unwrap(), key);
    assert_eq!(fs::read_to_string(&path).unwrap(), cert);
    assert!(!err.to_string().contains("PRIVATE KEY"));
}

#[test]
fn a_kubeconfig_without_client_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), false);
    let (cert, _) = cert_and_key("x");
    let path = dir.path().join("token.conf");
    fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nusers:\n- name: t\n  user:\n    token: secret-token\n",
    )
    .unwrap();
    let err = apply(&args(&path, Some(&cert), None), &ctx).unwrap_err();
    assert!(
        err.to_string()
            .contains("no user of this kubeconfig has a client certificate")
    );
    assert!(!err.to_string().contains("secret-token"));
}
