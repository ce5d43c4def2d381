//! The Kubernetes bootstrap on lab hosts: real external etcd with kubegrid's certificates,
//! and kubeadm, kubelet, kubectl and crictl as STAND-INS (e2e/src/bin/kubegrid-standin),
//! because no registry here provides Kubernetes 1.3x binaries. The stand-ins record how they
//! were invoked and validate their inputs; this test reads those records back.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use kubegrid_e2e::{Host, LabGuard, bundle_dir, bundle_public_key, describe, json, kubegrid_bin};
use serde_json::Value;

const STANDIN_LOG: &str = "/var/log/kubegrid-standins/invocations.jsonl";
const ETCDCTL: &str = "ETCDCTL_API=3 /usr/local/bin/etcdctl --cacert /etc/etcd/pki/ca.crt \
    --cert /etc/etcd/pki/healthcheck-client.crt --key /etc/etcd/pki/healthcheck-client.key \
    --command-timeout 10s";

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The lab spec with a kube-vip VIP as the endpoint and only the Nodes in `keep`.
fn spec_with(lab: &LabGuard, name: &str, vip: &str, keep: &[&str]) -> PathBuf {
    let text = fs::read_to_string(lab.spec()).expect("read lab spec");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml doc"))
        .collect();
    let mut out = Vec::new();
    for mut d in docs {
        if d["kind"] == "Cluster" {
            d["spec"]["controlPlaneEndpoint"] =
                serde_yaml::from_str(&format!("{{vip: \"{vip}\", port: 6443}}")).unwrap();
        }
        let keep_it = d["kind"] != "Node"
            || keep.contains(&d["metadata"]["name"].as_str().unwrap_or_default());
        if keep_it {
            out.push(serde_yaml::to_string(&d).expect("yaml"));
        }
    }
    let path = lab.state_dir.join(format!("specs-e2e-{name}.yaml"));
    fs::write(&path, out.join("---\n")).expect("write spec");
    path
}

/// Every stand-in invocation recorded on `host`, in order.
fn invocations(lab: &LabGuard, host: &Host) -> Vec<Value> {
    lab.ssh_ok(host, &format!("cat {STANDIN_LOG} 2>/dev/null || true"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("invocation line is JSON"))
        .collect()
}

fn kubeadm_calls<'a>(calls: &'a [Value], verb: &str) -> Vec<&'a Value> {
    calls
        .iter()
        .filter(|c| c["standin"] == "kubeadm" && c["argv"][1] == verb)
        .collect()
}

fn doc<'a>(config: &'a Value, kind: &str) -> &'a Value {
    config
        .as_array()
        .and_then(|docs| docs.iter().find(|d| d["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} in {config}"))
}

/// When `host`'s etcd last went down and came up again (CLOCK_MONOTONIC in microseconds,
/// which lab hosts share with the machine, so hosts compare).
fn etcd_window(lab: &LabGuard, host: &Host) -> (u64, u64) {
    let text = lab.ssh_ok(
        host,
        "systemctl show etcd.service -p InactiveEnterTimestampMonotonic -p ActiveEnterTimestampMonotonic",
    );
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    (
        value("InactiveEnterTimestampMonotonic"),
        value("ActiveEnterTimestampMonotonic"),
    )
}

/// Apply with the API checks skipped: no kube-apiserver runs on these lab hosts.
fn apply(lab: &LabGuard, spec: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--skip-check", "cluster-api"];
    args.extend_from_slice(extra);
    lab.apply_json(spec, &args)
}

#[test]
fn ha_control_plane_with_external_etcd_joins_in_order_and_workers_come_and_go() {
    eprintln!(
        "NOTE: kubeadm, kubelet, kubectl and crictl on these lab hosts are STAND-INS \
         (e2e/src/bin/kubegrid-standin), not upstream binaries; etcd is Debian's real etcd. \
         The API checks are skipped (--skip-check cluster-api): no kube-apiserver runs here."
    );
    let lab = LabGuard::up(6);
    let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    let first = &lab.hosts[0].address;
    let vip = format!("{}.200", first.rsplit_once('.').unwrap().0);
    let all = spec_with(&lab, "all", &vip, &names);

    // A VIP something already answers on (the machine's own bridge address) is refused by
    // preflight, before any host is changed.
    let bridge = format!("{}.1", first.rsplit_once('.').unwrap().0);
    let taken = spec_with(&lab, "taken", &bridge, &names);
    let out = apply(&lab, &taken, &[]);
    assert_eq!(code(&out), 5, "{}", describe(&out));
    let findings = json(&out)["preflight"].to_string();
    assert!(findings.contains("\"check\":\"vip\""), "{findings}");
    assert_eq!(
        lab.ssh_ok(&lab.hosts[0], "test -e /etc/kubernetes || echo untouched"),
        "untouched"
    );

    let out = apply(&lab, &all, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "succeeded", "{report}");

    // The kubeconfig is written private and names the VIP.
    let kubeconfig = lab.state_dir.join("admin.conf");
    let mode = fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let kc = fs::read_to_string(&kubeconfig).unwrap();
    assert!(kc.contains(&format!("https://{vip}:6443")), "{kc}");
    assert!(kc.contains("client-key-data"), "{kc}");

    // Real etcd, TLS with kubegrid's certificates, healthy on every member.
    let etcd_hosts = &lab.hosts[..3];
    for h in etcd_hosts {
        let health = lab.ssh_ok(
            h,
            &format!(
                "{ETCDCTL} --endpoints https://{}:2379 endpoint health 2>&1",
                h.address
            ),
        );
        assert!(health.contains("is healthy"), "{}: {health}", h.name);
        let mode = lab.ssh_ok(h, "stat -c %a /etc/etcd/pki/server.key");
        assert_eq!(mode, "600", "{}", h.name);
    }
    let members = lab.ssh_ok(&lab.hosts[0], &format!("{ETCDCTL} member list"));
    assert_eq!(members.lines().count(), 3, "{members}");

    // Stand-in records: init on lab-1 with a v1beta4 config naming the VIP, the external
    // etcd members, the CIDRs, the systemd cgroup driver and the control-plane taint.
    let calls: Vec<Vec<Value>> = lab.hosts.iter().map(|h| invocations(&lab, h)).collect();
    let inits = kubeadm_calls(&calls[0], "init");
    assert_eq!(inits.len(), 1, "{:?}", calls[0]);
    let init = inits[0];
    assert_eq!(init["ok"], true, "{init}");
    let config = &init["config"];
    let cc = doc(config, "ClusterConfiguration");
    assert_eq!(cc["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(cc["controlPlaneEndpoint"], format!("{vip}:6443"));
    assert_eq!(cc["networking"]["podSubnet"], "10.244.0.0/16");
    assert_eq!(cc["networking"]["serviceSubnet"], "10.96.0.0/12");
    let endpoints: Vec<String> = etcd_hosts
        .iter()
        .map(|h| format!("https://{}:2379", h.address))
        .collect();
    assert_eq!(
        cc["etcd"]["external"]["endpoints"],
        serde_json::json!(endpoints)
    );
    assert_eq!(
        doc(config, "KubeletConfiguration")["cgroupDriver"],
        "systemd"
    );
    let ic = doc(config, "InitConfiguration");
    assert_eq!(ic["nodeRegistration"]["name"], "lab-1");
    let taints = ic["nodeRegistration"]["taints"].to_string();
    assert!(
        taints.contains("node-role.kubernetes.io/control-plane"),
        "{taints}"
    );
    for other in &calls[1..] {
        assert!(kubeadm_calls(other, "init").is_empty(), "init ran twice");
    }

    // Joins: control-plane hosts with the certificate key, after init; workers after them.
    let at = |c: &Value| c["unixNanos"].as_u64().expect("unixNanos");
    let mut cp_joins = Vec::new();
    let mut worker_joins = Vec::new();
    for (i, h) in lab.hosts.iter().enumerate().skip(1) {
        let joins = kubeadm_calls(&calls[i], "join");
        assert_eq!(joins.len(), 1, "{}: {:?}", h.name, calls[i]);
        let join = joins[0];
        assert_eq!(join["ok"], true, "{join}");
        let jc = doc(&join["config"], "JoinConfiguration");
        assert_eq!(jc["nodeRegistration"]["name"], h.name.as_str());
        let discovery = &jc["discovery"]["bootstrapToken"];
        assert_eq!(discovery["apiServerEndpoint"], format!("{vip}:6443"));
        assert!(
            discovery["caCertHashes"][0]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        if i < 3 {
            assert!(jc["controlPlane"]["certificateKey"].is_string(), "{jc}");
            cp_joins.push(at(join));
        } else {
            assert!(jc["controlPlane"].is_null(), "{jc}");
            worker_joins.push(at(join));
        }
    }
    let init_at = at(init);
    assert!(cp_joins.iter().all(|&t| t > init_at), "joins before init");
    let last_cp = *cp_joins.iter().max().unwrap();
    assert!(
        worker_joins.iter().all(|&t| t > last_cp),
        "a worker joined before the control plane"
    );

    // The configs that carried the secrets are gone once used.
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(
                h,
                "ls /etc/kubernetes/kubegrid/kubeadm-*.yaml 2>/dev/null | wc -l"
            ),
            "0",
            "{}",
            h.name
        );
    }

    // The join token never reached the journal.
    let token = doc(config, "InitConfiguration")["bootstrapTokens"][0]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let journal = fs::read(lab.journal()).unwrap();
    let wal = fs::read(lab.journal().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&journal, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the bootstrap token is in the journal"
        );
    }

    // A re-apply changes nothing.
    let out = apply(&lab, &all, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let again = json(&out);
    let changed: u64 = again["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["changed"].as_u64().unwrap())
        .sum();
    assert_eq!(changed, 0, "{}", describe(&out));

    // etcd members whose inputs changed (here: no record of what they last started with)
    // restart one at a time, each serving again before the next goes down.
    let up_before: Vec<u64> = etcd_hosts.iter().map(|h| etcd_window(&lab, h).1).collect();
    for h in etcd_hosts {
        lab.ssh_ok(h, "rm /var/lib/kubegrid/state/units/etcd.service.sha256");
    }
    let out = apply(&lab, &all, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let mut windows: Vec<(u64, u64)> = etcd_hosts.iter().map(|h| etcd_window(&lab, h)).collect();
    for (i, (down, up)) in windows.iter().enumerate() {
        assert!(
            *down > up_before[i] && up > down,
            "{} was not restarted: {windows:?}",
            etcd_hosts[i].name
        );
    }
    windows.sort();
    for pair in windows.windows(2) {
        assert!(
            pair[1].0 > pair[0].1,
            "two etcd members were down at once (down, up in monotonic us): {windows:?}"
        );
    }

    // A journal that did not install this cluster holds none of its CAs: apply refuses
    // rather than write a new CA over the cluster's, and changes nothing.
    let stranger = lab.state_dir.join("other-journal.db");
    let out = std::process::Command::new(kubegrid_bin())
        .args(["apply", "-f", all.to_str().unwrap(), "--bundle"])
        .arg(bundle_dir())
        .arg("--bundle-public-key")
        .arg(bundle_public_key())
        .args(["--skip-check", "cluster-api", "--journal"])
        .arg(&stranger)
        .output()
        .expect("run kubegrid");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no kubernetes-ca"), "{stderr}");

    // lab-6 leaves the spec: without an API its drain cannot happen, so it stays joined.
    let five = spec_with(&lab, "five", &vip, &names[..5]);
    let lab6 = &lab.hosts[5];
    let out = apply(&lab, &five, &[]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let removed = &json(&out)["kubernetes"]["removed"][0];
    assert_eq!(removed["name"], "lab-6");
    assert_eq!(removed["ok"], false);
    assert!(
        removed["detail"].as_str().unwrap().contains("drain failed"),
        "{removed}"
    );
    lab.ssh_ok(lab6, "test -e /etc/kubernetes/kubelet.conf && echo joined");

    // Forced, it is reset.
    let out = apply(&lab, &five, &["--force-remove"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out)["kubernetes"]["removed"][0]["ok"], true);
    assert_eq!(
        lab.ssh_ok(lab6, "test -e /etc/kubernetes/kubelet.conf || echo reset"),
        "reset"
    );
    assert_eq!(kubeadm_calls(&invocations(&lab, lab6), "reset").len(), 1);

    // Back in the spec, it joins again with a fresh token.
    let out = apply(&lab, &all, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(kubeadm_calls(&invocations(&lab, lab6), "join").len(), 2);
    let lab1 = invocations(&lab, &lab.hosts[0]);
    assert_eq!(kubeadm_calls(&lab1, "token").len(), 1, "{lab1:?}");

    // etcd: a write on one member is read on another, and survives losing a member.
    let put = |h: &Host, k: &str| {
        lab.ssh_ok(
            h,
            &format!(
                "{ETCDCTL} --endpoints https://{}:2379 put {k} v-{k}",
                h.address
            ),
        )
    };
    let get = |h: &Host, k: &str| {
        lab.ssh_ok(
            h,
            &format!(
                "{ETCDCTL} --endpoints https://{}:2379 get {k} --print-value-only",
                h.address
            ),
        )
    };
    assert_eq!(put(&lab.hosts[0], "one"), "OK");
    assert_eq!(get(&lab.hosts[1], "one"), "v-one");
    let out = lab.kubegrid(&["kill", "lab-3"]);
    assert!(out.status.success(), "{}", describe(&out));
    // If lab-3 led, the others elect a new leader first; a write succeeds once they have.
    let deadline = Instant::now() + Duration::from_secs(30);
    let put_two = format!(
        "{ETCDCTL} --endpoints https://{}:2379 put two v-two",
        lab.hosts[0].address
    );
    loop {
        let out = lab.ssh(&lab.hosts[0], &put_two);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcd stayed unwritable after losing lab-3: {}",
            describe(&out)
        );
    }
    assert_eq!(get(&lab.hosts[1], "two"), "v-two");
}
