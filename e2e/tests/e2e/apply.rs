//! `kubegrid apply` on lab hosts: refusals that touch nothing, a real containerd install
//! checked over plain ssh, idempotence, host-key pinning, and failures mid-operation.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
};

use kubegrid_e2e::{LabGuard, describe, json, total_changed};

/// These scenarios are about preparing hosts and the container runtime (issue #3); the
/// Kubernetes bootstrap has its own scenario in bootstrap.rs.
const RUNTIME: &str = "container-runtime";

/// What a host looks like before kubegrid ever changed it.
const UNTOUCHED: &str = "test ! -e /var/lib/kubegrid && test ! -e /etc/containerd && test ! -e /usr/local/bin/containerd && ! dpkg -s containerd >/dev/null 2>&1 && echo untouched";

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn assert_untouched(lab: &LabGuard) {
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(h, UNTOUCHED),
            "untouched",
            "{} was changed",
            h.name
        );
    }
}

/// Rewrites the lab's spec with `edit` applied to the Node named `node`, into a new file.
fn edited_spec(
    lab: &LabGuard,
    name: &str,
    node: &str,
    edit: impl Fn(&mut serde_yaml::Value),
) -> PathBuf {
    let text = fs::read_to_string(lab.spec()).expect("read lab spec");
    let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml doc"))
        .collect();
    for d in &mut docs {
        if d["kind"] == "Node" && d["metadata"]["name"] == node {
            edit(d);
        }
    }
    let out: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("yaml"))
        .collect();
    let path = lab.state_dir.join(format!("specs-e2e-{name}.yaml"));
    fs::write(&path, out.join("---\n")).expect("write spec");
    path
}

fn apply(lab: &LabGuard, spec: &Path, extra: &[&str]) -> std::process::Output {
    let spec = spec.to_str().expect("utf-8 path");
    let mut args = vec!["apply", "-f", spec, "-o", "json", "--until", RUNTIME];
    args.extend_from_slice(extra);
    lab.run(&args)
}

#[test]
fn apply_refuses_bad_input_then_installs_containerd_and_converges() {
    let lab = LabGuard::up(4);
    // lab-4 is reached as the unprivileged `kube` user and works through sudo.
    let spec = edited_spec(&lab, "sudo", "lab-4", |n| {
        n["spec"]["ssh"] = serde_yaml::from_str("{user: kube}").expect("yaml");
    });

    // An invalid spec (two Nodes on one address) is refused before any connection.
    let bad = edited_spec(&lab, "dup", "lab-3", |n| {
        n["spec"]["address"] = serde_yaml::Value::from(lab.host("lab-2").address.clone());
    });
    let out = apply(&lab, &bad, &[]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("address") && err.contains("lab-3"), "{err}");
    assert_untouched(&lab);

    // Preflight: a port Kubernetes needs is taken on lab-1, so nothing changes anywhere.
    lab.ssh_ok(lab.host("lab-1"), "systemd-run --unit kg-squat socat TCP-LISTEN:6443,fork,reuseaddr EXEC:/bin/true && for i in $(seq 50); do ss -ltn | grep -q ':6443 ' && break; sleep 0.1; done; ss -ltn | grep -q ':6443 '");
    let out = apply(&lab, &spec, &[]);
    assert_eq!(code(&out), 5, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "preflightFailed");
    let findings = report["preflight"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["host"] == "lab-1"
            && f["check"] == "ports"
            && f["seen"].as_str().unwrap_or("").contains("6443")),
        "{findings:?}"
    );
    assert_untouched(&lab);
    // Knowingly skipping that one check lets the (read-only) plan proceed.
    let out = lab.run(&[
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "--skip-check",
        "ports",
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    lab.ssh_ok(lab.host("lab-1"), "systemctl stop kg-squat");

    // A dry run lists changes for every host and changes nothing.
    let out = lab.run(&["plan", "-f", spec.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let plan = json(&out);
    for h in plan["hosts"].as_array().expect("hosts") {
        assert!(
            h["changed"].as_u64().unwrap() > 0,
            "plan shows no change for {h}"
        );
    }
    assert_untouched(&lab);

    // The install.
    let out = apply(&lab, &spec, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "succeeded");
    assert!(total_changed(&report) > 0);
    for h in &lab.hosts {
        let state = lab.ssh_ok(
            h,
            "systemctl is-active containerd; grep -c 'SystemdCgroup = true' /etc/containerd/config.toml; \
             grep -o 'sandbox = \"[^\"]*\"' /etc/containerd/config.toml; cat /proc/sys/net/ipv4/ip_forward; \
             grep -v '^#' /etc/modules-load.d/kubegrid.conf | sort | tr '\\n' ' '; echo; swapon --show=NAME --noheadings | wc -l",
        );
        let lines: Vec<&str> = state.lines().collect();
        assert_eq!(lines[0], "active", "{}: {state}", h.name);
        assert_eq!(
            lines[1], "1",
            "{}: runc must use the systemd cgroup driver",
            h.name
        );
        assert_eq!(
            lines[2], "sandbox = \"registry.k8s.io/pause:3.10\"",
            "{}",
            h.name
        );
        assert_eq!(lines[3], "1", "{}: ip_forward", h.name);
        assert!(
            lines[4].contains("br_netfilter") && lines[4].contains("overlay"),
            "{}: {state}",
            h.name
        );
        assert_eq!(lines[5], "0", "{}: swap must be off", h.name);
        // The lab's spec asks for containerd 2.1 from the release archive: sid's 2.1.9 in
        // /usr/local under kubegrid's unit, reading the version 3 config, with runc in
        // /usr/local/sbin; no package was installed.
        let runtime = lab.ssh_ok(
            h,
            "/usr/local/bin/containerd --version; grep -c '^version = 3$' /etc/containerd/config.toml; \
             systemctl show -p ExecStart --value containerd | grep -o 'path=[^ ;]*'; \
             head -c 21 /etc/systemd/system/containerd.service; echo; command -v runc; \
             dpkg -s containerd >/dev/null 2>&1 && echo package || echo no-package",
        );
        let lines: Vec<&str> = runtime.lines().collect();
        assert!(lines[0].contains(" 2.1.9"), "{}: {runtime}", h.name);
        assert_eq!(lines[1], "1", "{}: {runtime}", h.name);
        assert_eq!(lines[2], "path=/usr/local/bin/containerd", "{}", h.name);
        assert_eq!(lines[3], "# Written by kubegrid", "{}", h.name);
        assert_eq!(lines[4], "/usr/local/sbin/runc", "{}", h.name);
        assert_eq!(lines[5], "no-package", "{}", h.name);
        // A container of our own, run with plain ctr from the rootfs the bundle shipped.
        let said = lab.ssh_ok(
            h,
            "r=$(ls -d /var/lib/kubegrid/state/rootfs/*/ | head -1) && ctr run --rm --rootfs \"$r\" e2e-$$ /bin/busybox echo hello-from-e2e",
        );
        assert_eq!(said, "hello-from-e2e", "{}", h.name);
    }

    // Idempotence: a second apply changes nothing.
    let out = apply(&lab, &spec, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        total_changed(&json(&out)),
        0,
        "re-apply changed something:\n{}",
        describe(&out)
    );

    // The journal has every operation, and one host's events on request.
    let hist = json(&lab.run(&["history", "-o", "json"]));
    let ops = hist["operations"].as_array().expect("operations");
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["succeeded", "succeeded", "succeeded", "succeeded", "failed"],
        "{hist}"
    );
    let last = ops[1]["id"].as_i64().unwrap().to_string();
    let logs = json(&lab.run(&["logs", &last, "--host", "lab-4", "-o", "json"]));
    let events = logs["events"].as_array().expect("events");
    assert!(
        !events.is_empty() && events.iter().all(|e| e["host"] == "lab-4"),
        "{logs}"
    );

    // A changed host key is refused, naming both fingerprints and the command to accept it.
    let h3 = lab.host("lab-3");
    lab.ssh_ok(h3, "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh");
    let out = apply(&lab, &spec, &[]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    let report = json(&out);
    let h = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "lab-3")
        .expect("lab-3");
    let error = h["error"].as_str().expect("error");
    assert!(
        error.contains("changed") && error.matches("SHA256:").count() >= 2,
        "{error}"
    );
    assert!(error.contains("kubegrid host-key accept lab-3"), "{error}");
    let offered = error
        .split("offered ")
        .nth(1)
        .and_then(|s| s.split([';', ' ', '\n']).next())
        .expect("offered fingerprint");
    let out = lab.run(&[
        "host-key",
        "accept",
        "lab-3",
        "--cluster",
        "lab",
        "--fingerprint",
        offered,
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = apply(&lab, &spec, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(total_changed(&json(&out)), 0);
}

/// Starts `apply` and returns it once its progress says `phase` began.
fn apply_until_phase(lab: &LabGuard, phase: &str) -> (Child, Vec<String>) {
    let mut child = lab
        .command(&[
            "apply",
            "-f",
            lab.spec().to_str().unwrap(),
            "-o",
            "json",
            "--until",
            RUNTIME,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start apply");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next() {
        let line = line.expect("read stderr");
        let hit = line.contains(&format!("phase {phase}:"));
        seen.push(line);
        if hit {
            // Keep draining, so the rest of the run never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, seen);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("apply ended before phase {phase}:\n{}", seen.join("\n"));
}

#[test]
fn killed_apply_and_killed_host_are_recorded_and_the_next_apply_converges() {
    let lab = LabGuard::up(3);

    // The engine itself is killed mid-operation: the journal stays consistent.
    let (mut child, _) = apply_until_phase(&lab, "container-runtime");
    child.kill().expect("kill apply");
    child.wait().expect("reap apply");
    let hist = json(&lab.run(&["history", "-o", "json"]));
    assert_eq!(hist["operations"][0]["status"], "interrupted", "{hist}");

    // A host dies mid-operation: it alone fails, with its reason; the others finish.
    let (child, _) = apply_until_phase(&lab, "container-runtime");
    let out = lab.kubegrid(&["kill", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = child.wait_with_output().expect("wait apply");
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let report = json(&out);
    for h in report["hosts"].as_array().unwrap() {
        if h["name"] == "lab-2" {
            assert_eq!(h["ok"], false, "{h}");
            assert!(!h["error"].as_str().unwrap_or("").is_empty(), "{h}");
        } else {
            assert_eq!(h["ok"], true, "{h}");
        }
    }
    for name in ["lab-1", "lab-3"] {
        assert_eq!(
            lab.ssh_ok(lab.host(name), "systemctl is-active containerd"),
            "active"
        );
    }

    // Back up, the next apply converges: lab-2 catches up, the others have nothing to do.
    let out = lab.kubegrid(&["start", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = apply(&lab, &lab.spec(), &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["ok"], true, "{h}");
        if h["name"] != "lab-2" {
            assert_eq!(h["changed"], 0, "{h}");
        }
    }
    assert_eq!(
        lab.ssh_ok(lab.host("lab-2"), "systemctl is-active containerd"),
        "active"
    );
    let hist = json(&lab.run(&["history", "-o", "json"]));
    let statuses: Vec<&str> = hist["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "interrupted"], "{hist}");
}
