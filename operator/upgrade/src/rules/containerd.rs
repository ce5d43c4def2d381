//! containerd lines per Kubernetes minor, from the "Kubernetes Support" table of containerd's
//! RELEASES.md (<https://github.com/containerd/containerd/blob/main/RELEASES.md#kubernetes-support>):
//! rows 1.32–1.36 as of containerd commit 301026e58c619e63d09c0ec411012e54c0124b03
//! (2026-08-22); rows 1.30 and 1.31, since dropped from the table, as of the parent of
//! commit cfe20b58887cffce5892855d0fc8915ea725d463 (2025-09-11).
//!
//! Kubernetes 1.35 is the last minor that supports containerd 1.x: stated in the Kubernetes
//! v1.35 release announcement (<https://kubernetes.io/blog/2025/12/17/kubernetes-v1-35-release/>,
//! read here through Amazon EKS's 1.35 notes, which quote it: "Kubernetes 1.35 is the last
//! release supporting containerd 1.x"), and matching the table, whose 1.36 row lists only
//! 2.x lines.

use semver::Version;

/// A containerd line and its lowest recommended patch: (major, minor, patch).
type Line = (u64, u64, u64);

/// (Kubernetes 1.x minor, the containerd lines it supports).
const TABLE: &[(u64, &[Line])] = &[
    (30, &[(2, 1, 0), (2, 0, 0), (1, 7, 13), (1, 6, 28)]),
    (31, &[(2, 1, 0), (2, 0, 0), (1, 7, 20), (1, 6, 34)]),
    (32, &[(2, 1, 0), (2, 0, 1), (1, 7, 24), (1, 6, 36)]),
    (33, &[(2, 1, 0), (2, 0, 4), (1, 7, 24), (1, 6, 36)]),
    (34, &[(2, 1, 3), (2, 0, 6), (1, 7, 28), (1, 6, 39)]),
    (35, &[(2, 2, 0), (2, 1, 5), (1, 7, 28)]),
    (36, &[(2, 3, 0), (2, 2, 0)]),
];

/// The last Kubernetes 1.x minor that supports containerd 1.x.
pub const LAST_MINOR_WITH_CONTAINERD_1: u64 = 35;

/// What containerd's table says about one containerd version with one Kubernetes minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Its line is listed and it is at or past the line's lowest patch.
    Supported,
    /// Its line is listed but it is older than the recommended lowest patch.
    BelowRecommended {
        /// The lowest patch recommended for this line.
        minimum: Version,
    },
    /// Its line is not supported by that Kubernetes minor.
    UnsupportedLine {
        /// The lines that are (e.g. "2.1.0+, 2.0.4+").
        supported: String,
    },
    /// The table has no row for that Kubernetes minor; only the 1.x cut-off is known.
    Unknown,
}

/// What containerd's table says about containerd `c` with Kubernetes `k`.
pub fn support(k: &Version, c: &Version) -> Support {
    let row = (k.major == 1)
        .then(|| TABLE.iter().find(|(minor, _)| *minor == k.minor))
        .flatten();
    let Some((_, lines)) = row else {
        if k.major == 1 && k.minor > LAST_MINOR_WITH_CONTAINERD_1 && c.major < 2 {
            return Support::UnsupportedLine {
                supported: "2.x (Kubernetes 1.35 is the last minor supporting containerd 1.x)"
                    .to_owned(),
            };
        }
        return Support::Unknown;
    };
    match lines
        .iter()
        .find(|(major, minor, _)| *major == c.major && *minor == c.minor)
    {
        Some(&(major, minor, patch)) => {
            let minimum = Version::new(major, minor, patch);
            if *c >= minimum {
                Support::Supported
            } else {
                Support::BelowRecommended { minimum }
            }
        }
        None => Support::UnsupportedLine {
            supported: lines
                .iter()
                .map(|(a, b, p)| format!("{a}.{b}.{p}+"))
                .collect::<Vec<_>>()
                .join(", "),
        },
    }
}

/// True when containerd `c` may run under kubelet `k` (its line is supported, or the table
/// does not say).
pub fn line_ok(k: &Version, c: &Version) -> bool {
    !matches!(support(k, c), Support::UnsupportedLine { .. })
}
