//! The external etcd set: CA, member server and peer certificates, and the two clients.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kubegrid_pki::{
    EtcdMember, apiserver_etcd_client_spec, etcd_healthcheck_client_spec, generate_etcd_ca,
    issue_etcd_member, matches_sans, read_expiry,
};

use crate::common::{DAY, assert_verifies, openssl_available};

fn member() -> EtcdMember {
    EtcdMember {
        name: "etcd1".to_owned(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 20, 0, 11))],
    }
}

#[test]
fn member_certs_have_kubeadm_subject_sans_and_usages() {
    let ca = generate_etcd_ca(3650 * DAY).unwrap();
    assert_eq!(read_expiry(ca.cert_pem()).unwrap().common_name, "etcd-ca");
    let certs = issue_etcd_member(&ca, &member(), 365 * DAY).unwrap();
    for (role, cert) in [("server", &certs.server), ("peer", &certs.peer)] {
        let info = read_expiry(&cert.cert_pem).unwrap();
        assert_eq!(info.common_name, "etcd1", "{role}");
        assert_eq!(info.dns_names, ["etcd1", "localhost"], "{role}");
        assert_eq!(
            info.ip_addresses,
            [
                IpAddr::V4(Ipv4Addr::new(10, 20, 0, 11)),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            "{role}"
        );
        assert!(info.server_auth && info.client_auth, "{role}");
        if openssl_available("member_certs_have_kubeadm_subject_sans_and_usages") {
            assert_verifies(ca.cert_pem(), &cert.cert_pem, Some("sslserver"));
            assert_verifies(ca.cert_pem(), &cert.cert_pem, Some("sslclient"));
        }
    }
    assert_ne!(certs.server.key_pem, certs.peer.key_pem);
}

#[test]
fn client_certs_have_kubeadm_names_and_client_auth_only() {
    let ca = generate_etcd_ca(3650 * DAY).unwrap();
    for (spec, cn) in [
        (
            etcd_healthcheck_client_spec(365 * DAY),
            "kube-etcd-healthcheck-client",
        ),
        (
            apiserver_etcd_client_spec(365 * DAY),
            "kube-apiserver-etcd-client",
        ),
    ] {
        let cert = ca.issue(&spec).unwrap();
        let info = read_expiry(&cert.cert_pem).unwrap();
        assert_eq!(info.common_name, cn);
        assert!(info.client_auth && !info.server_auth, "{cn}");
        assert!(
            info.dns_names.is_empty() && info.ip_addresses.is_empty(),
            "{cn}"
        );
        if openssl_available("client_certs_have_kubeadm_names_and_client_auth_only") {
            assert_verifies(ca.cert_pem(), &cert.cert_pem, Some("sslclient"));
        }
    }
}

#[test]
fn member_sans_match_until_the_address_changes() {
    let ca = generate_etcd_ca(3650 * DAY).unwrap();
    let m = member();
    let certs = issue_etcd_member(&ca, &m, 365 * DAY).unwrap();
    assert!(matches_sans(&certs.server.cert_pem, &m.dns_sans(), &m.ip_sans()).unwrap());

    let mut moved = m.clone();
    moved.addresses = vec![IpAddr::V4(Ipv4Addr::new(10, 20, 0, 99))];
    assert!(!matches_sans(&certs.server.cert_pem, &moved.dns_sans(), &moved.ip_sans()).unwrap());
}

#[test]
fn loopback_sans_are_not_repeated() {
    let m = EtcdMember {
        name: "localhost".to_owned(),
        addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    };
    assert_eq!(m.dns_sans(), ["localhost"]);
    assert_eq!(
        m.ip_sans(),
        [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
}
