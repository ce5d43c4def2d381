//! etcd membership of an installed cluster on lab hosts: real external etcd (the e2e bundle's
//! etcd 3.5), kubeadm and kubelet as STAND-INS (e2e/src/bin/kubegrid-standin). A fourth member
//! joins (`--force`, an even count), the init node leaves, and a killed member is replaced
//! through the spec; before each step a key is written, and after it every key written so far
//! is read back and `etcdctl member list` names exactly the spec's etcd Nodes. The refusals
//! (a quorum loss, an even count without `--force`) change no host.
//!
//! No kube-apiserver runs here, so the drain of a leaving Node cannot happen: removals pass
//! `--force-remove`, and the API checks are skipped.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use kubegrid_e2e::{Host, LabGuard, describe, json};
use serde_json::Value;

const ETCDCTL: &str = "ETCDCTL_API=3 /usr/local/bin/etcdctl --cacert /etc/etcd/pki/ca.crt \
    --cert /etc/etcd/pki/healthcheck-client.crt --key /etc/etcd/pki/healthcheck-client.key \
    --command-timeout 10s";
const STANDIN_LOG: &str = "/var/log/kubegrid-standins/invocations.jsonl";

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The lab spec with a kube-vip VIP and only the Nodes in `keep`, each a control-plane/etcd
/// member (external etcd).
fn members_spec(lab: &LabGuard, name: &str, vip: &str, keep: &[&str]) -> PathBuf {
    let text = fs::read_to_string(lab.spec()).expect("read lab spec");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml doc"))
        .collect();
    let mut out = Vec::new();
    for mut d in docs {
        if d["kind"] == "Cluster" {
            d["spec"]["controlPlaneEndpoint"] =
                serde_yaml::from_str(&format!("{{vip: \"{vip}\", port: 6443}}")).unwrap();
        } else if d["kind"] == "Node" {
            if !keep.contains(&d["metadata"]["name"].as_str().unwrap_or_default()) {
                continue;
            }
            d["spec"]["roles"] = serde_yaml::from_str("[control-plane, etcd]").unwrap();
        }
        out.push(serde_yaml::to_string(&d).expect("yaml"));
    }
    let path = lab
        .state_dir
        .join(format!("specs-e2e-membership-{name}.yaml"));
    fs::write(&path, out.join("---\n")).expect("write spec");
    path
}

fn apply(lab: &LabGuard, spec: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--skip-check", "cluster-api"];
    args.extend_from_slice(extra);
    lab.apply_json(spec, &args)
}

/// Runs etcdctl on `via` against its own member; retried while a leader is elected.
fn etcdctl(lab: &LabGuard, via: &Host, args: &str) -> String {
    let cmd = format!("{ETCDCTL} --endpoints https://{}:2379 {args}", via.address);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = lab.ssh(via, &cmd);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args} on {} kept failing:\n{}",
            via.name,
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Asserts that etcd's member list names exactly `names`, every member started, and that
/// every key in `keys` reads back its value.
fn assert_members_and_data(lab: &LabGuard, via: &Host, names: &[&str], keys: &[String]) {
    let list = etcdctl(lab, via, "member list -w simple");
    let mut listed: Vec<String> = list
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split(", ").collect();
            assert_eq!(fields[1], "started", "a member is not started: {list}");
            fields[2].to_string()
        })
        .collect();
    listed.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want, "member list:\n{list}");
    for k in keys {
        assert_eq!(
            etcdctl(lab, via, &format!("get {k} --print-value-only")),
            format!("v-{k}"),
            "key {k} via {}",
            via.name
        );
    }
}

fn put(lab: &LabGuard, via: &Host, keys: &mut Vec<String>, key: &str) {
    assert_eq!(etcdctl(lab, via, &format!("put {key} v-{key}")), "OK");
    keys.push(key.to_string());
}

/// When `host`'s etcd last became active (CLOCK_MONOTONIC, microseconds).
fn etcd_started_at(lab: &LabGuard, host: &Host) -> String {
    lab.ssh_ok(
        host,
        "systemctl show etcd.service -p ActiveEnterTimestampMonotonic --value",
    )
}

/// What a refused apply must leave as it was: etcd's members, each host's stand-in record and
/// etcd unit.
fn snapshot(lab: &LabGuard, via: &Host) -> Vec<String> {
    let mut s = vec![etcdctl(lab, via, "member list -w simple")];
    for h in &lab.hosts {
        s.push(lab.ssh_ok(
            h,
            &format!(
                "wc -l < {STANDIN_LOG} 2>/dev/null || echo none; ls /etc/etcd 2>/dev/null; \
                 systemctl show etcd.service -p ActiveEnterTimestampMonotonic --value"
            ),
        ));
    }
    s
}

fn assert_refused(out: &std::process::Output, message: &str) {
    assert_eq!(code(out), 2, "{}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn etcd_members_join_leave_and_a_dead_one_is_replaced_through_the_spec() {
    eprintln!(
        "NOTE: kubeadm and kubelet on these lab hosts are STAND-INS (e2e/src/bin/kubegrid-standin); \
         etcd is the real etcd of the e2e bundle. No kube-apiserver runs: drains cannot happen, \
         so removals pass --force-remove."
    );
    let lab = LabGuard::up(5);
    let h = |i: usize| &lab.hosts[i - 1];
    let first = &h(1).address;
    let vip = format!("{}.200", first.rsplit_once('.').unwrap().0);
    let mut keys = Vec::new();

    // Three control-plane/etcd members.
    let three = members_spec(&lab, "three", &vip, &["lab-1", "lab-2", "lab-3"]);
    let out = apply(&lab, &three, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    put(&lab, h(1), &mut keys, "k1");
    assert_members_and_data(&lab, h(2), &["lab-1", "lab-2", "lab-3"], &keys);

    // Refusals, before any host is contacted: a quorum loss (even with --force), an even
    // count without --force, removing or adding.
    let before = snapshot(&lab, h(1));
    let one = members_spec(&lab, "one", &vip, &["lab-3"]);
    for extra in [&[][..], &["--force"][..]] {
        assert_refused(
            &apply(&lab, &one, extra),
            "removing lab-1 and lab-2 leaves 1 of 3 etcd members: a 3-member cluster needs 2 for quorum",
        );
    }
    let two = members_spec(&lab, "two", &vip, &["lab-2", "lab-3"]);
    assert_refused(
        &apply(&lab, &two, &[]),
        "removing lab-1 leaves 2 members, an even count that tolerates no more failures than 1; pass --force to accept",
    );
    let four = members_spec(&lab, "four", &vip, &["lab-1", "lab-2", "lab-3", "lab-4"]);
    assert_refused(
        &apply(&lab, &four, &[]),
        "adding lab-4 makes 4 members, an even count that tolerates no more failures than 3; pass --force to accept",
    );
    assert_eq!(
        snapshot(&lab, h(1)),
        before,
        "a refused apply changed a host"
    );

    // A fourth member joins the running etcd (an even count: --force); the running members
    // are not restarted. As if an earlier apply had stopped between `member add` and the
    // start, lab-4 is already in the member list, unstarted: it is started, not added twice.
    put(&lab, h(1), &mut keys, "k2");
    let started: Vec<String> = (1..=3).map(|i| etcd_started_at(&lab, h(i))).collect();
    etcdctl(
        &lab,
        h(1),
        &format!("member add lab-4 --peer-urls=https://{}:2380", h(4).address),
    );
    let out = apply(&lab, &four, &["--force"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_members_and_data(&lab, h(4), &["lab-1", "lab-2", "lab-3", "lab-4"], &keys);
    let env = lab.ssh_ok(h(4), "cat /etc/etcd/initial-cluster.env");
    assert!(env.contains("ETCD_INITIAL_CLUSTER_STATE=existing"), "{env}");
    for i in 1..=3 {
        assert_eq!(
            etcd_started_at(&lab, h(i)),
            started[i - 1],
            "lab-{i}'s etcd was restarted"
        );
    }
    // A re-apply finds lab-4 a member and adds nothing.
    let out = apply(&lab, &four, &["--force"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_members_and_data(&lab, h(2), &["lab-1", "lab-2", "lab-3", "lab-4"], &keys);

    // The init node leaves: its etcd member is removed on another member, and its host is
    // reset (kubeadm reset, which also takes kube-vip's static pod; etcd, its data and unit).
    put(&lab, h(2), &mut keys, "k3");
    assert_eq!(
        lab.ssh_ok(
            h(1),
            "test -e /etc/kubernetes/manifests/kube-vip.yaml && echo vip"
        ),
        "vip"
    );
    let without_init = members_spec(&lab, "without-init", &vip, &["lab-2", "lab-3", "lab-4"]);
    let out = apply(&lab, &without_init, &["--force-remove"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let removed = &json(&out)["kubernetes"]["removed"][0];
    assert_eq!(removed["name"], "lab-1", "{removed}");
    assert_eq!(removed["ok"], true, "{removed}");
    assert!(
        removed["detail"].as_str().unwrap().contains("etcd member"),
        "{removed}"
    );
    assert_members_and_data(&lab, h(3), &["lab-2", "lab-3", "lab-4"], &keys);
    assert_eq!(
        lab.ssh_ok(
            h(1),
            "for p in /etc/kubernetes/manifests/kube-vip.yaml /etc/systemd/system/etcd.service \
             /var/lib/etcd /etc/kubernetes/admin.conf; do test -e $p && echo $p; done; \
             systemctl is-active etcd.service || true"
        ),
        "inactive"
    );
    // The cluster carries on without its init node: a re-apply changes no member.
    let out = apply(&lab, &without_init, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_members_and_data(&lab, h(2), &["lab-2", "lab-3", "lab-4"], &keys);

    // lab-2 dies and is replaced by lab-5 in one apply: its member is removed on a healthy
    // member (no SSH to the dead host), then lab-5 joins.
    put(&lab, h(3), &mut keys, "k4");
    let out = lab.kubegrid(&["kill", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    let replaced = members_spec(&lab, "replaced", &vip, &["lab-3", "lab-4", "lab-5"]);
    let out = apply(&lab, &replaced, &["--force-remove"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let removed = &json(&out)["kubernetes"]["removed"][0];
    assert_eq!(removed["name"], "lab-2", "{removed}");
    assert_eq!(removed["ok"], true, "{removed}");
    assert_members_and_data(&lab, h(5), &["lab-3", "lab-4", "lab-5"], &keys);
    assert_members_and_data(&lab, h(3), &["lab-3", "lab-4", "lab-5"], &keys);
    // lab-3 stood in for the init node that left: it refreshed the join secrets for lab-5
    // with a kubeadm configuration naming the spec's etcd members, the new one included.
    let calls: Vec<Value> = lab
        .ssh_ok(h(3), &format!("cat {STANDIN_LOG}"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("invocation line is JSON"))
        .collect();
    let kubeadm = |verb: &str| -> Vec<&Value> {
        calls
            .iter()
            .filter(|c| c["standin"] == "kubeadm" && c["argv"][1] == verb)
            .collect()
    };
    let token = *kubeadm("token")
        .last()
        .expect("lab-3 ran kubeadm token create");
    let cc = token["config"]
        .as_array()
        .and_then(|docs| docs.iter().find(|d| d["kind"] == "ClusterConfiguration"))
        .expect("a ClusterConfiguration");
    let endpoints: Vec<String> = (3..=5)
        .map(|i| format!("https://{}:2379", h(i).address))
        .collect();
    assert_eq!(
        cc["etcd"]["external"]["endpoints"],
        serde_json::json!(endpoints),
        "{cc}"
    );
    let inits: Vec<&Value> = kubeadm("init")
        .into_iter()
        .filter(|c| c["argv"][2] != "phase")
        .collect();
    assert!(inits.is_empty(), "lab-3 ran kubeadm init: {inits:?}");
}
