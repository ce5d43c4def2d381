//! Lab hosts: identity, connectivity, kill/start, cut/heal, and clean teardown.

use std::{collections::HashSet, fs, path::Path};

use kubegrid_e2e::{LabGuard, describe};

#[test]
fn three_hosts_have_distinct_identities_and_reach_each_other() {
    let lab = LabGuard::up(3);
    let mut names = HashSet::new();
    let mut machine_ids = HashSet::new();
    let mut host_keys = HashSet::new();
    for h in &lab.hosts {
        let out = lab.ssh_ok(
            h,
            "hostname; cat /etc/machine-id; ip -4 -o addr show eth0 | awk '{print $4}'; \
             cat /etc/ssh/ssh_host_ed25519_key.pub; ip route | grep -c '^default' || true",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "unexpected output from {}: {out}", h.name);
        assert_eq!(lines[0], h.name, "hostname");
        assert_eq!(lines[1].len(), 32, "machine-id {}", lines[1]);
        assert_eq!(
            lines[2].split('/').next(),
            Some(h.address.as_str()),
            "address on eth0"
        );
        assert_eq!(lines[4], "0", "{} must have no default route", h.name);
        names.insert(lines[0].to_string());
        machine_ids.insert(lines[1].to_string());
        host_keys.insert(lines[3].to_string());
    }
    assert_eq!(
        (names.len(), machine_ids.len(), host_keys.len()),
        (3, 3, 3),
        "identities must differ"
    );
    let addresses: HashSet<&str> = lab.hosts.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(addresses.len(), 3);

    // Every host reaches every other by address: ICMP, and TCP to sshd.
    for from in &lab.hosts {
        for to in lab.hosts.iter().filter(|t| t.name != from.name) {
            lab.ssh_ok(
                from,
                &format!(
                    "ping -c1 -W2 {a} >/dev/null && timeout 3 bash -c '</dev/tcp/{a}/22'",
                    a = to.address
                ),
            );
        }
        // No route to anything outside the lab (a route lookup only; no packet is sent).
        let out = lab.ssh(from, "ip route get 192.0.2.1");
        assert!(
            !out.status.success(),
            "{} has a route out:\n{}",
            from.name,
            describe(&out)
        );
    }

    // The non-root user has passwordless sudo, and logins leave systemd healthy.
    let h = &lab.hosts[0];
    let out = lab.ssh_as("kube", h, "id -un; sudo -n id -u");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kube\n0");
    assert_eq!(lab.ssh_ok(h, "systemctl is-system-running"), "running");

    // The spec written for the group names every host at its address.
    let listing = lab.list();
    let spec_path = listing["specs"]["lab"].as_str().expect("spec path in list");
    let text = fs::read_to_string(spec_path).expect("spec file");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs[0]["kind"], "Cluster");
    assert_eq!(
        docs[0]["spec"]["ssh"]["privateKeyFile"].as_str(),
        lab.key.to_str()
    );
    let nodes: Vec<_> = docs[1..]
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap(),
                d["spec"]["address"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<_> = lab
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.address.as_str()))
        .collect();
    assert_eq!(nodes, expected);
}

#[test]
fn kill_start_stop_cut_and_heal() {
    let lab = LabGuard::up(3);
    let (h1, h2, h3) = (lab.host("lab-1"), lab.host("lab-2"), lab.host("lab-3"));
    let before = lab.ssh_ok(h2, "echo kept-$$ > /var/lib/e2e-marker; cat /var/lib/e2e-marker; hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub");

    let out = lab.kubegrid(&["kill", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        lab.ssh(h2, "true").status.code(),
        Some(255),
        "a killed host must not answer"
    );
    lab.ssh_ok(h1, "true");
    lab.ssh_ok(h3, "true");
    let listing = lab.list();
    assert_eq!(listing["hosts"][1]["state"], "stopped");

    let out = lab.kubegrid(&["start", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let after = lab.ssh_ok(h2, "cat /var/lib/e2e-marker; hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub");
    assert_eq!(
        after, before,
        "identity and files must survive kill and start"
    );

    let out = lab.kubegrid(&["stop", "lab-1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        lab.ssh(h1, "true").status.code(),
        Some(255),
        "a stopped host must not answer"
    );
    let out = lab.kubegrid(&["start", "lab-1"]);
    assert!(out.status.success(), "{}", describe(&out));
    lab.ssh_ok(h1, "true");

    let out = lab.kubegrid(&["cut", "lab-3"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        lab.ssh(h3, "true").status.code(),
        Some(255),
        "a cut host must not answer"
    );
    let ping = format!("ping -c1 -W1 {} >/dev/null", h3.address);
    assert!(
        !lab.ssh(h1, &ping).status.success(),
        "other hosts must not reach a cut host"
    );
    assert_eq!(lab.list()["hosts"][2]["link"], "cut");

    let out = lab.kubegrid(&["heal", "lab-3"]);
    assert!(out.status.success(), "{}", describe(&out));
    lab.ssh_ok(h3, "true");
    lab.ssh_ok(h1, &ping);
}

#[test]
fn down_leaves_no_process_mount_namespace_or_link() {
    let mut lab = LabGuard::up(2);
    let listing = lab.list();
    let id = listing["bridge"]
        .as_str()
        .unwrap()
        .trim_start_matches("kgb-")
        .to_string();
    let pids: Vec<u64> = listing["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().expect("pid"))
        .collect();
    let state_dir = lab.state_dir.clone();

    // Removing one host leaves the other running.
    let out = lab.kubegrid(&["down", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    lab.ssh_ok(&lab.hosts[0], "true");
    assert!(terminated(pids[1]), "lab-2's nspawn must be gone");
    lab.hosts.truncate(1);

    let out = lab.kubegrid(&["down", "--all"]);
    assert!(out.status.success(), "{}", describe(&out));

    for pid in &pids {
        assert!(terminated(*pid), "nspawn {pid} still runs");
    }
    let state = state_dir.to_string_lossy().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        // A zombie's cmdline is empty, so only live processes can match.
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&state),
            "process {:?} still uses the lab",
            entry.file_name()
        );
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&state), "mounts left under {state}");
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&format!("kg-{id}-")),
        "namespaces left"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(&format!("kg{id}-")) && !links.contains(&format!("kgb-{id}")),
        "links left:\n{links}"
    );
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cgroups = walk_names(&entry.path(), 4);
        assert!(
            !cgroups.iter().any(|n| n.starts_with(&format!("{id}-"))),
            "cgroups left in {:?}",
            entry.path()
        );
    }
    assert!(!state_dir.exists(), "state directory left behind");
    // The guard's own teardown now finds nothing to do.
    let again = lab.kubegrid(&["down", "--all"]);
    assert!(again.status.success(), "{}", describe(&again));
}

/// Whether a process has ended: gone from /proc, or a zombie that init has not reaped yet
/// (nspawn's parent, the `kubegrid` command, has exited, so init reaps it asynchronously).
/// Waits for that condition for up to 5 s.
fn terminated(pid: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if matches!(state, None | Some('Z' | 'X')) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Directory names up to `depth` levels below `dir`.
fn walk_names(dir: &Path, depth: usize) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|e| {
            let mut v = vec![e.file_name().to_string_lossy().to_string()];
            if depth > 1 {
                v.extend(walk_names(&e.path(), depth - 1));
            }
            v
        })
        .collect()
}

#[test]
fn harness_tears_the_lab_down_when_a_test_panics() {
    let panicked = std::thread::spawn(|| {
        let lab = LabGuard::up(1);
        std::panic::panic_any(lab.state_dir.clone());
    })
    .join()
    .expect_err("the thread panics");
    let state_dir = panicked
        .downcast::<std::path::PathBuf>()
        .expect("state dir as panic payload");
    assert!(
        !state_dir.exists(),
        "the guard must remove the lab during unwinding"
    );
}

#[test]
fn up_again_keeps_hosts_and_adds_new_ones() {
    let lab = LabGuard::up(1);
    let before = lab.ssh_ok(&lab.hosts[0], "cat /etc/machine-id");
    // Re-run without --subnet and with one more host: the lab keeps its range and lab-1.
    let out = lab.kubegrid(&["up", "--hosts", "2", "-o", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(&str, &str)> = doc["ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["systemState"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("lab-1", "already-running"), ("lab-2", "running")]);
    assert_eq!(
        lab.ssh_ok(&lab.hosts[0], "cat /etc/machine-id"),
        before,
        "lab-1 must be untouched"
    );
    let lab2 = kubegrid_e2e::Host {
        name: "lab-2".into(),
        address: doc["ready"][1]["address"].as_str().unwrap().into(),
    };
    assert!(
        lab2.address
            .starts_with(lab.subnet.trim_end_matches("0/24")),
        "lab-2 at {}",
        lab2.address
    );
    assert_eq!(lab.ssh_ok(&lab2, "hostname"), "lab-2");
}
