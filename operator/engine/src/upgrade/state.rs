//! What the cluster runs now, read live before planning and again before every step: each
//! host's versions (one read-only round trip), each external etcd member's health (one
//! read-only check per member) and, through the Kubernetes API, each Node's readiness and
//! cordon and the PodDisruptionBudgets with the Nodes their pods run on.

use std::{collections::BTreeMap, path::PathBuf};

use kubegrid_agent::protocol::{Action, CheckArgs, CheckKind, FactsArgs, Task};
use kubegrid_upgrade::{ClusterState, EtcdState, EtcdTopology, NodeState, Roles};
use semver::Version;

use super::api::ApiState;
use crate::{
    operation::Run,
    phases::fan_out::{Job, fan_out},
};

/// The progress phase of reading versions and health.
pub const PHASE: &str = "upgrade-state";

/// What each component's version is read from, in the order looked at.
const SOURCES: &[(&str, &[&str])] = &[
    ("kubelet", &["/usr/bin/kubelet"]),
    ("kubeadm", &["/usr/bin/kubeadm"]),
    (
        "containerd",
        &["/usr/local/bin/containerd", "/usr/bin/containerd"],
    ),
    ("etcd", &["/usr/local/bin/etcd"]),
    (
        "apiserver",
        &["/etc/kubernetes/manifests/kube-apiserver.yaml"],
    ),
];

/// Versions by component ("kubelet", "kubeadm", "containerd", "etcd", "apiserver") and host
/// index; a host that did not answer has none.
pub type Versions = BTreeMap<usize, BTreeMap<String, Version>>;

/// Reads every live host's versions in one round trip each.
pub async fn read_versions(run: &mut Run) -> Versions {
    let paths: Vec<PathBuf> = SOURCES
        .iter()
        .flat_map(|(_, paths)| paths.iter().map(PathBuf::from))
        .collect();
    let jobs = run
        .live()
        .into_iter()
        .map(|index| {
            Job::read_only(
                index,
                PHASE,
                vec![Task {
                    name: "read component versions".into(),
                    action: Action::Facts(FactsArgs {
                        versions: paths.clone(),
                        ..FactsArgs::default()
                    }),
                    always: false,
                }],
            )
        })
        .collect();
    let mut out = Versions::new();
    for d in fan_out(run, PHASE, jobs).await {
        let found = match d.result {
            Ok(o) => o.facts.map(|f| f.versions).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(host = %run.reports[d.index].name, "reading versions: {e}");
                continue;
            }
        };
        out.insert(d.index, components(&found));
    }
    out
}

/// The version of each component from what the agent found, by path.
fn components(found: &BTreeMap<String, String>) -> BTreeMap<String, Version> {
    SOURCES
        .iter()
        .filter_map(|(component, paths)| {
            let text = paths.iter().find_map(|p| found.get(*p))?;
            parse(text).map(|v| (component.to_string(), v))
        })
        .collect()
}

/// `v1.31.4`, `3.4.23`, `1.6.20~ds1` (Debian's) as a semantic version; build and
/// distribution suffixes are dropped, pre-releases kept.
pub fn parse(text: &str) -> Option<Version> {
    let bare = text.trim().trim_start_matches('v');
    let bare = bare.split(['~', '+']).next().unwrap_or(bare);
    Version::parse(bare).ok()
}

/// The external etcd members (hosts with the etcd role) that answer `endpoint health` on
/// their own client port, by host index. One try each: a planner wants the state now, not
/// after a wait.
pub async fn etcd_health(run: &mut Run) -> BTreeMap<usize, bool> {
    let members: Vec<usize> = (0..run.req.hosts.len())
        .filter(|&i| run.req.hosts[i].has_role("etcd"))
        .collect();
    let argv: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("{} endpoint health", crate::membership::etcdctl::ETCDCTL),
    ];
    let live = run.live();
    let jobs = members
        .iter()
        .filter(|i| live.contains(i))
        .map(|&index| {
            Job::read_only(
                index,
                PHASE,
                vec![Task {
                    name: "etcd member answers endpoint health".into(),
                    action: Action::Check(CheckArgs {
                        check: CheckKind::CommandSucceeds {
                            argv: argv.clone(),
                            env: BTreeMap::new(),
                            expect: None,
                        },
                    }),
                    always: false,
                }],
            )
        })
        .collect();
    let mut healthy: BTreeMap<usize, bool> = members.iter().map(|&i| (i, false)).collect();
    for d in fan_out(run, PHASE, jobs).await {
        let ok = matches!(&d.result, Ok(o) if o.failure.is_none());
        healthy.insert(d.index, ok);
    }
    healthy
}

/// The planner's view of the cluster from what was read. `unreachable` hosts are those the
/// engine could not connect to.
pub fn cluster_state(
    run: &Run,
    versions: &Versions,
    etcd: &BTreeMap<usize, bool>,
    api: Option<&ApiState>,
) -> ClusterState {
    let nodes = run
        .req
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let v = versions.get(&i);
            let get = |c: &str| v.and_then(|v| v.get(c)).cloned();
            let name = &h.target.host;
            NodeState {
                name: name.clone(),
                roles: Roles {
                    control_plane: h.has_role("control-plane"),
                    etcd: h.has_role("etcd"),
                    worker: h.has_role("worker"),
                },
                reachable: run.sessions[i].is_some(),
                ready: api.and_then(|a| a.ready.get(name).copied()),
                apiserver: get("apiserver"),
                kubeadm: get("kubeadm"),
                kubelet: get("kubelet"),
                etcd: if h.has_role("etcd") {
                    get("etcd")
                } else {
                    None
                },
                containerd: get("containerd"),
                cordoned: api.is_some_and(|a| a.cordoned.contains(name)),
            }
        })
        .collect();
    let external = run.req.hosts.iter().any(|h| h.has_role("etcd"));
    let etcd = if external {
        EtcdState {
            topology: EtcdTopology::External,
            members: etcd.len(),
            healthy: etcd.values().filter(|ok| **ok).count(),
            unhealthy: etcd
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(&i, _)| run.req.hosts[i].target.host.clone())
                .collect(),
        }
    } else {
        // Stacked etcd is kubeadm's: `kubeadm upgrade apply` checks its health itself before
        // it changes anything, so it is counted as the control plane's members here.
        let members = run
            .req
            .hosts
            .iter()
            .filter(|h| h.has_role("control-plane"))
            .count();
        EtcdState {
            topology: EtcdTopology::Stacked,
            members,
            healthy: members,
            unhealthy: Vec::new(),
        }
    };
    ClusterState {
        cluster: run.req.cluster.clone(),
        nodes,
        etcd,
        pdbs: api.map(|a| a.pdbs.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_whatever_their_source_prints() {
        assert_eq!(parse("v1.31.4"), Some(Version::new(1, 31, 4)));
        assert_eq!(parse("v3.4.23"), Some(Version::new(3, 4, 23)));
        assert_eq!(parse("v1.6.20~ds1"), Some(Version::new(1, 6, 20)));
        assert_eq!(parse("1.7.24+ds1"), Some(Version::new(1, 7, 24)));
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn each_component_takes_the_first_path_found() {
        let found = BTreeMap::from([
            ("/usr/bin/containerd".to_string(), "v1.6.20~ds1".to_string()),
            (
                "/usr/local/bin/containerd".to_string(),
                "v2.1.9".to_string(),
            ),
            (
                "/etc/kubernetes/manifests/kube-apiserver.yaml".to_string(),
                "v1.32.4".to_string(),
            ),
        ]);
        let got = components(&found);
        assert_eq!(got["containerd"], Version::new(2, 1, 9));
        assert_eq!(got["apiserver"], Version::new(1, 32, 4));
        assert!(!got.contains_key("kubelet"));
    }
}
