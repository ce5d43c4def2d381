//! The order of an upgrade as the stand-ins recorded it on the hosts (kubeadm's upgrade
//! calls, each kubelet start with the version it claims) and as the API stand-in recorded
//! the cordons and uncordons.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::bed::{Bed, MEMBERS};

/// One stand-in invocation.
#[derive(Debug, Clone)]
pub struct Call {
    /// Host it ran on.
    pub host: String,
    /// `kubeadm`, `kubelet`, ...
    pub standin: String,
    /// Its arguments after the program.
    pub args: Vec<String>,
    /// The version the binary claims.
    pub version: String,
    /// When it started, ns since the epoch.
    pub at: u128,
    /// It succeeded.
    pub ok: bool,
}

/// Every stand-in call on `hosts`, in time order.
pub fn calls(bed: &Bed, hosts: &[&str]) -> Vec<Call> {
    let mut all = Vec::new();
    for host in hosts {
        let text = bed.lab.ssh_ok(
            bed.lab.host(host),
            "cat /var/log/kubegrid-standins/invocations.jsonl",
        );
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).expect("a record is JSON");
            let argv: Vec<String> = v["argv"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            all.push(Call {
                host: host.to_string(),
                standin: v["standin"].as_str().unwrap_or_default().to_string(),
                args: argv.into_iter().skip(1).collect(),
                version: v["version"].as_str().unwrap_or_default().to_string(),
                at: v["unixNanos"].as_u64().map(u128::from).unwrap_or_default(),
                ok: v["ok"] == true,
            });
        }
    }
    all.sort_by_key(|c| c.at);
    all
}

/// `kubeadm upgrade ...` calls that succeeded.
pub fn kubeadm_upgrades(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| {
            c.standin == "kubeadm" && c.ok && c.args.first().map(String::as_str) == Some("upgrade")
        })
        .filter(|c| matches!(c.args.get(1).map(String::as_str), Some("apply" | "node")))
        .collect()
}

/// When `node` was cordoned and uncordoned by the upgrade, as the API stand-in applied the
/// patches: `(cordoned, uncordoned)` pairs in ns since the epoch.
fn cordons(bed: &Bed, node: &str) -> Vec<(u128, u128)> {
    let state = bed.fake.state();
    let mut out = Vec::new();
    let mut since = None;
    for p in state.node_patches.iter().filter(|p| p.node == node) {
        let at =
            p.at.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos();
        match &p.body["spec"]["unschedulable"] {
            Value::Bool(true) => since = since.or(Some(at)),
            Value::Null if p.body["spec"].get("unschedulable").is_some() => {
                if let Some(from) = since.take() {
                    out.push((from, at));
                }
            }
            _ => {}
        }
    }
    assert!(since.is_none(), "{node} was left cordoned");
    out
}

/// Control plane before workers, no two workers cordoned at once (maxUnavailable 1), and
/// every Node's new kubelet started inside its cordon.
pub fn assert_order(bed: &Bed) {
    let workers: Vec<&str> = bed.workers.iter().map(String::as_str).collect();
    let hosts: Vec<&str> = MEMBERS.iter().chain(&workers).copied().collect();
    let calls = calls(bed, &hosts);
    let upgrades = kubeadm_upgrades(&calls);
    let last_cp = upgrades
        .iter()
        .filter(|c| MEMBERS.contains(&c.host.as_str()))
        .map(|c| c.at)
        .max()
        .expect("kubeadm upgrade ran on the control plane");
    let first_worker = upgrades
        .iter()
        .filter(|c| workers.contains(&c.host.as_str()))
        .map(|c| c.at)
        .min()
        .expect("kubeadm upgrade node ran on the workers");
    assert!(
        last_cp < first_worker,
        "a worker was upgraded before the control plane finished: {upgrades:?}"
    );
    let applies: Vec<(&str, &str)> = upgrades
        .iter()
        .filter(|c| c.args.get(1).map(String::as_str) == Some("apply"))
        .map(|c| (c.host.as_str(), c.args.get(2).map_or("", String::as_str)))
        .collect();
    assert_eq!(
        applies,
        [("lab-1", "v1.32.4"), ("lab-1", "v1.33.4")],
        "{upgrades:?}"
    );

    let w: Vec<Vec<(u128, u128)>> = workers.iter().map(|n| cordons(bed, n)).collect();
    for (i, first) in w.iter().enumerate() {
        for second in &w[i + 1..] {
            for a in first {
                for b in second {
                    assert!(
                        a.1 <= b.0 || b.1 <= a.0,
                        "two workers were cordoned at once: {a:?} {b:?}"
                    );
                }
            }
        }
    }
    for node in &hosts {
        let windows = cordons(bed, node);
        assert!(!windows.is_empty(), "{node} was never cordoned");
        let new_kubelets: Vec<&super::records::Call> = calls
            .iter()
            .filter(|c| c.host == *node && c.standin == "kubelet")
            .filter(|c| !c.args.iter().any(|a| a.starts_with("--version")))
            .filter(|c| c.version == "v1.33.4")
            .collect();
        let first = new_kubelets
            .first()
            .unwrap_or_else(|| panic!("{node}: no kubelet v1.33.4 ever started"));
        assert!(
            windows
                .iter()
                .any(|(from, to)| *from < first.at && first.at < *to),
            "{node}: the kubelet v1.33.4 started at {} outside every cordon {windows:?}",
            first.at
        );
    }
}
