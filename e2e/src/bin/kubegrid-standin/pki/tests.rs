use super::*;

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn issued_leaves_carry_their_subject_sans_and_usages_under_the_ca() {
    let ca = Signer::generate("kubernetes", 10 * DAY).unwrap();
    let spec = LeafSpec {
        cn: "kube-apiserver".into(),
        dns: vec!["kubernetes".into(), "cp-1".into(), "cp-1".into()],
        ips: vec![IpAddr::from([10, 96, 0, 1])],
        server: true,
        ..LeafSpec::default()
    };
    let (cert, key) = ca.issue(&spec, DAY).unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let info = CertInfo::parse(&cert).unwrap();
    assert_eq!(info.cn, "kube-apiserver");
    assert_eq!(info.dns, ["kubernetes", "cp-1"]);
    assert_eq!(info.ips, [IpAddr::from([10, 96, 0, 1])]);
    assert!(info.server_auth && !info.client_auth && !info.is_ca);
    let left = info.not_after - OffsetDateTime::now_utc();
    assert!(
        left <= DAY && left > DAY - Duration::from_secs(60),
        "{left}"
    );
    assert!(ca.signed(&cert));
    assert!(issued_by(&cert, &ca.cert_pem));
    let other = Signer::generate("kubernetes", DAY).unwrap();
    assert!(!other.signed(&cert), "same name, other key");

    let (client, _) = ca
        .issue(&LeafSpec::client("system:node:w-1", &["system:nodes"]), DAY)
        .unwrap();
    let info = CertInfo::parse(&client).unwrap();
    assert_eq!(
        (info.cn.as_str(), info.orgs.as_slice()),
        ("system:node:w-1", &["system:nodes".to_string()][..])
    );
    assert!(info.client_auth && !info.server_auth);
}

#[test]
fn leaves_never_outlive_their_ca() {
    let ca = Signer::generate("short", DAY).unwrap();
    let (cert, _) = ca.issue(&LeafSpec::client("x", &[]), 365 * DAY).unwrap();
    let (leaf, root) = (
        CertInfo::parse(&cert).unwrap(),
        CertInfo::parse(&ca.cert_pem).unwrap(),
    );
    assert_eq!(leaf.not_after, root.not_after);
}

#[test]
fn resigning_keeps_subject_sans_and_key_with_a_new_serial_and_window() {
    let old_ca = Signer::generate("etcd-ca", DAY).unwrap();
    let spec = LeafSpec {
        cn: "etcd-1".into(),
        orgs: vec!["o".into()],
        dns: vec!["etcd-1".into()],
        ips: vec![IpAddr::from([10, 0, 0, 2])],
        server: true,
        client: true,
    };
    let (cert, key) = old_ca.issue(&spec, DAY).unwrap();
    let new_ca = Signer::generate("etcd-ca", 10 * DAY).unwrap();
    let renewed = new_ca.resign(&cert, &key, 5 * DAY).unwrap();
    let (before, after) = (
        CertInfo::parse(&cert).unwrap(),
        CertInfo::parse(&renewed).unwrap(),
    );
    assert_eq!(
        (&after.cn, &after.orgs, &after.dns, &after.ips),
        (&before.cn, &before.orgs, &before.dns, &before.ips)
    );
    assert!(after.server_auth && after.client_auth);
    assert_ne!(serial(&renewed), serial(&cert));
    assert!(after.not_after > before.not_after + 3 * DAY);
    assert!(new_ca.signed(&renewed) && !old_ca.signed(&renewed));
    let public_key = |pem: &str| {
        let der = certificates(pem).into_iter().next().unwrap();
        let p = Pem::iter_from_buffer(der.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        p.parse_x509().unwrap().public_key().raw.to_vec()
    };
    assert_eq!(public_key(&renewed), public_key(&cert));
}

#[test]
fn a_bundle_signs_with_its_first_certificate() {
    let old = Signer::generate("kubernetes", DAY).unwrap();
    let new = Signer::generate("kubernetes", DAY).unwrap();
    let bundle = format!("{}{}", old.cert_pem, new.cert_pem);
    assert_eq!(certificates(&bundle).len(), 2);
    let loaded = Signer::from_pem("ca", &bundle, &old.key_pem).unwrap();
    let (cert, _) = loaded.issue(&LeafSpec::client("x", &[]), DAY).unwrap();
    assert!(old.signed(&cert));
    let err = Signer::from_pem("ca", &bundle, &new.key_pem)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("does not belong to the first certificate"),
        "{err}"
    );
}

fn serial(pem: &str) -> Vec<u8> {
    let p = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    p.parse_x509().unwrap().raw_serial().to_vec()
}

#[test]
fn a_leaf_is_no_ca() {
    let ca = Signer::generate("kubernetes", DAY).unwrap();
    let (cert, key) = ca.issue(&LeafSpec::client("x", &[]), DAY).unwrap();
    let err = Signer::from_pem("ca", &cert, &key)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("the ca certificate is not a CA certificate"),
        "{err}"
    );
}

#[test]
fn self_signed_serving_certificates_sign_themselves() {
    let (cert, key) = self_signed("w-1@1700000000", &["w-1".into()], &[], DAY).unwrap();
    let info = CertInfo::parse(&cert).unwrap();
    assert_eq!(info.cn, "w-1@1700000000");
    assert_eq!(info.dns, ["w-1"]);
    assert!(issued_by(&cert, &cert));
    assert!(key.contains("PRIVATE KEY"));
}
