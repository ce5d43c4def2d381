//! Fixtures: Nodes, clusters, bundles, and short views of a plan.

use std::fs;
use std::path::{Path, PathBuf};

use kubegrid_upgrade::{
    Available, Blocker, ClusterState, EtcdState, EtcdTopology, NodeState, Plan, Policy, Roles,
    Step, Targets, plan,
};
use semver::Version;

pub fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// A control-plane + external etcd member at Kubernetes `k`, etcd `etcd`, containerd `c`.
pub fn cp(name: &str, k: &str, etcd: &str, c: &str) -> NodeState {
    NodeState {
        name: name.into(),
        roles: Roles {
            control_plane: true,
            etcd: true,
            worker: false,
        },
        reachable: true,
        ready: Some(true),
        apiserver: Some(v(k)),
        kubeadm: Some(v(k)),
        kubelet: Some(v(k)),
        etcd: Some(v(etcd)),
        containerd: Some(v(c)),
        cordoned: false,
    }
}

/// A worker with kubelet and kubeadm at `k`, containerd `c`.
pub fn worker(name: &str, k: &str, c: &str) -> NodeState {
    NodeState {
        name: name.into(),
        roles: Roles {
            control_plane: false,
            etcd: false,
            worker: true,
        },
        reachable: true,
        ready: Some(true),
        apiserver: None,
        kubeadm: Some(v(k)),
        kubelet: Some(v(k)),
        etcd: None,
        containerd: Some(v(c)),
        cordoned: false,
    }
}

/// A cluster with healthy external etcd on its etcd-role Nodes.
pub fn cluster(nodes: Vec<NodeState>) -> ClusterState {
    let members = nodes.iter().filter(|n| n.roles.etcd).count();
    ClusterState {
        cluster: "lab".into(),
        nodes,
        etcd: EtcdState {
            topology: EtcdTopology::External,
            members,
            healthy: members,
            unhealthy: Vec::new(),
        },
        pdbs: Vec::new(),
    }
}

/// Three control-plane/etcd Nodes and `workers` workers, all at `k`, etcd `etcd`,
/// containerd `c`.
pub fn uniform(k: &str, etcd: &str, c: &str, workers: usize) -> ClusterState {
    let mut nodes: Vec<NodeState> = (1..=3)
        .map(|i| cp(&format!("cp-{i}"), k, etcd, c))
        .collect();
    nodes.extend((1..=workers).map(|i| worker(&format!("w-{i}"), k, c)));
    cluster(nodes)
}

/// The lead's e2e cluster: 3 control-plane/etcd + 2 workers at 1.31.4, etcd 3.4.23,
/// containerd 1.6.20.
pub fn lab() -> ClusterState {
    uniform("1.31.4", "3.4.23", "1.6.20", 2)
}

/// The e2e's targets: 1.33.4, etcd 3.5.30, containerd 2.1.9.
pub fn lab_targets() -> Targets {
    targets("1.33.4", Some("3.5.30"), Some("2.1.9"))
}

pub fn targets(k: &str, etcd: Option<&str>, c: Option<&str>) -> Targets {
    Targets {
        kubernetes: v(k),
        etcd: etcd.map(v),
        containerd: c.map(v),
    }
}

/// A bundle with several patches per minor from 1.28 to 1.36.
pub fn bundle() -> Available {
    let list = |l: &[&str]| l.iter().map(|s| v(s)).collect();
    Available {
        kubernetes: list(&[
            "1.28.15", "1.29.15", "1.30.14", "1.31.4", "1.31.12", "1.32.4", "1.33.1", "1.33.4",
            "1.34.2", "1.35.1", "1.36.0",
        ]),
        etcd: list(&["3.4.23", "3.5.16", "3.5.30", "3.6.5"]),
        containerd: list(&["1.6.20", "1.7.24", "2.1.9", "2.2.1", "2.3.0"]),
    }
}

/// `bundle()` without the listed versions (any component).
pub fn bundle_without(drop: &[&str]) -> Available {
    let mut a = bundle();
    for d in drop {
        let d = v(d);
        a.kubernetes.retain(|x| *x != d);
        a.etcd.retain(|x| *x != d);
        a.containerd.retain(|x| *x != d);
    }
    a
}

pub fn one() -> Policy {
    Policy { max_unavailable: 1 }
}

/// Plans with `bundle()` and maxUnavailable 1.
pub fn plan_of(state: &ClusterState, t: &Targets) -> Plan {
    plan(state, t, &bundle(), &one())
}

/// The step ids in order.
pub fn ids(p: &Plan) -> Vec<String> {
    p.steps.iter().map(Step::id).collect()
}

/// The rule ids of the blockers, sorted and unique.
pub fn rules(p: &Plan) -> Vec<String> {
    let mut r: Vec<String> = p.blockers.iter().map(|b| b.rule.clone()).collect();
    r.sort();
    r.dedup();
    r
}

/// The blocker with rule `rule`, or a panic showing all of them.
pub fn blocker<'a>(p: &'a Plan, rule: &str) -> &'a Blocker {
    p.blockers
        .iter()
        .find(|b| b.rule == rule)
        .unwrap_or_else(|| panic!("no `{rule}` blocker in {:#?}", p.blockers))
}

/// The kubelet versions `node` is rolled to, in order.
pub fn roll_path(p: &Plan, node: &str) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Roll { nodes, kubelet, .. } if nodes.iter().any(|n| n == node) => {
                Some(kubelet.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The versions of the kubeadm apply steps, in order.
pub fn apply_path(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::KubeadmApply { version, .. } => Some(version.to_string()),
            _ => None,
        })
        .collect()
}

/// The distinct etcd versions the members go through, in order.
pub fn etcd_path(p: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &p.steps {
        if let Step::EtcdMember { to, .. } = s
            && out.last() != Some(&to.to_string())
        {
            out.push(to.to_string());
        }
    }
    out
}

/// Index of the first step whose id starts with `prefix`.
pub fn position(p: &Plan, prefix: &str) -> usize {
    ids(p)
        .iter()
        .position(|id| id.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step `{prefix}*` in {:#?}", ids(p)))
}

pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with a golden file; UPDATE_GOLDEN=1 rewrites the file instead.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is unreadable ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "rendered output differs from {}; if the change is intended, regenerate with UPDATE_GOLDEN=1\n--- rendered ---\n{actual}",
        path.display()
    );
}
