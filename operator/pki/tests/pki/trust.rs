//! Trust bundles, PEM splitting, fingerprints and the ServiceAccount signing key.

use kubegrid_pki::{Ca, fingerprint, generate_service_account_key, split_pem, trust_bundle};

use crate::common::DAY;

#[test]
fn a_trust_bundle_splits_back_into_its_certificates() {
    let old = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    let new = Ca::generate("etcd-ca", 3650 * DAY).unwrap();
    let both = trust_bundle(old.cert_pem(), Some(new.cert_pem()));
    assert_eq!(both.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(both.ends_with("-----END CERTIFICATE-----\n"));
    assert!(
        !both.contains("\n\n"),
        "each PEM ends with exactly one newline"
    );
    assert!(both.starts_with(old.cert_pem()), "the first CA comes first");
    assert_eq!(split_pem(&both), vec![old.cert_pem(), new.cert_pem()]);
    // Extra trailing whitespace is normalised to one newline.
    let padded = format!("{}\n\n", new.cert_pem());
    assert_eq!(trust_bundle(&padded, None), new.cert_pem());
    assert_eq!(
        split_pem(&trust_bundle(&padded, None)),
        vec![new.cert_pem()]
    );
}

#[test]
fn split_pem_keeps_only_certificate_blocks() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let combined = format!("{}{}", ca.cert_pem(), ca.key_pem());
    let blocks = split_pem(&combined);
    assert_eq!(blocks, vec![ca.cert_pem()]);
    assert!(split_pem(ca.key_pem()).is_empty());
    assert!(split_pem("").is_empty());
    assert!(split_pem("-----BEGIN CERTIFICATE-----\ntruncated").is_empty());
}

#[test]
fn fingerprints_tell_certificates_apart() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let other = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let a = fingerprint(ca.cert_pem()).unwrap();
    assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
    assert_eq!(a, fingerprint(ca.cert_pem()).unwrap());
    assert_ne!(a, fingerprint(other.cert_pem()).unwrap());
    assert!(fingerprint("nope").is_err());
}

#[test]
fn service_account_keys_are_p256_pairs() {
    let (key, public) = generate_service_account_key().unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "SPKI");
    let (key2, public2) = generate_service_account_key().unwrap();
    assert_ne!(
        (key.as_str(), public.as_str()),
        (key2.as_str(), public2.as_str())
    );
    // The public key belongs to the private key, as openssl derives it.
    if crate::common::openssl_available("service_account_keys_are_p256_pairs") {
        let scratch = crate::common::Scratch::new();
        scratch.file("sa.key", &key);
        let derived = crate::common::openssl_ok(&scratch, &["pkey", "-in", "sa.key", "-pubout"]);
        assert_eq!(derived, public);
        let text =
            crate::common::openssl_ok(&scratch, &["pkey", "-in", "sa.key", "-noout", "-text"]);
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "{text}"
        );
    }
}
