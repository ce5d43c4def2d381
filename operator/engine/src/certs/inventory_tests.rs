use std::time::Duration;

use kubegrid_pki::{Ca, LeafSpec, Usage};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn ca(cn: &str) -> Ca {
    Ca::generate(cn, 3650 * DAY).unwrap()
}

fn leaf(ca: &Ca, cn: &str, days: u32) -> kubegrid_pki::IssuedCert {
    ca.issue(&LeafSpec {
        common_name: cn.into(),
        organizations: Vec::new(),
        dns_names: vec![cn.into()],
        ip_addresses: Vec::new(),
        usage: Usage::ServerAndClient,
        validity: DAY * days,
    })
    .unwrap()
}

fn found(file: &str, pem: &str) -> Found {
    Found {
        file: file.into(),
        field: None,
        kubeconfig: false,
        pem: pem.into(),
        info: read_expiry(pem).unwrap(),
    }
}

fn held(entries: &[(&str, &str, &str)]) -> Held {
    Held {
        by_name: entries
            .iter()
            .map(|(n, c, k)| {
                (
                    n.to_string(),
                    StoredCert {
                        cert_pem: c.to_string(),
                        key_pem: k.to_string(),
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn each_standing_against_the_journal() {
    let etcd = ca("etcd-ca");
    let kube = ca("kubernetes");
    let server = leaf(&etcd, "lab-1", 365);
    let other = leaf(&etcd, "lab-1", 365);
    let h = held(&[
        ("etcd-ca", etcd.cert_pem(), etcd.key_pem()),
        ("kubernetes-ca", kube.cert_pem(), kube.key_pem()),
        ("etcd-server-lab-1", &server.cert_pem, &server.key_pem),
    ]);
    let file = "/etc/etcd/pki/server.crt";
    assert_eq!(
        classify("lab-1", &found(file, &server.cert_pem), &h, true),
        (JournalMatch::Matches, None)
    );
    let (m, why) = classify("lab-1", &found(file, &other.cert_pem), &h, true);
    assert_eq!(m, JournalMatch::Differs);
    assert!(why.unwrap().contains("another certificate"));
    // kubeadm's leaf: signed by the CA the journal holds, never issued by kubegrid.
    let apiserver = leaf(&kube, "kube-apiserver", 365);
    assert_eq!(
        classify(
            "lab-1",
            &found("/etc/kubernetes/pki/apiserver.crt", &apiserver.cert_pem),
            &h,
            true
        )
        .0,
        JournalMatch::Signed
    );
    // A certificate from someone else's CA.
    let stranger = leaf(&ca("someone"), "by-hand", 365);
    let (m, why) = classify(
        "lab-1",
        &found("/etc/kubernetes/pki/apiserver.crt", &stranger.cert_pem),
        &h,
        true,
    );
    assert_eq!(m, JournalMatch::Unknown);
    assert!(why.unwrap().contains("CN=someone"), "names the issuer");
    // The kubelet's own serving certificate.
    let own = ca("lab-1@1700000000");
    assert_eq!(
        classify(
            "lab-1",
            &found(catalog::KUBELET_SERVING, own.cert_pem()),
            &h,
            true
        )
        .0,
        JournalMatch::SelfSigned
    );
}

#[test]
fn a_trust_bundle_during_a_rotation_matches_the_next_ca_too() {
    let old = ca("etcd-ca");
    let new = ca("etcd-ca");
    let h = held(&[
        ("etcd-ca", old.cert_pem(), old.key_pem()),
        ("etcd-ca-next", new.cert_pem(), new.key_pem()),
    ]);
    for pem in [old.cert_pem(), new.cert_pem()] {
        assert_eq!(
            classify("lab-2", &found("/etc/etcd/pki/ca.crt", pem), &h, true).0,
            JournalMatch::Matches
        );
    }
}

#[test]
fn summary_orders_expiry_and_lists_what_expires_and_what_is_flagged() {
    let kube = ca("kubernetes");
    let h = held(&[("kubernetes-ca", kube.cert_pem(), kube.key_pem())]);
    let soon = leaf(&kube, "soon", 10);
    let later = leaf(&kube, "later", 300);
    let stranger = leaf(&ca("someone"), "x", 200);
    let now = OffsetDateTime::now_utc();
    let rows = vec![
        row(
            "lab-1",
            &found("/etc/kubernetes/pki/apiserver.crt", &later.cert_pem),
            &h,
            true,
            now,
        ),
        row(
            "lab-1",
            &found("/etc/kubernetes/pki/front-proxy-client.crt", &soon.cert_pem),
            &h,
            true,
            now,
        ),
        row(
            "lab-1",
            &found("/etc/kubernetes/pki/extra.crt", &stranger.cert_pem),
            &h,
            true,
            now,
        ),
    ];
    let mut report = CertsReport {
        warn_days: 30,
        nodes: vec![NodeCerts {
            node: "lab-1".into(),
            reachable: true,
            certificates: rows,
        }],
        ..CertsReport::default()
    };
    summarize(&mut report);
    let earliest = report.earliest.as_ref().unwrap();
    assert_eq!(earliest.name, "front-proxy-client");
    assert!((9..=10).contains(&earliest.days_left), "{earliest:?}");
    assert_eq!(report.expiring.len(), 1);
    assert_eq!(report.flagged.len(), 1);
    assert_eq!(report.flagged[0].name, "extra");
    // Keys were in the journal the rows came from; none reaches the report.
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains(kube.key_pem().lines().nth(1).unwrap()));
}
