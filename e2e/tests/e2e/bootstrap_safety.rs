//! The bootstrap's risky corners on one lab host (control plane, external etcd and worker
//! at once): a retried `kubeadm init` never resets a host whose control plane runs, and
//! `kubegrid reset` asks before it wipes, then removes kubegrid's external etcd with its data.
//! kubeadm, kubelet, kubectl and crictl are STAND-INS (e2e/src/bin/kubegrid-standin); etcd
//! is Debian's real etcd.

use kubegrid_e2e::{Host, LabGuard, describe, json};
use serde_json::Value;

const STANDIN_LOG: &str = "/var/log/kubegrid-standins/invocations.jsonl";

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// How many times the kubeadm stand-in ran `verb` on `host`.
fn kubeadm_runs(lab: &LabGuard, host: &Host, verb: &str) -> usize {
    lab.ssh_ok(host, &format!("cat {STANDIN_LOG} 2>/dev/null || true"))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("invocation line is JSON"))
        .filter(|c| c["standin"] == "kubeadm" && c["argv"][1] == verb)
        .count()
}

/// Apply with the API checks skipped: no kube-apiserver runs on these lab hosts.
fn apply(lab: &LabGuard) -> std::process::Output {
    lab.apply_json(&lab.spec(), &["--skip-check", "cluster-api"])
}

#[test]
fn a_retried_init_spares_a_running_control_plane_and_reset_removes_external_etcd() {
    eprintln!(
        "NOTE: kubeadm, kubelet, kubectl and crictl on this lab host are STAND-INS \
         (e2e/src/bin/kubegrid-standin), not upstream binaries; etcd is Debian's real etcd."
    );
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    let out = apply(&lab);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(kubeadm_runs(&lab, h, "init"), 1);
    lab.ssh_ok(
        h,
        "systemctl is-active --quiet etcd.service && test -d /var/lib/etcd/member",
    );

    // An init that kubegrid started but never saw finish (its marker lost), on a host whose
    // kube-apiserver runs: the retry must not reset it.
    lab.ssh_ok(
        h,
        "rm /etc/kubernetes/kubegrid/init.done && cp /bin/sleep /usr/local/bin/kube-apiserver && \
         systemd-run --unit kubegrid-e2e-apiserver /usr/local/bin/kube-apiserver 600",
    );
    let out = apply(&lab);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let report = json(&out);
    let host = &report["hosts"][0];
    assert_eq!(host["failedPhase"], "control-plane-init", "{report}");
    // The refusal is what the command printed (its text is also in the script, which the
    // failure message quotes, so the output is what proves the guard ran).
    let op = report["operation"].to_string();
    let logs = json(&lab.run(&["logs", &op, "-o", "json"]));
    let output: String = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["status"] == "failed")
        .map(|e| e["output"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        output.contains("will not run kubeadm reset over a live control plane"),
        "{logs}"
    );
    assert_eq!(
        kubeadm_runs(&lab, h, "reset"),
        0,
        "the running control plane was reset"
    );
    assert_eq!(kubeadm_runs(&lab, h, "init"), 1, "init ran again");
    lab.ssh_ok(
        h,
        "test -e /etc/kubernetes/admin.conf && test -e /etc/kubernetes/kubelet.conf",
    );
    // The config that carried the join secrets went anyway.
    assert_eq!(
        lab.ssh_ok(
            h,
            "ls /etc/kubernetes/kubegrid/kubeadm-*.yaml 2>/dev/null | wc -l"
        ),
        "0"
    );
    lab.ssh_ok(
        h,
        "systemctl stop kubegrid-e2e-apiserver && rm /usr/local/bin/kube-apiserver && \
         touch /etc/kubernetes/kubegrid/init.done",
    );

    // Reset refuses without a terminal to confirm on and without --yes, touching nothing.
    let spec = lab.spec();
    let spec = spec.to_str().unwrap();
    let out = lab.run(&["reset", "-f", spec]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    lab.ssh_ok(
        h,
        "systemctl is-active --quiet etcd.service && test -d /var/lib/etcd",
    );

    // With --yes it resets, etcd included, and the journal records a reset.
    let out = lab.run(&["reset", "-f", spec, "--yes", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["kind"], "reset", "{report}");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(kubeadm_runs(&lab, h, "reset"), 1);
    assert_eq!(
        lab.ssh_ok(
            h,
            "systemctl is-active etcd.service; for p in /var/lib/etcd /etc/etcd/pki \
             /etc/systemd/system/etcd.service /etc/kubernetes/admin.conf; \
             do test -e $p && echo \"$p left\"; done; true"
        ),
        "inactive"
    );
    let history = lab.run(&["history", "-o", "json"]);
    assert!(history.status.success(), "{}", describe(&history));
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("\"reset\""),
        "{}",
        describe(&history)
    );

    // A second reset finds nothing left to do.
    let out = lab.run(&["reset", "-f", spec, "--yes", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out)["hosts"][0]["changed"], 0, "{}", describe(&out));
}
