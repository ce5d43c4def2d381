//! `kubegrid upgrade` on lab hosts, end to end: three control-plane/etcd members (external
//! etcd) and two workers move from Kubernetes 1.31.4 to 1.33.4 (two kubeadm steps), etcd
//! 3.4.23 to 3.5.30 and containerd 1.6.20 (config version 2) to 2.1.9 (config version 3),
//! while a writer puts a sequenced key into etcd every 50 ms. kubeadm and the kubelet are the
//! e2e bundle's STAND-INS (they check upstream's preconditions and record every call), the
//! Kubernetes API is the fake API server (a TEST STAND-IN); etcd and containerd are real.

mod bed;
pub(crate) mod etcd;
mod failed;
mod operator;
mod records;

use std::collections::BTreeSet;

use bed::{Bed, MEMBERS, NEW, OLD, json};
use kubegrid_e2e::describe;

#[test]
fn a_live_cluster_moves_two_minors_etcd_and_containerd_without_losing_a_write() {
    let mut bed = Bed::up();
    let old = bed.spec("upgrade-old", OLD, None);
    bed.install(&old);
    let new = bed.spec("upgrade-new", NEW, None);

    // The plan changes nothing, says etcd 3.4 is out of kubeadm's policy and orders the
    // steps: etcd members, the control plane per minor, then the workers.
    let out = bed.upgrade("plan", &new, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    let plan = &report["upgrade"]["plan"];
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("3.4.23") && notes.contains("3.5.24"),
        "{notes}"
    );
    let ids: Vec<String> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&ids[..3], ["etcdMember"; 3], "{ids:?}");
    assert_eq!(report["upgrade"]["steps"].as_array().map(Vec::len), Some(0));
    for m in MEMBERS {
        let v = bed
            .lab
            .ssh_ok(bed.lab.host(m), "/usr/local/bin/etcd --version | head -n 1");
        assert!(v.contains("3.4.23"), "the plan changed {m}: {v}");
    }

    let ctl = etcd::Etcdctl::new(&bed.ca("etcd-ca"), &bed.lab.state_dir);
    let watch = etcd::Watch::start(&ctl, bed.members());
    let out = bed.upgrade("apply", &new, &[]);
    let seen = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "succeeded", "{report}");

    // Every acknowledged write is there; at most one member was down at any time, so the
    // three-member quorum always stood.
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

    // What runs now, as the hosts themselves say.
    for m in MEMBERS {
        let v = bed
            .lab
            .ssh_ok(bed.lab.host(m), "/usr/local/bin/etcd --version | head -n 1");
        assert!(v.contains("3.5.30"), "{m}: {v}");
    }
    for host in MEMBERS
        .iter()
        .copied()
        .chain(bed.workers.iter().map(String::as_str))
    {
        let h = bed.lab.host(host);
        let served = bed.lab.ssh_ok(h, "ctr version | sed -n '/^Server/,$p'");
        assert!(
            served.contains("2.1.9"),
            "{host}: containerd serving {served}"
        );
        let config = bed.lab.ssh_ok(h, "head -n 5 /etc/containerd/config.toml");
        assert!(config.contains("version = 3"), "{host}: {config}");
        let kubelet = bed.lab.ssh_ok(h, "/usr/bin/kubelet --version");
        assert!(kubelet.contains("v1.33.4"), "{host}: {kubelet}");
    }
    for step in report["upgrade"]["steps"].as_array().expect("steps") {
        assert_eq!(step["ok"], true, "{step}");
    }
    let containerd_checked = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["tasks"].as_array().unwrap().iter().any(|t| {
                t["phase"] == "node-containerd"
                    && t["task"] == "runc runs a container"
                    && t["status"] != "failed"
            })
        })
        .count();
    assert_eq!(
        containerd_checked, 5,
        "a container ran on every Node after its move to 2.1"
    );
    // The leader moved its leadership away before it restarted (at least the first leader).
    let moved = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["tasks"].as_array().unwrap())
        .filter(|t| t["task"] == "etcd leadership moved away" && t["status"] == "changed")
        .count();
    assert!(
        moved >= 1,
        "no etcd member handed over its leadership before its restart"
    );

    // The stand-ins' records and the API's: control plane before workers, one worker
    // drained at a time, every drain before that Node's new kubelet.
    records::assert_order(&bed);

    // Nothing left to do: a second plan is empty and exits 0.
    let out = bed.upgrade("plan", &new, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let again = json(&out);
    assert_eq!(
        again["upgrade"]["plan"]["steps"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
}
