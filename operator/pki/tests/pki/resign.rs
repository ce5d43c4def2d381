//! Re-signing a host's certificate: same subject, SANs, usages and public key, new serial and
//! validity, under the same CA (renewal) or a new one (CA rotation).

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use kubegrid_pki::{
    Ca, Error, LeafSpec, Usage, fingerprint, issued_by, read_expiry,
    time::{self, OffsetDateTime},
};
use x509_parser::{certificate::X509Certificate, pem::parse_x509_pem};

use crate::common::{DAY, assert_verifies, openssl_available, verify};

const RSA_CA_CERT: &str = include_str!("fixtures/rsa-ca.crt");
const RSA_CA_KEY: &str = include_str!("fixtures/rsa-ca.key");
/// Issued by the RSA CA with openssl: RSA key, subject
/// `O=system:masters, O=kubeadm:cluster-admins, CN=kubernetes-admin` (UTF8Strings), SANs
/// kubernetes, kubernetes.default, 10.96.0.1, key usage digitalSignature+keyEncipherment,
/// extended key usage clientAuth+serverAuth.
const RSA_LEAF: &str = include_str!("fixtures/rsa-leaf.crt");

fn spec() -> LeafSpec {
    LeafSpec {
        common_name: "kube-apiserver".to_owned(),
        organizations: vec!["kubegrid".to_owned()],
        dns_names: vec!["kubernetes".to_owned(), "lab-1".to_owned()],
        ip_addresses: vec![
            IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        ],
        usage: Usage::ServerAndClient,
        validity: 30 * DAY,
    }
}

/// The parts re-signing must keep, as DER bytes, and the parts it must change.
struct Parts {
    subject: Vec<u8>,
    spki: Vec<u8>,
    sans: Vec<u8>,
    key_usage: Vec<u8>,
    ext_key_usage: Vec<u8>,
    subject_key_id: Vec<u8>,
    authority_key_id: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

fn parts(pem: &str) -> Parts {
    let (_, block) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert: X509Certificate<'_> = block.parse_x509().unwrap();
    let ext = |oid: &str| {
        cert.iter_extensions()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value.to_vec())
            .unwrap_or_default()
    };
    Parts {
        subject: cert.subject().as_raw().to_vec(),
        spki: cert.public_key().raw.to_vec(),
        sans: ext("2.5.29.17"),
        key_usage: ext("2.5.29.15"),
        ext_key_usage: ext("2.5.29.37"),
        subject_key_id: ext("2.5.29.14"),
        authority_key_id: ext("2.5.29.35"),
        issuer: cert.issuer().as_raw().to_vec(),
        serial: cert.raw_serial().to_vec(),
    }
}

fn assert_same_identity(old: &str, new: &str) {
    let (o, n) = (parts(old), parts(new));
    assert_eq!(o.subject, n.subject, "subject DER must be byte-identical");
    assert_eq!(o.spki, n.spki, "public key must be the same");
    assert_eq!(o.sans, n.sans, "SANs must be identical");
    assert_eq!(o.key_usage, n.key_usage, "key usage must be identical");
    assert_eq!(o.ext_key_usage, n.ext_key_usage, "EKU must be identical");
    assert_eq!(
        o.subject_key_id, n.subject_key_id,
        "the subject key identifier is kept"
    );
    assert_ne!(
        o.serial, n.serial,
        "a re-signed certificate gets a new serial"
    );
}

#[test]
fn renewal_keeps_identity_and_key_and_gets_new_serial_and_validity() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let leaf = ca.issue(&spec()).unwrap();
    let before = OffsetDateTime::now_utc();
    let renewed = ca.resign(&leaf.cert_pem, 400 * DAY).unwrap();
    assert_same_identity(&leaf.cert_pem, &renewed);
    assert_eq!(
        parts(&leaf.cert_pem).authority_key_id,
        parts(&renewed).authority_key_id
    );
    assert!(issued_by(&renewed, ca.cert_pem()).unwrap());
    let (old, new) = (
        read_expiry(&leaf.cert_pem).unwrap(),
        read_expiry(&renewed).unwrap(),
    );
    assert_eq!(new.dns_names, old.dns_names);
    assert_eq!(new.ip_addresses, old.ip_addresses);
    assert_eq!((new.server_auth, new.client_auth), (true, true));
    assert!(!new.is_ca && !new.self_signed);
    assert_eq!(new.subject, "O=kubegrid, CN=kube-apiserver");
    assert_eq!(new.issuer, "CN=kubernetes");
    assert_ne!(new.fingerprint, old.fingerprint);
    assert_eq!(new.fingerprint, fingerprint(&renewed).unwrap());
    let expected_end = before + time::Duration::days(400);
    assert!(
        (new.not_after - expected_end).abs() < time::Duration::minutes(1),
        "not_after {} is not 400 days from now",
        new.not_after
    );
    assert!(new.not_before <= before && new.not_before > before - time::Duration::minutes(6));
    if openssl_available("renewal_keeps_identity_and_key_and_gets_new_serial_and_validity") {
        // The host's private key still goes with the re-signed certificate.
        assert_verifies(ca.cert_pem(), &renewed, Some("sslserver"));
        let (cert_pub, key_pub) = crate::common::public_keys(&renewed, &leaf.key_pem);
        assert_eq!(cert_pub, key_pub);
    }
}

#[test]
fn renewal_is_capped_at_the_ca_expiry() {
    let ca = Ca::generate("etcd-ca", 10 * DAY).unwrap();
    let leaf = ca.issue(&spec()).unwrap();
    let renewed = ca.resign(&leaf.cert_pem, 365 * DAY).unwrap();
    assert_eq!(read_expiry(&renewed).unwrap().not_after, ca.not_after());
}

#[test]
fn rotation_resigns_an_old_leaf_under_a_new_ca() {
    let old_ca = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    // Same subject name, new key: what a CA rotation makes.
    let new_ca = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    let leaf = old_ca.issue(&spec()).unwrap();
    assert!(issued_by(&leaf.cert_pem, old_ca.cert_pem()).unwrap());
    assert!(
        !issued_by(&leaf.cert_pem, new_ca.cert_pem()).unwrap(),
        "a CA with the same subject name but another key did not sign it"
    );
    let moved = new_ca.resign(&leaf.cert_pem, 30 * DAY).unwrap();
    assert_same_identity(&leaf.cert_pem, &moved);
    assert!(issued_by(&moved, new_ca.cert_pem()).unwrap());
    assert!(!issued_by(&moved, old_ca.cert_pem()).unwrap());
    if openssl_available("rotation_resigns_an_old_leaf_under_a_new_ca") {
        assert_verifies(new_ca.cert_pem(), &moved, None);
        assert!(verify(old_ca.cert_pem(), &moved, None).is_err());
    }
}

#[test]
fn issued_by_is_false_for_another_issuer_name_and_for_a_self_signed_leaf() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let other = Ca::generate("front-proxy-ca", 3650 * DAY).unwrap();
    let leaf = ca.issue(&spec()).unwrap();
    assert!(!issued_by(&leaf.cert_pem, other.cert_pem()).unwrap());
    assert!(issued_by(ca.cert_pem(), ca.cert_pem()).unwrap());
    assert!(read_expiry(ca.cert_pem()).unwrap().self_signed);
    // An RSA CA cannot have made an ECDSA signature.
    assert!(!issued_by(&leaf.cert_pem, RSA_CA_CERT).unwrap());
    assert!(matches!(
        issued_by("not a certificate", ca.cert_pem()),
        Err(Error::ParseCertificate { .. })
    ));
}

#[test]
fn a_kubeadm_style_rsa_ca_verifies_and_resigns_an_rsa_leaf() {
    assert!(issued_by(RSA_LEAF, RSA_CA_CERT).unwrap());
    let ca = Ca::from_pem(RSA_CA_CERT, RSA_CA_KEY).unwrap();
    let renewed = ca.resign(RSA_LEAF, 90 * DAY).unwrap();
    assert_same_identity(RSA_LEAF, &renewed);
    assert_eq!(parts(RSA_LEAF).issuer, parts(&renewed).issuer);
    assert!(!parts(RSA_LEAF).subject_key_id.is_empty());
    assert_eq!(
        parts(RSA_LEAF).authority_key_id,
        parts(&renewed).authority_key_id,
        "the authority key identifier is the CA's, as openssl wrote it"
    );
    assert!(issued_by(&renewed, RSA_CA_CERT).unwrap());
    let info = read_expiry(&renewed).unwrap();
    assert_eq!(
        info.organizations,
        vec!["system:masters", "kubeadm:cluster-admins"]
    );
    assert_eq!(
        info.subject,
        "O=system:masters, O=kubeadm:cluster-admins, CN=kubernetes-admin"
    );
    // An ECDSA leaf moves under the RSA CA too, and the other way round.
    let ec_ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let ec_leaf = ec_ca.issue(&spec()).unwrap();
    let moved = ca.resign(&ec_leaf.cert_pem, 30 * DAY).unwrap();
    assert_same_identity(&ec_leaf.cert_pem, &moved);
    assert!(issued_by(&moved, RSA_CA_CERT).unwrap());
    let back = ec_ca.resign(RSA_LEAF, 30 * DAY).unwrap();
    assert_same_identity(RSA_LEAF, &back);
    assert!(issued_by(&back, ec_ca.cert_pem()).unwrap());
    if openssl_available("a_kubeadm_style_rsa_ca_verifies_and_resigns_an_rsa_leaf") {
        assert_verifies(RSA_CA_CERT, &renewed, Some("sslclient"));
        assert_verifies(RSA_CA_CERT, &moved, None);
    }
}

#[test]
fn a_ca_certificate_is_not_resigned() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let other = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    let err = ca.resign(other.cert_pem(), 30 * DAY).unwrap_err();
    assert!(matches!(err, Error::ResignCertificate { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot re-sign certificate \"CN=etcd-ca\": it is a CA certificate; CAs are generated anew, only leaves are re-signed"
    );
    assert!(ca.resign("garbage", Duration::from_secs(60)).is_err());
}
