//! File layout and modes.

use std::net::{IpAddr, Ipv4Addr};

use kubegrid_pki::{
    EtcdMember, ExternalEtcdClient, PkiFile, apiserver_etcd_client_spec, control_plane_ca_files,
    etcd_healthcheck_client_spec, etcd_member_files, generate_etcd_ca, generate_kubernetes_ca,
    issue_etcd_member,
    layout::{self, kubeadm},
};

use crate::common::DAY;

fn paths_and_modes(files: &[PkiFile]) -> Vec<(&str, u32)> {
    files.iter().map(|f| (f.path.as_str(), f.mode)).collect()
}

#[test]
fn etcd_member_files_put_keys_at_0600() {
    let ca = generate_etcd_ca(DAY).unwrap();
    let member = EtcdMember {
        name: "etcd1".to_owned(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11))],
    };
    let certs = issue_etcd_member(&ca, &member, DAY).unwrap();
    let health = ca.issue(&etcd_healthcheck_client_spec(DAY)).unwrap();
    let files = etcd_member_files(ca.cert_pem(), &certs, &health);
    assert_eq!(
        paths_and_modes(&files),
        [
            ("/etc/etcd/pki/ca.crt", 0o644),
            ("/etc/etcd/pki/server.crt", 0o644),
            ("/etc/etcd/pki/server.key", 0o600),
            ("/etc/etcd/pki/peer.crt", 0o644),
            ("/etc/etcd/pki/peer.key", 0o600),
            ("/etc/etcd/pki/healthcheck-client.crt", 0o644),
            ("/etc/etcd/pki/healthcheck-client.key", 0o600),
        ]
    );
    assert_eq!(files[0].content, ca.cert_pem());
    assert_eq!(files[2].content, certs.server.key_pem);
    assert_eq!(files[4].content, certs.peer.key_pem);
    assert_eq!(files[6].content, health.key_pem);
    // The etcd CA key never goes to a member.
    assert!(files.iter().all(|f| f.content != ca.key_pem()));
}

#[test]
fn control_plane_files_follow_kubeadm_layout() {
    let k8s = generate_kubernetes_ca(DAY).unwrap();
    let stacked = control_plane_ca_files(&k8s, None);
    assert_eq!(
        paths_and_modes(&stacked),
        [
            ("/etc/kubernetes/pki/ca.crt", 0o644),
            ("/etc/kubernetes/pki/ca.key", 0o600),
        ]
    );
    assert_eq!(stacked[1].content, k8s.key_pem());

    let etcd_ca = generate_etcd_ca(DAY).unwrap();
    let client = etcd_ca.issue(&apiserver_etcd_client_spec(DAY)).unwrap();
    let external = control_plane_ca_files(
        &k8s,
        Some(ExternalEtcdClient {
            etcd_ca_cert_pem: etcd_ca.cert_pem(),
            apiserver_etcd_client: &client,
        }),
    );
    assert_eq!(
        paths_and_modes(&external),
        [
            ("/etc/kubernetes/pki/ca.crt", 0o644),
            ("/etc/kubernetes/pki/ca.key", 0o600),
            ("/etc/kubernetes/pki/etcd/ca.crt", 0o644),
            ("/etc/kubernetes/pki/apiserver-etcd-client.crt", 0o644),
            ("/etc/kubernetes/pki/apiserver-etcd-client.key", 0o600),
        ]
    );
    assert_eq!(external[2].content, etcd_ca.cert_pem());
    assert_eq!(external[4].content, client.key_pem);
}

#[test]
fn every_private_file_in_the_layout_is_0600() {
    for path in [
        kubeadm::CA_KEY,
        kubeadm::APISERVER_KEY,
        kubeadm::FRONT_PROXY_CA_KEY,
        kubeadm::SERVICE_ACCOUNT_KEY,
        kubeadm::ETCD_CA_KEY,
        kubeadm::ETCD_PEER_KEY,
        kubeadm::ADMIN_CONF,
        kubeadm::SUPER_ADMIN_CONF,
        kubeadm::KUBELET_CONF,
        layout::external_etcd::SERVER_KEY,
        layout::external_etcd::HEALTHCHECK_CLIENT_KEY,
    ] {
        assert_eq!(layout::mode(path), 0o600, "{path}");
    }
    for path in [
        kubeadm::CA_CERT,
        kubeadm::SERVICE_ACCOUNT_PUB,
        kubeadm::ETCD_CA_CERT,
        layout::external_etcd::CA_CERT,
    ] {
        assert_eq!(layout::mode(path), 0o644, "{path}");
    }
}

#[test]
fn pki_file_debug_hides_content() {
    let file = PkiFile::new(kubeadm::CA_KEY, "-----BEGIN PRIVATE KEY-----\nsecret\n");
    let debug = format!("{file:?}");
    assert_eq!(
        debug,
        "PkiFile { path: \"/etc/kubernetes/pki/ca.key\", content: [35 bytes], mode: 600 }"
    );
}
