//! What the servers present after a renewal, compared with what it wrote; which ports are
//! read on which Nodes.

use base64::Engine as _;
use kubegrid_engine::certs::{CertRow, NodeCerts};
use sha2::{Digest, Sha256};

use super::served::{compare, targets};
use super::*;

/// A certificate's DER, its fingerprint as the engine writes it, and its notAfter.
fn certificate(days: u64) -> (Vec<u8>, String, String) {
    let ca = kubegrid_pki::Ca::generate("served", Duration::from_secs(days * 86_400)).unwrap();
    let body: String = ca
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let fingerprint = format!("sha256:{}", hex::encode(Sha256::digest(&der)));
    let not_after = ca
        .not_after()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (der, fingerprint, not_after)
}

fn report(node: &str, name: &str, fingerprint: &str, not_after: &str) -> CertsReport {
    CertsReport {
        nodes: vec![NodeCerts {
            node: node.into(),
            reachable: true,
            certificates: vec![CertRow {
                name: name.into(),
                file: "/etc/kubernetes/pki/apiserver.crt".into(),
                fingerprint: fingerprint.into(),
                not_after: not_after.into(),
                ..CertRow::default()
            }],
        }],
        ..CertsReport::default()
    }
}

#[test]
fn a_served_certificate_matches_when_the_renewal_wrote_it_or_it_is_newer() {
    let (old_der, old_fp, old_until) = certificate(10);
    let (new_der, new_fp, new_until) = certificate(365);
    let before = report("cp-1", "apiserver", &old_fp, &old_until);
    let after = report("cp-1", "apiserver", &new_fp, &new_until);
    let s = compare(
        "cp-1",
        6443,
        "apiserver",
        Ok(new_der.clone()),
        &before,
        &after,
    );
    assert!(s.answered);
    assert_eq!(s.matches, Some(true), "{s:?}");
    assert_eq!(s.not_after.as_deref(), Some(new_until.as_str()));
    assert_eq!(s.message, "serves the renewed apiserver certificate");
    // One the renewal did not change (the kubelet's own serving certificate): it matches
    // the host's file, and says it was left as it was.
    let s = compare(
        "cp-1",
        6443,
        "apiserver",
        Ok(new_der.clone()),
        &after,
        &after,
    );
    assert_eq!(s.matches, Some(true));
    assert!(s.message.contains("left as it was"), "{s:?}");
    // Still the old one: answered, not renewed.
    let s = compare("cp-1", 6443, "apiserver", Ok(old_der), &before, &after);
    assert_eq!((s.answered, s.matches), (true, Some(false)), "{s:?}");
    // Not the one in the report, but newer than every one before.
    let (other_der, _, _) = certificate(365);
    let s = compare("cp-1", 6443, "apiserver", Ok(other_der), &before, &after);
    assert_eq!(s.matches, Some(true), "{s:?}");
    assert!(s.message.contains("newer than before"), "{s:?}");
}

#[test]
fn a_port_that_does_not_answer_is_never_called_verified() {
    let empty = CertsReport::default();
    let s = compare(
        "cp-1",
        2379,
        "etcd-server",
        Err("reading the certificate served on 10.0.0.1:2379: no TCP connection".into()),
        &empty,
        &empty,
    );
    assert!(!s.answered);
    assert_eq!(s.matches, None);
    assert_eq!(s.not_after, None);
    assert!(s.message.starts_with("did not answer: "), "{s:?}");
}

#[test]
fn control_planes_serve_6443_etcd_members_2379_and_every_node_10250() {
    let node = |name: &str, roles: &str| -> Node {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubegrid.io/v1alpha1", "kind": "Node",
            "metadata": {"name": name, "namespace": "fleet"},
            "spec": {"clusterName": "gpu", "address": format!("10.0.0.{}", name.len()), "roles": roles.split(',').collect::<Vec<_>>()},
        }))
        .unwrap()
    };
    let ports = |nodes: &[Node]| -> Vec<(String, u16)> {
        targets(nodes)
            .into_iter()
            .map(|(n, _, p, _)| (n, p))
            .collect()
    };
    let stacked = [node("cp-1", "control-plane"), node("w-1", "worker")];
    assert_eq!(
        ports(&stacked),
        [
            ("cp-1".into(), 6443),
            ("cp-1".into(), 2379),
            ("cp-1".into(), 10250),
            ("w-1".into(), 10250)
        ]
    );
    let external = [node("cp-1", "control-plane"), node("e-1", "etcd")];
    assert_eq!(
        ports(&external),
        [
            ("cp-1".into(), 6443),
            ("cp-1".into(), 10250),
            ("e-1".into(), 2379),
            ("e-1".into(), 10250)
        ]
    );
}
