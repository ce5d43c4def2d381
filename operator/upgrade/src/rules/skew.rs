//! Kubernetes' version-skew policy, checked on live versions
//! (<https://kubernetes.io/releases/version-skew-policy/>):
//! - in an HA cluster the newest and oldest kube-apiserver are at most one minor apart;
//! - kubelet must not be newer than kube-apiserver (than the oldest one, in HA), and may be up
//!   to three minors older than it (than the newest one, in HA).
//!
//! The policy speaks of minor versions; patch releases of one minor never break it.

use semver::Version;

use crate::plan::Blocker;
use crate::state::ClusterState;

/// The live skew re-check the executor runs before every step: every Node out of skew,
/// named. Nodes whose versions are unknown are not judged here (the planner reports them).
pub fn skew(state: &ClusterState) -> Vec<Blocker> {
    let mut out = Vec::new();
    let apiservers: Vec<(&str, &Version)> = state
        .control_plane()
        .filter_map(|n| n.apiserver.as_ref().map(|v| (n.name.as_str(), v)))
        .collect();
    let Some(&(oldest_name, oldest)) = apiservers.iter().min_by_key(|(_, v)| *v) else {
        return out;
    };
    let &(newest_name, newest) = apiservers
        .iter()
        .max_by_key(|(_, v)| *v)
        .expect("non-empty: it has a minimum");

    for &(name, v) in &apiservers {
        if minor_distance(newest, v) > 1 {
            out.push(Blocker::new(
                Some(name),
                "skew-apiserver",
                &format!(
                    "kube-apiserver {v} is more than one minor older than kube-apiserver \
                     {newest} on {newest_name}"
                ),
                "all kube-apiservers within one minor of each other (Kubernetes version-skew policy)",
                &format!("finish the control-plane upgrade of {name} to {} first", line(newest)),
            ));
        }
    }

    for node in &state.nodes {
        let Some(kubelet) = node.kubelet.as_ref() else {
            continue;
        };
        if minor_distance(kubelet, oldest) > 0 {
            out.push(Blocker::new(
                Some(&node.name),
                "skew-kubelet-newer",
                &format!(
                    "kubelet {kubelet} is newer than the oldest kube-apiserver {oldest} \
                     (on {oldest_name})"
                ),
                &format!(
                    "kubelet at most {} (never newer than kube-apiserver)",
                    line(oldest)
                ),
                &format!(
                    "upgrade the control plane to {} before this Node's kubelet",
                    line(kubelet)
                ),
            ));
        } else if minor_distance(newest, kubelet) > 3 {
            out.push(Blocker::new(
                Some(&node.name),
                "skew-kubelet-older",
                &format!(
                    "kubelet {kubelet} is more than three minors older than kube-apiserver \
                     {newest} (on {newest_name})"
                ),
                &format!(
                    "kubelet at least {}.{} (at most three minors older than kube-apiserver)",
                    newest.major,
                    newest.minor.saturating_sub(3)
                ),
                "upgrade this Node's kubelet before any further control-plane step",
            ));
        }
    }
    out
}

/// How many minors `a` is ahead of `b` (negative when behind). A major difference counts as
/// far apart (1000 minors a major) so any such pair is out of skew.
pub fn minor_distance(a: &Version, b: &Version) -> i64 {
    let index = |v: &Version| v.major as i64 * 1000 + v.minor as i64;
    index(a) - index(b)
}

fn line(v: &Version) -> String {
    crate::versions::line(v)
}
