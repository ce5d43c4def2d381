//! An etcd CA rotation killed (SIGKILL) in its trust-both phase, after its first member:
//! clients holding the certificates they had before the rotation still reach every member, and
//! running the rotation again resumes it and finishes.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use kubegrid_e2e::describe;
use serde_json::Value;

use super::bed::{Bed, MEMBERS, json};
use crate::upgrade::etcd::Etcdctl;

#[test]
fn a_rotation_killed_in_trust_both_resumes_and_clients_never_lose_the_cluster() {
    let bed = Bed::up();
    // What a client holds before the rotation: the old CA and its client pair.
    let held = bed.lab.state_dir.join("held");
    std::fs::create_dir_all(&held).unwrap();
    for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
        std::fs::copy(
            bed.host_file("lab-2", &format!("/etc/etcd/pki/{f}")),
            held.join(f),
        )
        .unwrap();
    }
    let old_client = Etcdctl::from_files(
        &held.join("ca.crt"),
        &held.join("healthcheck-client.crt"),
        &held.join("healthcheck-client.key"),
    );
    let spec = bed.spec.to_str().unwrap().to_string();
    let kubeconfig = bed.lab.state_dir.join("admin.conf");
    let mut child = bed
        .lab
        .command(&[
            "certs",
            "rotate-ca",
            "-f",
            &spec,
            "--ca",
            "etcd",
            "-o",
            "json",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the rotation");

    // Kill it once the journal records the first member through trust-both.
    let cluster = cluster_name(&bed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let state = loop {
        let state: Option<Value> = runtime.block_on(async {
            let journal = kubegrid_journal::Journal::open(&bed.lab.journal())
                .await
                .ok()?;
            let text = journal.state(&cluster, "rotation").await.ok()??;
            serde_json::from_str(&text).ok()
        });
        if let Some(s) = state.filter(|s| {
            s["phase"] == "trust-both" && s["done"].as_array().is_some_and(|d| !d.is_empty())
        }) {
            break s;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the rotation ended before it could be killed in trust-both"
        );
        assert!(Instant::now() < deadline, "trust-both never began");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    eprintln!("killed the engine with the journal at {state}");

    // Old credentials still reach every member; some members trust both CAs by now. `endpoint
    // status` is answered by the member itself once it took the client's certificate (unlike
    // `endpoint health`, which also needs a committed raft proposal, and so fails while the
    // member the killed engine was restarting catches up). A member still starting is waited
    // for; a refused certificate stays refused.
    for (m, address) in MEMBERS.iter().zip(bed.members()) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ok = loop {
            let ok = old_client
                .command(std::slice::from_ref(&address), Duration::from_secs(5))
                .args(["endpoint", "status"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || Instant::now() > deadline {
                break ok;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            ok,
            "{m} refused the credentials clients held before the rotation"
        );
    }
    let bundle = std::fs::read_to_string(bed.host_file("lab-1", "/etc/etcd/pki/ca.crt")).unwrap();
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE").count(),
        2,
        "lab-1 should trust both: {bundle}"
    );

    // Another CA waits until this rotation finishes.
    let other = bed.certs("rotate-ca", &["--ca", "kubernetes"]);
    assert_eq!(other.status.code(), Some(2), "{}", describe(&other));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("--ca etcd"),
        "{}",
        describe(&other)
    );

    let out = bed.certs("rotate-ca", &["--ca", "etcd"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    let rotation = &report["certs"]["rotation"];
    assert_eq!(rotation["resumed"], true, "{rotation}");
    assert_eq!(rotation["phase"], "done", "{rotation}");
    // The member that finished trust-both before the kill was not restarted for it again.
    let restarts = report["certs"]["restarts"].as_array().unwrap();
    let done = state["done"].as_array().map_or(0, Vec::len);
    let etcd = restarts.iter().filter(|x| x["what"] == "etcd").count();
    assert_eq!(
        etcd,
        9 - done,
        "3 phases x 3 members, less the {done} done: {restarts:?}"
    );
    let old = bed.certs("check", &[]);
    assert_eq!(old.status.code(), Some(0), "{}", describe(&old));
}

/// The cluster's name in the lab spec.
fn cluster_name(bed: &Bed) -> String {
    let text = std::fs::read_to_string(&bed.spec).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Cluster")
        .and_then(|d| d["metadata"]["name"].as_str().map(String::from))
        .expect("the spec names its cluster")
}
