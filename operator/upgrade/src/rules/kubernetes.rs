//! kubeadm upgrades the control plane one minor at a time
//! (<https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/>: "Skipping
//! MINOR versions when upgrading is unsupported"). Each intermediate minor is upgraded to its
//! newest patch in the bundle.
//!
//! Workers follow Cluster API's chained-upgrade proposal
//! (<https://github.com/kubernetes-sigs/cluster-api/blob/main/docs/proposals/20250513-chained-and-efficient-upgrades-for-clusters-with-managed-topologies.md>):
//! they skip the minors the three-minor kubelet skew allows, and are rolled to the control
//! plane's version only just before the control plane would get more than three minors ahead.

use semver::Version;

use crate::plan::Blocker;
use crate::rules::skew::minor_distance;
use crate::versions::{line, newest_of_line};

/// The control plane's versions from `current` to `target`, one per minor: the newest patch
/// of each intermediate minor in `available`, then `target`. Empty when `current` is at or
/// past `target` (a downgrade is reported by the downgrade rule). A missing intermediate
/// minor becomes a blocker naming it.
pub fn control_plane_path(
    current: &Version,
    target: &Version,
    available: &[Version],
    blockers: &mut Vec<Blocker>,
) -> Vec<Version> {
    if current >= target {
        return Vec::new();
    }
    if current.major != target.major {
        blockers.push(Blocker::new(
            None,
            "kubernetes-major",
            &format!("the control plane is at {current} and the target is {target}"),
            "a target with the same major version",
            "kubegrid upgrades within one major version of Kubernetes only",
        ));
        return Vec::new();
    }
    let mut path = Vec::new();
    for minor in current.minor + 1..target.minor {
        match newest_of_line(available, target.major, minor) {
            Some(v) => path.push(v),
            None => blockers.push(Blocker::new(
                None,
                "bundle-missing",
                &format!(
                    "the bundle has no Kubernetes {}.{minor}, the intermediate minor between \
                     {current} and {target} (kubeadm upgrades one minor at a time)",
                    target.major
                ),
                &format!("a Kubernetes {}.{minor}.x in the bundle", target.major),
                &format!(
                    "build the bundle with Kubernetes {}.{minor} as well, or target {}.{} first",
                    target.major,
                    target.major,
                    current.minor + 1
                ),
            )),
        }
    }
    // The target's presence in the bundle is checked with every step's version.
    path.push(target.clone());
    path
}

/// A version for rolling workers up to a control plane at `cp`: `cp` itself when the bundle
/// has it, else the newest patch of its minor in the bundle.
pub fn worker_catch_up_version(
    cp: &Version,
    available: &[Version],
    blockers: &mut Vec<Blocker>,
) -> Version {
    if available.contains(cp) {
        return cp.clone();
    }
    match newest_of_line(available, cp.major, cp.minor) {
        Some(v) => v,
        None => {
            blockers.push(Blocker::new(
                None,
                "bundle-missing",
                &format!(
                    "the bundle has no Kubernetes {} for the workers' intermediate roll (they \
                     must reach the control plane's {} before it moves more than three minors \
                     ahead of them)",
                    line(cp),
                    line(cp)
                ),
                &format!("a Kubernetes {}.x in the bundle", line(cp)),
                &format!("build the bundle with Kubernetes {} as well", line(cp)),
            ));
            cp.clone()
        }
    }
}

/// True when a kubelet at `kubelet` may stay while the control plane moves to `next`
/// (kubelet at most three minors older than kube-apiserver).
pub fn kubelet_may_stay(kubelet: &Version, next: &Version) -> bool {
    minor_distance(next, kubelet) <= 3
}

/// A blocker when `v` is not in `available`.
pub fn require_available(
    v: &Version,
    available: &[Version],
    what: &str,
    blockers: &mut Vec<Blocker>,
) {
    if !available.contains(v) {
        let have: Vec<String> = available.iter().map(Version::to_string).collect();
        blockers.push(Blocker::new(
            None,
            "bundle-missing",
            &format!(
                "the bundle has no {what} {v} (it has: {})",
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ),
            &format!("{what} {v} in the bundle"),
            &format!("build the bundle with {what} {v}, or target a version it carries"),
        ));
    }
}
