use std::{fs, os::unix::fs::symlink, path::PathBuf};

use super::*;
use crate::{facts::gather, protocol::FactsArgs, testutil::write};

/// A self-signed certificate and its PKCS#8 key, PEM.
pub(crate) fn cert_and_key(name: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// The base64 lines of a PEM block's body, to look for in output (JSON escapes the newlines
/// between them, so each line is looked for on its own).
fn body_lines(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn kubeconfig(ca: &str, user_cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n# written by kubeadm\nclusters:\n- name: kubernetes\n  cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.2:6443\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n- name: kubelet\n  user:\n    client-certificate: pki/kubelet-client-current.pem\n    client-key: pki/kubelet-client-current.pem\ncontexts: []\ncurrent-context: ''\n",
        pem::encode_data(ca),
        pem::encode_data(user_cert),
        pem::encode_data(key),
    )
}

#[test]
fn reads_every_certificate_of_a_bundle() {
    let (a, _) = cert_and_key("a");
    let (b, _) = cert_and_key("b");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "etc/etcd/pki/ca.crt", &format!("{a}{b}"));
    let found = certificates(dir.path(), &[PathBuf::from("/etc/etcd/pki/ca.crt")]);
    let file = &found["/etc/etcd/pki/ca.crt"];
    assert!(!file.kubeconfig && file.error.is_none());
    assert_eq!(
        file.certificates,
        vec![
            FoundCert {
                field: None,
                pem: a
            },
            FoundCert {
                field: None,
                pem: b
            },
        ]
    );
}

#[test]
fn reads_a_kubeconfig_and_the_files_it_names() {
    let (ca, _) = cert_and_key("ca");
    let (admin, admin_key) = cert_and_key("admin");
    let (kubelet, kubelet_key) = cert_and_key("kubelet");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "etc/kubernetes/admin.conf",
        &kubeconfig(&ca, &admin, &admin_key),
    );
    write(
        dir.path(),
        "etc/kubernetes/pki/kubelet-client-current.pem",
        &format!("{kubelet}{kubelet_key}"),
    );
    let found = certificates(dir.path(), &[PathBuf::from("/etc/kubernetes/admin.conf")]);
    let file = &found["/etc/kubernetes/admin.conf"];
    assert!(file.kubeconfig);
    assert_eq!(file.error, None);
    let fields: Vec<(Option<&str>, &str)> = file
        .certificates
        .iter()
        .map(|c| (c.field.as_deref(), c.pem.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                Some("clusters[kubernetes].certificate-authority-data"),
                ca.as_str()
            ),
            (
                Some("users[kubernetes-admin].client-certificate-data"),
                admin.as_str()
            ),
            (
                Some(
                    "users[kubelet].client-certificate=/etc/kubernetes/pki/kubelet-client-current.pem"
                ),
                kubelet.as_str()
            ),
        ]
    );
}

#[test]
fn a_kubeconfig_naming_a_missing_file_says_so_and_keeps_the_rest() {
    let (ca, key) = cert_and_key("ca");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "etc/kubernetes/kubelet.conf",
        &kubeconfig(&ca, &ca, &key),
    );
    let found = certificates(dir.path(), &[PathBuf::from("/etc/kubernetes/kubelet.conf")]);
    let file = &found["/etc/kubernetes/kubelet.conf"];
    assert_eq!(file.certificates.len(), 2);
    assert_eq!(
        file.error.as_deref(),
        Some(
            "users[kubelet].client-certificate=/etc/kubernetes/pki/kubelet-client-current.pem: the file cannot be read (no such file)"
        )
    );
}

#[test]
fn private_keys_never_appear_in_the_facts() {
    let (ca, ca_key) = cert_and_key("ca");
    let (leaf, leaf_key) = cert_and_key("leaf");
    let (user, user_key) = cert_and_key("user");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/kubernetes/pki/ca.crt", &ca);
    write(root, "etc/kubernetes/pki/ca.key", &ca_key);
    write(root, "etc/kubernetes/pki/ca-key.pem", &ca_key);
    write(
        root,
        "etc/kubernetes/pki/kubelet-client-current.pem",
        &format!("{leaf}{leaf_key}"),
    );
    write(
        root,
        "etc/kubernetes/admin.conf",
        &kubeconfig(&ca, &user, &user_key),
    );
    // A key inside a broken certificate block, and a kubeconfig whose data is a key.
    write(
        root,
        "etc/kubernetes/broken.pem",
        &format!("-----BEGIN CERTIFICATE-----\n{leaf_key}-----END CERTIFICATE-----\n"),
    );
    write(
        root,
        "etc/kubernetes/key.conf",
        &kubeconfig(&ca_key, &leaf_key, &user_key),
    );
    let args = FactsArgs {
        certificates: vec![
            PathBuf::from("/etc/kubernetes"),
            PathBuf::from("/etc/kubernetes/pki/ca.key"),
        ],
        ..FactsArgs::default()
    };
    let facts = gather(root, &args, &root.join("store"));
    assert!(
        facts.certificates.len() >= 5,
        "{:?}",
        facts.certificates.keys()
    );
    let json = serde_json::to_string(&facts).unwrap();
    assert!(
        body_lines(&leaf).iter().all(|l| json.contains(l)),
        "the certificates are there"
    );
    for key in [&ca_key, &leaf_key, &user_key] {
        for line in body_lines(key) {
            assert!(!json.contains(line), "a private key leaked into the facts");
        }
        assert!(!json.contains(&pem::encode_data(key)[..40]));
    }
    assert!(!json.contains("PRIVATE KEY"), "{json}");
    assert_eq!(
        facts.certificates["/etc/kubernetes/pki/ca.key"]
            .error
            .as_deref(),
        Some("holds no PEM certificate and is not a kubeconfig")
    );
}

#[test]
fn walks_directories_three_levels_down_for_certificate_files() {
    let (c, key) = cert_and_key("c");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "pki/a.crt",
        "pki/l2/b.pem",
        "pki/l2/l3/c.crt",
        "pki/l2/l3/l4/too-deep.crt",
        "pki/notes.txt",
        "pki/ca.key",
    ] {
        write(root, rel, &c);
    }
    write(root, "pki/key-only.pem", &key);
    write(root, "pki/plain.conf", "[section]\nkey = value\n");
    write(root, "pki/l2/empty.conf", "apiVersion: v1\nkind: Config\n");
    fs::create_dir_all(root.join("elsewhere")).unwrap();
    write(root, "elsewhere/target.pem", &c);
    symlink(
        root.join("elsewhere/target.pem"),
        root.join("pki/current.pem"),
    )
    .unwrap();
    symlink(root.join("elsewhere"), root.join("pki/linked-dir")).unwrap();
    let found = certificates(
        root,
        &[
            PathBuf::from("/pki"),
            PathBuf::from("/missing/dir"),
            PathBuf::from("/missing.crt"),
        ],
    );
    assert_eq!(
        found.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "/pki/a.crt",
            "/pki/current.pem",
            "/pki/l2/b.pem",
            "/pki/l2/empty.conf",
            "/pki/l2/l3/c.crt"
        ]
    );
    assert!(found["/pki/l2/empty.conf"].kubeconfig);
    assert!(found["/pki/l2/empty.conf"].certificates.is_empty());
    assert_eq!(found["/pki/current.pem"].certificates[0].pem, c);
}

#[test]
fn oversized_and_binary_files_are_reported_without_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big = "A".repeat(usize::try_from(MAX_FILE_BYTES).unwrap() + 1);
    write(root, "big.crt", &big);
    fs::write(root.join("bin.crt"), [0xff, 0xfe, 0x00]).unwrap();
    let found = certificates(
        root,
        &[PathBuf::from("/big.crt"), PathBuf::from("/bin.crt")],
    );
    assert_eq!(
        found["/big.crt"].error.as_deref(),
        Some("is 1048577 bytes, larger than a certificate file can be (1048576 bytes)")
    );
    assert_eq!(
        found["/bin.crt"].error.as_deref(),
        Some("is not text (not UTF-8)")
    );
}
