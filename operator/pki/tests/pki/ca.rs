//! CA generation, loading back from PEM, and the checks on what is loaded.

use std::net::{IpAddr, Ipv4Addr};

use kubegrid_pki::{
    Ca, Error, LeafSpec, StoredCert, Usage, read_expiry,
    time::{self, OffsetDateTime},
};

use crate::common::{
    DAY, Scratch, assert_verifies, openssl_available, openssl_ok, openssl_self_signed, public_keys,
    verify,
};

fn server_spec(name: &str) -> LeafSpec {
    LeafSpec {
        common_name: name.to_owned(),
        organizations: Vec::new(),
        dns_names: vec![name.to_owned()],
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
        usage: Usage::Server,
        validity: 30 * DAY,
    }
}

#[test]
fn generated_ca_is_a_self_signed_ca_with_the_asked_validity() {
    let before = OffsetDateTime::now_utc();
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let info = read_expiry(ca.cert_pem()).unwrap();
    assert_eq!(info.common_name, "kubernetes");
    assert!(info.is_ca);
    assert_eq!(ca.common_name(), "kubernetes");
    assert_eq!(ca.not_after(), info.not_after);
    let expected_end = before + time_span(3650 * DAY);
    assert!(
        (info.not_after - expected_end).abs() < time::Duration::minutes(1),
        "not_after {} is not ten years from now ({expected_end})",
        info.not_after
    );
    // Backdated so hosts with slightly slow clocks accept it at once.
    assert!(info.not_before < before - time::Duration::minutes(4));
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    if openssl_available("generated_ca_is_a_self_signed_ca_with_the_asked_validity") {
        assert_verifies(ca.cert_pem(), ca.cert_pem(), None);
        let (cert_pub, key_pub) = public_keys(ca.cert_pem(), ca.key_pem());
        assert_eq!(cert_pub, key_pub, "CA key does not match CA certificate");
        let scratch = Scratch::new();
        scratch.file("ca.pem", ca.cert_pem());
        let text = openssl_ok(&scratch, &["x509", "-in", "ca.pem", "-noout", "-text"]);
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign"), "{text}");
        assert!(text.contains("prime256v1"), "{text}");
    }
}

#[test]
fn ca_reloaded_from_pem_signs_leaves_that_verify_against_the_original() {
    let original = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    let reloaded = Ca::from_pem(original.cert_pem(), original.key_pem()).unwrap();
    assert_eq!(reloaded.common_name(), "etcd-ca");
    assert_eq!(reloaded.cert_pem(), original.cert_pem());
    assert_eq!(reloaded.key_pem(), original.key_pem());
    assert_eq!(reloaded.not_after(), original.not_after());
    assert_eq!(reloaded.cert_hash().unwrap(), original.cert_hash().unwrap());

    let leaf = reloaded.issue(&server_spec("etcd1")).unwrap();
    if openssl_available("ca_reloaded_from_pem_signs_leaves_that_verify_against_the_original") {
        assert_verifies(original.cert_pem(), &leaf.cert_pem, Some("sslserver"));
        // A leaf from another CA must not verify: the check above is not vacuous.
        let stranger = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
        let foreign = stranger.issue(&server_spec("etcd1")).unwrap();
        assert!(verify(original.cert_pem(), &foreign.cert_pem, None).is_err());
    }
}

#[test]
fn stored_ca_survives_serialization_and_loads_back() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let stored = ca.to_stored("kubernetes-ca");
    assert_eq!(stored.name, "kubernetes-ca");
    let yaml = serde_yaml::to_string(&stored).unwrap();
    assert!(
        yaml.contains("certPem:") && yaml.contains("keyPem:"),
        "{yaml}"
    );
    let back: StoredCert = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, stored);
    let loaded = Ca::from_stored(&back).unwrap();
    let leaf = loaded.issue(&server_spec("cp1")).unwrap();
    if openssl_available("stored_ca_survives_serialization_and_loads_back") {
        assert_verifies(ca.cert_pem(), &leaf.cert_pem, None);
    }
}

#[test]
fn ca_made_by_openssl_loads_and_signs_verifiable_leaves() {
    if !openssl_available("ca_made_by_openssl_loads_and_signs_verifiable_leaves") {
        return;
    }
    let (cert, key) = openssl_self_signed("/C=DE/O=Example Org/CN=outside-ca", &[]);
    let ca = Ca::from_pem(&cert, &key).unwrap();
    assert_eq!(ca.common_name(), "outside-ca");
    let leaf = ca.issue(&server_spec("node1")).unwrap();
    assert_verifies(&cert, &leaf.cert_pem, Some("sslserver"));
}

#[test]
fn loading_refuses_a_key_of_another_ca() {
    let one = Ca::generate("kubernetes", DAY).unwrap();
    let other = Ca::generate("kubernetes", DAY).unwrap();
    let err = Ca::from_pem(one.cert_pem(), other.key_pem()).unwrap_err();
    assert!(matches!(err, Error::CaKeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn loading_refuses_a_leaf_certificate_as_ca() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let leaf = ca.issue(&server_spec("node1")).unwrap();
    let stored = leaf.to_stored("node1-server");
    let err = Ca::from_stored(&stored).unwrap_err();
    assert!(matches!(err, Error::NotACa { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "certificate node1-server (subject CN \"node1\") is not a CA: its basic constraints lack CA:TRUE"
    );
}

#[test]
fn loading_reports_unparsable_pem_without_quoting_the_key() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let err = Ca::from_pem("not a certificate", ca.key_pem()).unwrap_err();
    assert!(matches!(err, Error::ParseCertificate { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("failed to parse CA certificate"),
        "{err}"
    );

    let bad_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = Ca::from_pem(ca.cert_pem(), bad_key).unwrap_err();
    assert!(matches!(err, Error::LoadKey { .. }), "{err:?}");
    assert!(!format!("{err:?}{err}").contains("AAAA"), "{err:?}");
}

#[test]
fn debug_output_elides_private_keys() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let leaf = ca.issue(&server_spec("node1")).unwrap();
    for debug in [
        format!("{ca:?}"),
        format!("{leaf:?}"),
        format!("{:?}", leaf.to_stored("x")),
    ] {
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("elided"), "{debug}");
    }
}

fn time_span(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap()
}
