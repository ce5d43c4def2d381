//! The planner's containerd checks: the target's line, and the containerd each Node keeps.

use semver::Version;

use super::Builder;
use crate::plan::Blocker;
use crate::rules::containerd::{self, Support};
use crate::versions::line;

impl Builder<'_> {
    /// The containerd target must be on a line the target Kubernetes supports.
    pub(super) fn check_containerd_target(&mut self) {
        let Some(t) = &self.targets.containerd else {
            return;
        };
        let k = &self.targets.kubernetes;
        match containerd::support(k, t) {
            Support::UnsupportedLine { supported } => self.blockers.push(Blocker::new(
                None,
                "containerd-unsupported",
                &format!(
                    "the containerd target {t} is on line {}, which Kubernetes {} does not support",
                    line(t),
                    line(k)
                ),
                &format!("one of {supported} (containerd's RELEASES.md, Kubernetes support)"),
                &format!(
                    "set the containerd target to a line Kubernetes {} supports",
                    line(k)
                ),
            )),
            Support::BelowRecommended { minimum } => self.notes.push(format!(
                "containerd {t} is older than {minimum}, the lowest {} release containerd \
                 recommends for Kubernetes {}",
                line(t),
                line(k)
            )),
            Support::Unknown => self.notes.push(format!(
                "containerd's support table has no row for Kubernetes {}; containerd {t} is \
                 not checked against it",
                line(k)
            )),
            Support::Supported => {}
        }
    }

    /// Nodes that keep their containerd must have one the target Kubernetes supports.
    pub(super) fn check_final_containerd(&mut self, k: &Version) {
        for n in self.state.nodes.iter() {
            let kube_node = n.roles.control_plane || n.roles.worker || n.kubelet.is_some();
            let Some(c) = self.now[&n.name].containerd.clone() else {
                continue;
            };
            if !kube_node || Some(&c) == self.targets.containerd.as_ref() {
                continue; // the target itself is judged once, by check_containerd_target
            }
            match containerd::support(k, &c) {
                Support::UnsupportedLine { supported } => self.blockers.push(Blocker::new(
                    Some(&n.name),
                    "containerd-unsupported",
                    &format!(
                        "containerd {c} stays, and Kubernetes {} does not support its line",
                        line(k)
                    ),
                    &format!("one of {supported} (containerd's RELEASES.md, Kubernetes support)"),
                    "set a containerd target the target Kubernetes supports",
                )),
                Support::BelowRecommended { minimum } => self.notes.push(format!(
                    "containerd {c} on {} is older than {minimum}, the lowest {} release \
                     containerd recommends for Kubernetes {}",
                    n.name,
                    line(&c),
                    line(k)
                )),
                Support::Supported | Support::Unknown => {}
            }
        }
    }
}
