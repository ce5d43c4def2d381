//! Leaf issuing: subject, SANs, usages, validity, serials and keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kubegrid_pki::{
    Ca, Error, LeafSpec, Usage, admin_client_spec, read_expiry,
    time::{self, OffsetDateTime},
};

use crate::common::{
    DAY, Scratch, assert_verifies, openssl_available, openssl_ok, public_keys, verify,
};

fn spec(usage: Usage) -> LeafSpec {
    LeafSpec {
        common_name: "node-a".to_owned(),
        organizations: Vec::new(),
        dns_names: vec!["node-a".to_owned(), "node-a.lab".to_owned()],
        ip_addresses: vec![
            IpAddr::V4(Ipv4Addr::new(192, 168, 10, 11)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11)),
        ],
        usage,
        validity: 365 * DAY,
    }
}

#[test]
fn leaf_carries_the_asked_subject_sans_usages_and_validity() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let before = OffsetDateTime::now_utc();
    let leaf = ca.issue(&spec(Usage::Server)).unwrap();
    let info = read_expiry(&leaf.cert_pem).unwrap();
    assert_eq!(info.common_name, "node-a");
    assert!(info.organizations.is_empty());
    assert_eq!(info.dns_names, ["node-a", "node-a.lab"]);
    assert_eq!(info.ip_addresses, spec(Usage::Server).ip_addresses);
    assert!(!info.is_ca);
    assert!(info.server_auth && !info.client_auth);
    let expected_end = before + time::Duration::days(365);
    assert!(
        (info.not_after - expected_end).abs() < time::Duration::minutes(1),
        "not_after {} is not a year from now",
        info.not_after
    );
    assert!(info.not_before <= before);

    if openssl_available("leaf_carries_the_asked_subject_sans_usages_and_validity") {
        let scratch = Scratch::new();
        scratch.file("leaf.pem", &leaf.cert_pem);
        let text = openssl_ok(&scratch, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert!(
            text.contains(
                "DNS:node-a, DNS:node-a.lab, IP Address:192.168.10.11, IP Address:FD00:0:0:0:0:0:0:11"
            ),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(!text.contains("TLS Web Client Authentication"), "{text}");
        assert_verifies(ca.cert_pem(), &leaf.cert_pem, Some("sslserver"));
        assert!(verify(ca.cert_pem(), &leaf.cert_pem, Some("sslclient")).is_err());
    }
}

#[test]
fn usages_map_to_extended_key_usages() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    for (usage, server, client) in [
        (Usage::Server, true, false),
        (Usage::Client, false, true),
        (Usage::ServerAndClient, true, true),
    ] {
        let leaf = ca.issue(&spec(usage)).unwrap();
        let info = read_expiry(&leaf.cert_pem).unwrap();
        assert_eq!(
            (info.server_auth, info.client_auth),
            (server, client),
            "{usage:?}"
        );
        if openssl_available("usages_map_to_extended_key_usages") {
            assert_eq!(
                verify(ca.cert_pem(), &leaf.cert_pem, Some("sslserver")).is_ok(),
                server,
                "{usage:?} as server"
            );
            assert_eq!(
                verify(ca.cert_pem(), &leaf.cert_pem, Some("sslclient")).is_ok(),
                client,
                "{usage:?} as client"
            );
        }
    }
}

#[test]
fn admin_cert_has_kubeadm_subject() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let admin = ca.issue(&admin_client_spec(365 * DAY)).unwrap();
    let info = read_expiry(&admin.cert_pem).unwrap();
    assert_eq!(info.common_name, "kubernetes-admin");
    assert_eq!(info.organizations, ["kubeadm:cluster-admins"]);
    assert!(info.client_auth && !info.server_auth);
    assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());
    if openssl_available("admin_cert_has_kubeadm_subject") {
        let scratch = Scratch::new();
        scratch.file("admin.pem", &admin.cert_pem);
        let subject = openssl_ok(
            &scratch,
            &["x509", "-in", "admin.pem", "-noout", "-subject"],
        );
        assert_eq!(
            subject.trim(),
            "subject=O = kubeadm:cluster-admins, CN = kubernetes-admin"
        );
        assert_verifies(ca.cert_pem(), &admin.cert_pem, Some("sslclient"));
    }
}

#[test]
fn two_organizations_are_kept_and_a_third_is_refused() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let mut two = spec(Usage::Client);
    two.organizations = vec!["system:masters".to_owned(), "team-a".to_owned()];
    let leaf = ca.issue(&two).unwrap();
    assert_eq!(
        read_expiry(&leaf.cert_pem).unwrap().organizations,
        two.organizations
    );

    let mut three = two.clone();
    three.organizations.push("team-b".to_owned());
    let err = ca.issue(&three).unwrap_err();
    assert!(matches!(err, Error::InvalidSubject { .. }), "{err:?}");
    assert!(err.to_string().contains("at most 2"), "{err}");
}

#[test]
fn leaf_validity_is_capped_at_the_ca_expiry() {
    let ca = Ca::generate("short-lived-ca", 2 * DAY).unwrap();
    let leaf = ca.issue(&spec(Usage::Server)).unwrap();
    assert_eq!(
        read_expiry(&leaf.cert_pem).unwrap().not_after,
        ca.not_after()
    );
}

#[test]
fn serials_are_random_and_keys_fresh_pkcs8_p256() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let a = ca.issue(&spec(Usage::Server)).unwrap();
    let b = ca.issue(&spec(Usage::Server)).unwrap();
    let (sa, sb) = (
        read_expiry(&a.cert_pem).unwrap().serial_hex,
        read_expiry(&b.cert_pem).unwrap().serial_hex,
    );
    assert_ne!(sa, sb);
    assert_eq!(sa.len(), 32, "serial {sa} is not 16 octets");
    assert_ne!(a.key_pem, b.key_pem);
    assert!(a.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    if openssl_available("serials_are_random_and_keys_fresh_pkcs8_p256") {
        let (cert_pub, key_pub) = public_keys(&a.cert_pem, &a.key_pem);
        assert_eq!(cert_pub, key_pub, "leaf key does not match its certificate");
        let scratch = Scratch::new();
        scratch.file("key.pem", &a.key_pem);
        let text = openssl_ok(&scratch, &["pkey", "-in", "key.pem", "-noout", "-text"]);
        assert!(text.contains("prime256v1"), "{text}");
    }
}

#[test]
fn bad_sans_and_validity_are_refused() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let mut bad = spec(Usage::Server);
    bad.dns_names = vec!["nöde".to_owned()];
    let err = ca.issue(&bad).unwrap_err();
    assert!(matches!(err, Error::InvalidSan { .. }), "{err:?}");
    assert!(err.to_string().contains("\"nöde\""), "{err}");

    let mut zero = spec(Usage::Server);
    zero.validity = std::time::Duration::ZERO;
    assert!(matches!(
        ca.issue(&zero).unwrap_err(),
        Error::ValidityOutOfRange { .. }
    ));
    assert!(matches!(
        Ca::generate("forever", std::time::Duration::from_secs(u64::MAX)).unwrap_err(),
        Error::ValidityOutOfRange { .. }
    ));
}

#[test]
fn duplicate_sans_are_written_once() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let mut dup = spec(Usage::Server);
    dup.dns_names.push("node-a".to_owned());
    dup.ip_addresses
        .push(IpAddr::V4(Ipv4Addr::new(192, 168, 10, 11)));
    let info = read_expiry(&ca.issue(&dup).unwrap().cert_pem).unwrap();
    assert_eq!(info.dns_names, ["node-a", "node-a.lab"]);
    assert_eq!(info.ip_addresses.len(), 2);
}
