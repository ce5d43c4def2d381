//! An upgrade that loses a worker half-way: `lab kill` takes lab-4 down while the control
//! plane is being upgraded. The roll stops before lab-4's turn and names it; lab-5, after it,
//! is never touched. Once lab-4 is back, the same command resumes: the control plane, which
//! finished, is not upgraded again, and the workers finish.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use kubegrid_e2e::describe;

use super::{
    bed::{Bed, MEMBERS, Versions, json},
    records::{calls, kubeadm_upgrades},
};

/// A one-minor upgrade with containerd and etcd staying on their lines.
pub(super) const FROM: Versions = Versions {
    kubernetes: "v1.31.4",
    containerd: "2.1",
    etcd: "3.5",
};
/// [`FROM`]'s target.
pub(super) const TO: Versions = Versions {
    kubernetes: "v1.32.4",
    containerd: "2.1",
    etcd: "3.5",
};

#[test]
fn a_worker_lost_mid_upgrade_stops_the_roll_and_a_rerun_resumes_without_redoing() {
    let mut bed = Bed::up();
    let from = bed.spec("failed-from", FROM, None);
    bed.install(&from);
    let to = bed.spec("failed-to", TO, None);

    let mut child = bed
        .lab
        .command(&["upgrade", "apply", "-f", to.to_str().unwrap(), "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start upgrade apply");
    let stderr = child.stderr.take().expect("stderr");
    let mut progress = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("progress line");
        if !killed && line.contains("phase kubeadm-apply") {
            let out = bed.lab.kubegrid(&["kill", "lab-4"]);
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            killed = true;
        }
        progress.push(line);
    }
    let out = child.wait_with_output().expect("upgrade apply ends");
    assert!(
        killed,
        "no kubeadm-apply phase was seen:\n{}",
        progress.join("\n")
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        describe(&out),
        progress.join("\n")
    );
    let report = json(&out);
    let stopped = report["upgrade"]["stopped"].as_str().unwrap_or_default();
    assert!(stopped.contains("lab-4"), "the stop names lab-4: {report}");
    let first_op = report["operation"].clone();
    let done: Vec<String> = report["upgrade"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !done.is_empty(),
        "no step finished before the stop: {report}"
    );
    assert!(
        done.iter()
            .all(|id| !id.contains("lab-4") && !id.contains("lab-5")),
        "{done:?}"
    );
    let lab5 = calls(&bed, &["lab-5"]);
    assert!(
        kubeadm_upgrades(&lab5).is_empty(),
        "lab-5 was touched: {lab5:?}"
    );
    let kubelet = bed
        .lab
        .ssh_ok(bed.lab.host("lab-5"), "/usr/bin/kubelet --version");
    assert!(kubelet.contains("v1.31.4"), "{kubelet}");
    let first_run: Vec<(String, Vec<String>)> = kubeadm_upgrades(&calls(&bed, &MEMBERS))
        .iter()
        .map(|c| (c.host.clone(), c.args.clone()))
        .collect();
    assert!(
        !first_run.is_empty(),
        "kubeadm upgrade apply ran before the stop"
    );

    let out = bed.lab.kubegrid(&["start", "lab-4"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = bed.upgrade("apply", &to, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    // The re-run names the stopped operation and the steps its journal records as finished;
    // the live versions agree, so none is planned again.
    let resumed = &report["upgrade"]["resumed"];
    assert_eq!(resumed["operation"], first_op, "{resumed}");
    let journaled: Vec<String> = resumed["finishedSteps"]
        .as_array()
        .expect("finishedSteps")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(journaled, done, "{resumed}");
    assert_eq!(resumed["replanned"], serde_json::json!([]), "{resumed}");
    let ids: Vec<String> = report["upgrade"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.iter().all(|id| !done.contains(id)),
        "the resumed roll redid finished steps: {ids:?} after {done:?}"
    );
    assert!(
        ids.iter().any(|id| id.contains("lab-4")) && ids.iter().any(|id| id.contains("lab-5")),
        "{ids:?}"
    );
    let all: Vec<(String, Vec<String>)> = kubeadm_upgrades(&calls(&bed, &MEMBERS))
        .iter()
        .map(|c| (c.host.clone(), c.args.clone()))
        .collect();
    for call in &first_run {
        let times = all.iter().filter(|c| *c == call).count();
        assert_eq!(times, 1, "{call:?} ran again on resume: {all:?}");
    }
    for w in ["lab-4", "lab-5"] {
        let kubelet = bed
            .lab
            .ssh_ok(bed.lab.host(w), "/usr/bin/kubelet --version");
        assert!(kubelet.contains("v1.32.4"), "{w}: {kubelet}");
    }
}
