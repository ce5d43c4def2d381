//! Reading certificates back: the CA hash, expiry and renewal, SAN matching.

use std::net::{IpAddr, Ipv4Addr};

use kubegrid_pki::{
    Ca, Error, LeafSpec, Usage, ca_cert_hash, matches_sans, needs_renewal, read_expiry,
    time::{self, OffsetDateTime},
};

use crate::common::{DAY, Scratch, openssl_available, openssl_ok, openssl_self_signed};

fn leaf(ca: &Ca, validity_days: u32) -> String {
    ca.issue(&LeafSpec {
        common_name: "node-a".to_owned(),
        organizations: Vec::new(),
        dns_names: vec!["node-a".to_owned(), "Node-A.lab".to_owned()],
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
        usage: Usage::Server,
        validity: validity_days * DAY,
    })
    .unwrap()
    .cert_pem
}

#[test]
fn ca_cert_hash_equals_openssls_spki_digest() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let hash = ca_cert_hash(ca.cert_pem()).unwrap();
    let hex = hash.strip_prefix("sha256:").expect("sha256: prefix");
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(ca.cert_hash().unwrap(), hash);
    if !openssl_available("ca_cert_hash_equals_openssls_spki_digest") {
        return;
    }
    // kubeadm's documented recipe for the discovery hash.
    let scratch = Scratch::new();
    scratch.file("ca.crt", ca.cert_pem());
    openssl_ok(
        &scratch,
        &[
            "x509", "-in", "ca.crt", "-pubkey", "-noout", "-out", "pub.pem",
        ],
    );
    openssl_ok(
        &scratch,
        &[
            "pkey", "-pubin", "-in", "pub.pem", "-outform", "der", "-out", "pub.der",
        ],
    );
    let digest = openssl_ok(&scratch, &["dgst", "-sha256", "-r", "pub.der"]);
    let expected = digest.split_whitespace().next().unwrap();
    assert_eq!(hash, format!("sha256:{expected}"));
}

#[test]
fn read_expiry_reads_a_certificate_made_by_openssl() {
    if !openssl_available("read_expiry_reads_a_certificate_made_by_openssl") {
        return;
    }
    let (pem, _) = openssl_self_signed(
        "/O=ops/CN=outside",
        &[
            "-addext",
            "subjectAltName=DNS:a.example,IP:10.1.2.3",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ],
    );
    let scratch = Scratch::new();
    scratch.file("c.pem", &pem);
    let info = read_expiry(&pem).unwrap();
    assert_eq!(info.common_name, "outside");
    assert_eq!(info.organizations, ["ops"]);
    assert_eq!(info.dns_names, ["a.example"]);
    assert_eq!(info.ip_addresses, [IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))]);
    assert!(info.client_auth && !info.server_auth);
    let end = openssl_ok(&scratch, &["x509", "-in", "c.pem", "-noout", "-enddate"]);
    let end = time::PrimitiveDateTime::parse(
        end.trim()
            .trim_start_matches("notAfter=")
            .trim_end_matches(" GMT"),
        &time::format_description::parse_borrowed::<1>(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]",
        )
        .unwrap(),
    )
    .unwrap()
    .assume_utc();
    assert_eq!(info.not_after, end);
}

#[test]
fn renewal_is_due_within_the_window_before_expiry() {
    let ca = Ca::generate("kubernetes", 3650 * DAY).unwrap();
    let pem = leaf(&ca, 30);
    let now = OffsetDateTime::now_utc();
    let not_after = read_expiry(&pem).unwrap().not_after;
    assert!(!needs_renewal(&pem, 7 * DAY, now).unwrap());
    assert!(needs_renewal(&pem, 31 * DAY, now).unwrap());
    assert!(needs_renewal(&pem, 7 * DAY, not_after - time::Duration::days(1)).unwrap());
    assert!(!needs_renewal(&pem, 7 * DAY, not_after - time::Duration::days(8)).unwrap());
    assert!(
        needs_renewal(
            &pem,
            std::time::Duration::ZERO,
            not_after + time::Duration::seconds(1)
        )
        .unwrap()
    );
    assert!(needs_renewal(&pem, std::time::Duration::from_secs(u64::MAX), now).unwrap());
}

#[test]
fn sans_match_ignoring_order_duplicates_and_case() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let pem = leaf(&ca, 1);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let dns = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    assert!(matches_sans(&pem, &dns(&["node-a.lab", "node-a"]), &[ip]).unwrap());
    assert!(matches_sans(&pem, &dns(&["NODE-A", "node-a.lab", "node-a"]), &[ip, ip]).unwrap());
    assert!(!matches_sans(&pem, &dns(&["node-a"]), &[ip]).unwrap());
    assert!(!matches_sans(&pem, &dns(&["node-a", "node-a.lab", "x"]), &[ip]).unwrap());
    assert!(!matches_sans(&pem, &dns(&["node-a", "node-a.lab"]), &[]).unwrap());
    let moved = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    assert!(!matches_sans(&pem, &dns(&["node-a", "node-a.lab"]), &[moved]).unwrap());
}

#[test]
fn inspecting_something_else_says_what_was_seen() {
    let ca = Ca::generate("kubernetes", DAY).unwrap();
    let err = read_expiry(ca.key_pem()).unwrap_err();
    assert!(matches!(err, Error::ParseCertificate { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "failed to parse certificate as a PEM X.509 certificate: the first PEM block is labelled \"PRIVATE KEY\", expected \"CERTIFICATE\""
    );
    let err = ca_cert_hash("").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to parse CA certificate"),
        "{err}"
    );
}
