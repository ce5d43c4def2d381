//! `kubegrid certs` on lab hosts, end to end: three external etcd members (real etcd, real
//! TLS) take a renewal and an etcd CA rotation while a writer puts a sequenced key every 50 ms
//! and a monitor reads each member's status, both through TLS with the credentials kubegrid
//! rewrites on a member; a rotation killed in its trust-both phase resumes; a certificate
//! replaced by hand is flagged and put back; a cluster CA rotation moves every reader
//! (`kubernetes`); the operator renews short-lived certificates by itself (`operator`).
//! kubeadm, the kubelet and the API server are the e2e bundle's STAND-INS (see `bed`).

mod bed;
mod killed;
mod kubernetes;
mod operator;

use std::collections::BTreeSet;

use bed::{Bed, MEMBERS, json, openssl_verifies, row};
use kubegrid_e2e::describe;

use crate::upgrade::etcd::{Etcdctl, Watch};

const ETCD_CA: &str = "/etc/etcd/pki/ca.crt";
const CLIENT_CERT: &str = "/etc/etcd/pki/healthcheck-client.crt";
const CLIENT_KEY: &str = "/etc/etcd/pki/healthcheck-client.key";

#[test]
fn renewal_and_an_etcd_ca_rotation_lose_no_acknowledged_write() {
    let bed = Bed::up();

    // The inventory: every member's etcd certificates are the journal's; kubeadm's leaves on
    // the control plane are signed by the CA kubegrid holds.
    let out = bed.certs("check", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = json(&out);
    for m in MEMBERS {
        assert_eq!(row(&before, m, "etcd-server")["journal"], "matches", "{m}");
        assert_eq!(row(&before, m, "etcd-peer")["journal"], "matches", "{m}");
    }
    assert_eq!(row(&before, "lab-1", "apiserver")["journal"], "signed");
    assert!(before["certs"]["flagged"].as_array().unwrap().is_empty());
    let old_ca = std::fs::read_to_string(bed.host_file("lab-2", ETCD_CA)).unwrap();
    let old_ca_file = bed.lab.state_dir.join("old-etcd-ca.crt");
    std::fs::write(&old_ca_file, &old_ca).unwrap();

    // Writer and reader use lab-2's health-check client files, re-read by every command.
    let ctl = Etcdctl::from_files(
        &bed.host_file("lab-2", ETCD_CA),
        &bed.host_file("lab-2", CLIENT_CERT),
        &bed.host_file("lab-2", CLIENT_KEY),
    );
    let watch = Watch::start(&ctl, bed.members());

    let out = bed.certs("renew", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let renewed = json(&out);
    for m in MEMBERS {
        let (old, new) = (
            row(&before, m, "etcd-server")["notAfter"]
                .as_str()
                .unwrap()
                .to_string(),
            row(&renewed, m, "etcd-server")["notAfter"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert!(new > old, "{m}: etcd-server not renewed: {old} -> {new}");
        assert_eq!(row(&renewed, m, "etcd-server")["journal"], "matches");
        assert_ne!(
            row(&renewed, m, "etcd-server")["fingerprint"],
            row(&before, m, "etcd-server")["fingerprint"]
        );
    }
    let etcd_restarts = |r: &serde_json::Value| {
        r["certs"]["restarts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["what"] == "etcd")
            .map(|x| x["ok"].as_bool().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        etcd_restarts(&renewed),
        [true; 3],
        "{}",
        renewed["certs"]["restarts"]
    );
    health_green(&bed, "after the renewal");

    let out = bed.certs("rotate-ca", &["--ca", "etcd"]);
    let seen = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let rotated = json(&out);
    let rotation = &rotated["certs"]["rotation"];
    assert_eq!(rotation["phase"], "done", "{rotation}");
    assert_eq!(
        rotation["completed"],
        serde_json::json!(["new-ca", "trust-both", "reissue", "drop-old"])
    );
    // Each of the three rolling phases restarted every member, each healthy before the next.
    assert_eq!(
        etcd_restarts(&rotated),
        [true; 9],
        "{}",
        rotated["certs"]["restarts"]
    );
    health_green(&bed, "after the rotation");

    let present = ctl.written(&bed.members());
    let lost: BTreeSet<&u64> = seen.acked.iter().filter(|n| !present.contains(n)).collect();
    eprintln!(
        "etcd writer: {} puts tried, {} acknowledged, {} lost, longest gap between acknowledged writes {} ms; status rounds {}, most members down at once {}",
        seen.tried,
        seen.acked.len(),
        lost.len(),
        seen.longest_gap.as_millis(),
        seen.rounds,
        seen.most_down
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(seen.acked.len() > 20, "the writer barely ran: {seen:?}");
    assert!(
        seen.most_down <= 1,
        "{} members were down at once",
        seen.most_down
    );

    // The old CA verifies no member any more; the new one (on every host now) verifies all.
    let new_ca = bed.host_file("lab-1", ETCD_CA);
    let (cert, key) = (
        bed.host_file("lab-1", CLIENT_CERT),
        bed.host_file("lab-1", CLIENT_KEY),
    );
    for (m, address) in MEMBERS.iter().zip(bed.members()) {
        assert!(
            !openssl_verifies(&address, 2379, &old_ca_file, &cert, &key),
            "{m} still verifies with the old etcd CA"
        );
        assert!(
            openssl_verifies(&address, 2379, &new_ca, &cert, &key),
            "{m} does not verify with the new etcd CA"
        );
        let ca_now = std::fs::read_to_string(bed.host_file(m, ETCD_CA)).unwrap();
        assert_eq!(
            ca_now.matches("BEGIN CERTIFICATE").count(),
            1,
            "{m}: {ca_now}"
        );
        assert_ne!(ca_now, old_ca, "{m}");
    }
    let out = bed.certs("check", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn a_certificate_replaced_by_hand_is_flagged_and_renewal_puts_it_back() {
    let bed = Bed::up();
    // The API server's etcd client pair on lab-1 (nothing in the lab reads it between
    // restarts: the stand-in API server does not talk to etcd), replaced by someone's own.
    let path = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    let key_path = "/etc/kubernetes/pki/apiserver-etcd-client.key";
    let stranger =
        kubegrid_pki::Ca::generate("someone-else", std::time::Duration::from_secs(86_400)).unwrap();
    let leaf = stranger
        .issue(&kubegrid_pki::LeafSpec {
            common_name: "by-hand".into(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: kubegrid_pki::Usage::Client,
            validity: std::time::Duration::from_secs(86_400),
        })
        .unwrap();
    std::fs::write(bed.host_file("lab-1", path), &leaf.cert_pem).unwrap();
    std::fs::write(bed.host_file("lab-1", key_path), &leaf.key_pem).unwrap();

    let out = bed.certs("check", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    let flagged = report["certs"]["flagged"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0]["node"], "lab-1");
    assert_eq!(flagged[0]["file"], path);
    assert_eq!(
        row(&report, "lab-1", "apiserver-etcd-client")["journal"],
        "differs"
    );
    // No key material in what the engine reports or journals.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));

    let out = bed.certs("renew", &["--only", "apiserver-etcd-client"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let operation = json(&out)["operation"].to_string();
    let out = bed.certs("check", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        row(&json(&out), "lab-1", "apiserver-etcd-client")["journal"],
        "matches"
    );
    // The pair is kubegrid's again, key included: etcd accepts it from lab-1.
    let out = bed.lab.ssh(
        bed.lab.host("lab-1"),
        "/usr/local/bin/etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/kubernetes/pki/etcd/ca.crt \
         --cert /etc/kubernetes/pki/apiserver-etcd-client.crt --key /etc/kubernetes/pki/apiserver-etcd-client.key \
         --command-timeout 5s endpoint health",
    );
    assert!(out.status.success(), "{}", describe(&out));
    let history = bed.lab.run(&["logs", &operation, "--output", "json"]);
    assert!(history.status.success(), "{}", describe(&history));
    assert!(
        !String::from_utf8_lossy(&history.stdout).contains("PRIVATE KEY"),
        "the journal's events hold key material"
    );
}

/// `etcdctl endpoint health` on every member, from the member itself.
fn health_green(bed: &Bed, when: &str) {
    for m in MEMBERS {
        let out = bed.lab.ssh(
            bed.lab.host(m),
            "/usr/local/bin/etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/etcd/pki/ca.crt \
             --cert /etc/etcd/pki/healthcheck-client.crt --key /etc/etcd/pki/healthcheck-client.key \
             --command-timeout 5s endpoint health",
        );
        assert!(
            out.status.success(),
            "{m} unhealthy {when}: {}",
            describe(&out)
        );
    }
}
