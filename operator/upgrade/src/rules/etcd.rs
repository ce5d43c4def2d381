//! etcd versions per Kubernetes minor, from kubeadm's table `SupportedEtcdVersion` in
//! `cmd/kubeadm/app/constants/constants.go`
//! (<https://github.com/kubernetes/kubernetes/blob/master/cmd/kubeadm/app/constants/constants.go>):
//! 1.31, 1.32 and 1.33 map to 3.5.24-0, 1.34 to 3.6.5-0. kubeadm requires at least that 3.5
//! release of an external etcd for 1.31–1.33; 1.34 and later use the 3.6 line.
//!
//! etcd upgrades one minor at a time from the most recent patch
//! (<https://etcd.io/docs/v3.6/upgrades/upgrading-etcd/>), one member at a time, and 3.6 is
//! reached only from 3.5.26 or later (<https://etcd.io/docs/latest/upgrades/upgrade_3_6/>:
//! "make sure that all of your 3.5 members are updated to 3.5.26 or later").

use semver::Version;

use crate::plan::Blocker;
use crate::versions::{line, newest_of_line};

/// What kubeadm pairs with one Kubernetes minor, for external etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdPolicy {
    /// The etcd line (major, minor).
    pub line: (u64, u64),
    /// The lowest etcd release accepted on that line.
    pub minimum: Version,
}

/// kubeadm's etcd line and minimum for Kubernetes `major.minor`. The planner is version
/// agnostic: minors before 1.31 are held to 1.31's rule (kubegrid supports none older),
/// minors after 1.34 to 1.34's.
pub fn policy(kubernetes: &Version) -> EtcdPolicy {
    if kubernetes.major == 1 && kubernetes.minor < 34 {
        EtcdPolicy {
            line: (3, 5),
            minimum: Version::new(3, 5, 24),
        }
    } else {
        EtcdPolicy {
            line: (3, 6),
            minimum: Version::new(3, 6, 0),
        }
    }
}

/// The lowest 3.5 release a member may leave for 3.6.
pub const MIN_FOR_3_6: Version = Version::new(3, 5, 26);

/// The cluster-wide etcd versions from `current` (the lowest member) to `target`: one per
/// etcd minor, each intermediate minor at its newest release in the bundle, with a stop at
/// 3.5.26 or later before 3.6. Empty when `current` is at or past `target`. Missing versions
/// become blockers.
pub fn path(
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
            "etcd-major",
            &format!("etcd is at {current} and the target is {target}"),
            "an etcd target with the same major version",
            "etcd upgrades one minor at a time within a major version",
        ));
        return Vec::new();
    }
    if current.minor == target.minor {
        return vec![target.clone()];
    }
    let mut out: Vec<Version> = Vec::new();
    for minor in current.minor + 1..=target.minor {
        let from = out.last().unwrap_or(current).clone();
        // Entering 3.6 needs every member on 3.5.26 or later first.
        if (target.major, minor) == (3, 6) && from < MIN_FOR_3_6 {
            match newest_of_line(available, 3, 5).filter(|v| *v >= MIN_FOR_3_6) {
                Some(v) => out.push(v),
                None => {
                    return stop(
                        out,
                        Blocker::new(
                            None,
                            "etcd-path",
                            &format!(
                                "etcd {from} cannot move to 3.6 directly and the bundle has no etcd \
                         3.5.26 or later to stop at"
                            ),
                            "an etcd 3.5 release of 3.5.26 or later in the bundle",
                            "build the bundle with etcd 3.5.26 or later as well",
                        ),
                        blockers,
                    );
                }
            }
        }
        if minor == target.minor {
            out.push(target.clone());
        } else {
            match newest_of_line(available, target.major, minor) {
                Some(v) => out.push(v),
                // The path stops here: every later step would start from the missing one.
                None => {
                    return stop(
                        out,
                        Blocker::new(
                            None,
                            "bundle-missing",
                            &format!(
                                "the bundle has no etcd {}.{minor}, the intermediate minor between \
                         {current} and {target} (etcd upgrades one minor at a time)",
                                target.major
                            ),
                            &format!("an etcd {}.{minor}.x in the bundle", target.major),
                            &format!(
                                "build the bundle with etcd {}.{minor} as well",
                                target.major
                            ),
                        ),
                        blockers,
                    );
                }
            }
        }
    }
    out
}

/// Ends a path at a missing step: the steps before it stand, the blocker says why no more.
fn stop(out: Vec<Version>, blocker: Blocker, blockers: &mut Vec<Blocker>) -> Vec<Version> {
    blockers.push(blocker);
    out
}

/// True when etcd `v` is on or below the line kubeadm pairs with Kubernetes `k` (so it may
/// be installed while the control plane is at `k`).
pub fn line_allowed_with(v: &Version, k: &Version) -> bool {
    (v.major, v.minor) <= policy(k).line
}

/// A blocker when the etcd `target` is not what kubeadm pairs with Kubernetes `k`.
pub fn check_target(target: &Version, k: &Version, blockers: &mut Vec<Blocker>) {
    let p = policy(k);
    if (target.major, target.minor) != p.line || *target < p.minimum {
        blockers.push(Blocker::new(
            None,
            "etcd-policy",
            &format!(
                "the etcd target {target} is not what kubeadm pairs with Kubernetes {}",
                line(k)
            ),
            &format!(
                "etcd {}.{}.x, at least {} (kubeadm's SupportedEtcdVersion table)",
                p.line.0, p.line.1, p.minimum
            ),
            &format!(
                "set the etcd version to a {}.{} release of {} or later",
                p.line.0, p.line.1, p.minimum
            ),
        ));
    }
}
