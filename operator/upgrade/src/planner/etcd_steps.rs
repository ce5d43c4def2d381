//! The planner's etcd part: the cluster-wide path, the member steps, kubeadm's minimum.

use semver::Version;

use super::Builder;
use crate::plan::{Blocker, Step};
use crate::rules::etcd;
use crate::state::{EtcdTopology, NodeState};
use crate::versions::{line, lowest};

impl Builder<'_> {
    /// The cluster-wide etcd versions to go through (external etcd only), with the notes
    /// about etcd's policy.
    pub(super) fn etcd_path(&mut self, cp_current: &Version) -> Vec<Version> {
        let members: Vec<&NodeState> = self.state.nodes.iter().filter(|n| n.roles.etcd).collect();
        if self.state.etcd.topology == EtcdTopology::Stacked {
            if let Some(t) = &self.targets.etcd {
                self.notes.push(format!(
                    "etcd is stacked: kubeadm upgrades it with the control plane, so the etcd \
                     target {t} is not used"
                ));
            }
            return Vec::new();
        }
        let Some(lowest_etcd) = lowest(members.iter().map(|n| &n.etcd)) else {
            return Vec::new();
        };
        let path = match &self.targets.etcd {
            Some(t) => {
                etcd::check_target(t, &self.targets.kubernetes, &mut self.blockers);
                etcd::path(&lowest_etcd, t, &self.available.etcd, &mut self.blockers)
            }
            None => Vec::new(),
        };
        let p = etcd::policy(cp_current);
        if lowest_etcd < p.minimum {
            let below: Vec<&str> = members
                .iter()
                .filter(|n| n.etcd.as_ref().is_some_and(|v| *v < p.minimum))
                .map(|n| n.name.as_str())
                .collect();
            let fix = path
                .iter()
                .find(|s| **s >= p.minimum && etcd::line_allowed_with(s, cp_current));
            self.notes.push(format!(
                "etcd {lowest_etcd} is below kubeadm's minimum {} for external etcd with \
                 Kubernetes {} (members below it: {}){}",
                p.minimum,
                line(cp_current),
                below.join(", "),
                match fix {
                    Some(v) => format!("; the plan's first etcd steps bring it to {v}"),
                    None => String::new(),
                }
            ));
        }
        path
    }

    /// One etcd step on every member below `to`, one member at a time, in spec order.
    pub(super) fn etcd_step(&mut self, to: &Version) {
        self.require("etcd", to);
        for n in self.state.nodes.iter().filter(|n| n.roles.etcd) {
            let t = self.now.get_mut(&n.name).expect("tracked");
            let Some(from) = t.etcd.clone().filter(|v| v < to) else {
                continue;
            };
            t.etcd = Some(to.clone());
            self.steps.push(Step::EtcdMember {
                node: n.name.clone(),
                from,
                to: to.clone(),
            });
        }
    }

    /// Before the kubeadm step to `v`: external etcd must meet kubeadm's minimum for it.
    pub(super) fn check_etcd_minimum(&mut self, v: &Version) {
        if self.state.etcd.topology != EtcdTopology::External || self.etcd_min_reported {
            return;
        }
        let p = etcd::policy(v);
        let below: Vec<(String, Version)> = self
            .state
            .nodes
            .iter()
            .filter(|n| n.roles.etcd)
            .filter_map(|n| {
                let e = self.now[&n.name].etcd.clone()?;
                (e < p.minimum).then(|| (n.name.clone(), e))
            })
            .collect();
        let Some((first, seen)) = below.first() else {
            return;
        };
        self.etcd_min_reported = true;
        let names: Vec<&str> = below.iter().map(|(n, _)| n.as_str()).collect();
        self.blockers.push(Blocker::new(
            Some(first),
            "etcd-below-minimum",
            &format!(
                "etcd on {} would still be at {seen} when the control plane moves to {v}",
                names.join(", ")
            ),
            &format!(
                "external etcd at {} or later for Kubernetes {} (kubeadm's SupportedEtcdVersion)",
                p.minimum,
                line(v)
            ),
            &format!(
                "set the etcd version to a {}.{} release of {} or later (the bundle must carry it)",
                p.line.0, p.line.1, p.minimum
            ),
        ));
    }
}
