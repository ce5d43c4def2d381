//! Refusals that need no plan: the policy, Nodes that cannot be upgraded now (unreachable,
//! NotReady, unknown versions), etcd health, downgrades, and PodDisruptionBudgets that would
//! block a drain.

use std::collections::BTreeSet;

use semver::Version;

use crate::plan::Blocker;
use crate::state::{ClusterState, EtcdTopology, NodeState, Policy, Targets};
use crate::versions::same_line;

/// The policy is usable.
pub fn policy(policy: &Policy, out: &mut Vec<Blocker>) {
    if policy.max_unavailable == 0 {
        out.push(Blocker::new(
            None,
            "policy",
            "maxUnavailable is 0, so no worker could ever be drained",
            "maxUnavailable of 1 or more",
            "set spec.upgrade.maxUnavailable to 1 (the default) or more",
        ));
    }
}

/// Every Node answers and is Ready, and its versions are known.
pub fn nodes(state: &ClusterState, targets: &Targets, out: &mut Vec<Blocker>) {
    for n in &state.nodes {
        if !n.reachable {
            out.push(Blocker::new(
                Some(&n.name),
                "unreachable",
                "the Node did not answer over SSH",
                "every Node reachable before an upgrade starts",
                "bring the host back (or fix SSH access) and plan again",
            ));
            // Its versions are unknown for that reason; one blocker is enough.
            continue;
        }
        if n.ready == Some(false) {
            out.push(Blocker::new(
                Some(&n.name),
                "not-ready",
                "the Node is NotReady",
                "every Node Ready before an upgrade starts",
                "check `kubectl describe node` and the kubelet's journal on the host, fix it, \
                 and plan again",
            ));
        }
        let kube_node = n.roles.control_plane || n.roles.worker || n.kubelet.is_some();
        let mut unknown = Vec::new();
        if n.roles.control_plane && n.apiserver.is_none() {
            unknown.push("kube-apiserver (no readable image tag in its static pod manifest)");
        }
        if kube_node && n.kubelet.is_none() {
            unknown.push("kubelet");
        }
        if n.roles.etcd && state.etcd.topology == EtcdTopology::External && n.etcd.is_none() {
            unknown.push("etcd");
        }
        if kube_node && targets.containerd.is_some() && n.containerd.is_none() {
            unknown.push("containerd");
        }
        if !unknown.is_empty() {
            out.push(Blocker::new(
                Some(&n.name),
                "version-unknown",
                &format!("the version of {} is unknown", unknown.join(", ")),
                "every component's version known before planning",
                "check that the component is installed and running on the host (a failed \
                 install must be finished with `kubegrid apply` first)",
            ));
        }
    }
}

/// etcd has quorum and every member is healthy.
pub fn etcd(state: &ClusterState, out: &mut Vec<Blocker>) {
    let e = &state.etcd;
    if e.members > 0 && e.healthy <= e.members / 2 {
        out.push(Blocker::new(
            None,
            "etcd-quorum",
            &format!(
                "etcd has {} healthy of {} members, which is no quorum",
                e.healthy, e.members
            ),
            &format!(
                "at least {} healthy members (a majority of {})",
                e.members / 2 + 1,
                e.members
            ),
            "restore the failed members (or replace them through the spec) before upgrading",
        ));
    }
    for m in &e.unhealthy {
        out.push(Blocker::new(
            Some(m),
            "etcd-unhealthy",
            "its etcd member is not healthy",
            "every etcd member healthy, since an upgrade takes one member down at a time",
            "check `etcdctl endpoint health` and the member's journal; heal or replace it first",
        ));
    }
}

/// No component would move backwards: a lower minor is refused, and so is a lower patch. One
/// blocker per Node for its Kubernetes components, one each for etcd and containerd.
pub fn downgrades(state: &ClusterState, targets: &Targets, out: &mut Vec<Blocker>) {
    for n in &state.nodes {
        let k = &targets.kubernetes;
        let kube = [
            ("kube-apiserver", n.apiserver.as_ref()),
            ("kubelet", n.kubelet.as_ref()),
            ("kubeadm", n.kubeadm.as_ref()),
        ];
        check(n, &kube, k, out);
        if let (Some(t), EtcdTopology::External) = (&targets.etcd, state.etcd.topology) {
            check(n, &[("etcd", n.etcd.as_ref())], t, out);
        }
        if let Some(t) = &targets.containerd {
            check(n, &[("containerd", n.containerd.as_ref())], t, out);
        }
    }
}

fn check(
    n: &NodeState,
    components: &[(&str, Option<&Version>)],
    target: &Version,
    out: &mut Vec<Blocker>,
) {
    let above: Vec<(&str, &Version)> = components
        .iter()
        .filter_map(|&(what, v)| v.filter(|v| *v > target).map(|v| (what, v)))
        .collect();
    let Some(highest) = above.iter().map(|(_, v)| *v).max() else {
        return;
    };
    let (rule, kind) = if above.iter().all(|(_, v)| same_line(v, target)) {
        ("downgrade-patch", "patch")
    } else {
        ("downgrade", "minor")
    };
    let seen: Vec<String> = above.iter().map(|(w, v)| format!("{w} {v}")).collect();
    out.push(Blocker::new(
        Some(&n.name),
        rule,
        &format!(
            "the target {target} would downgrade the {kind} of {} running here",
            seen.join(", ")
        ),
        &format!("a target of {highest} or newer"),
        "kubegrid never downgrades; set the target to the running version or newer",
    ));
}

/// A PodDisruptionBudget that allows no disruption blocks the drain of every Node running its
/// pods; each such budget touching a Node the plan drains is named with those Nodes.
pub fn pdbs(state: &ClusterState, drained: &BTreeSet<&str>, out: &mut Vec<Blocker>) {
    for p in &state.pdbs {
        if p.disruptions_allowed > 0 {
            continue;
        }
        let hit: Vec<&str> = p
            .nodes
            .iter()
            .map(String::as_str)
            .filter(|n| drained.contains(n))
            .collect();
        let Some(first) = hit.first() else { continue };
        out.push(Blocker::new(
            Some(first),
            "pdb",
            &format!(
                "PodDisruptionBudget {}/{} allows {} disruptions and selects pods on {}, which \
                 the upgrade drains",
                p.namespace,
                p.name,
                p.disruptions_allowed,
                hit.join(", ")
            ),
            "every PodDisruptionBudget on a drained Node to allow at least one disruption",
            &format!(
                "scale the workload up or relax the budget (kubectl -n {} get pdb {}); without \
                 --force kubegrid never drains past a budget",
                p.namespace, p.name
            ),
        ));
    }
}
