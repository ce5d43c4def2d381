//! Puts the rules together: external etcd first (as far as the running Kubernetes allows),
//! then the control plane one minor at a time (kubeadm on every control-plane Node, then
//! each one's kubelet roll), workers only when the three-minor skew forces them and at the
//! end, containerd in each Node's first roll whose kubelet supports its line.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

mod containerd_checks;
mod etcd_steps;

use crate::blockers;
use crate::plan::{Blocker, Change, Component, NodePlan, Plan, Step};
use crate::rules::containerd;
use crate::rules::etcd;
use crate::rules::kubernetes::{self, kubelet_may_stay, require_available};
use crate::rules::skew::{minor_distance, skew};
use crate::state::{Available, ClusterState, NodeState, Policy, Targets};
use crate::versions::{line, lowest};

/// Plans the upgrade of `state` to `targets` with what `available` carries. Pure: reads its
/// arguments only. Planning again from live versions after a stopped run gives the rest of
/// the work (steps already done produce nothing).
pub fn plan(
    state: &ClusterState,
    targets: &Targets,
    available: &Available,
    policy: &Policy,
) -> Plan {
    let mut b = Builder {
        state,
        targets,
        available,
        batch: policy.max_unavailable.max(1),
        now: state
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Tracked::from(n)))
            .collect(),
        steps: Vec::new(),
        blockers: Vec::new(),
        notes: Vec::new(),
        missing: BTreeSet::new(),
        etcd_min_reported: false,
    };
    blockers::policy(policy, &mut b.blockers);
    blockers::nodes(state, targets, &mut b.blockers);
    blockers::etcd(state, &mut b.blockers);
    blockers::downgrades(state, targets, &mut b.blockers);
    b.blockers.extend(skew(state));
    b.run();
    b.finish()
}

/// A Node's versions as the plan moves them.
#[derive(Debug, Clone)]
struct Tracked {
    apiserver: Option<Version>,
    kubeadm: Option<Version>,
    kubelet: Option<Version>,
    etcd: Option<Version>,
    containerd: Option<Version>,
}

impl From<&NodeState> for Tracked {
    fn from(n: &NodeState) -> Self {
        Tracked {
            apiserver: n.apiserver.clone(),
            kubeadm: n.kubeadm.clone(),
            kubelet: n.kubelet.clone(),
            etcd: n.etcd.clone(),
            containerd: n.containerd.clone(),
        }
    }
}

struct Builder<'a> {
    state: &'a ClusterState,
    targets: &'a Targets,
    available: &'a Available,
    batch: usize,
    now: BTreeMap<String, Tracked>,
    steps: Vec<Step>,
    blockers: Vec<Blocker>,
    notes: Vec<String>,
    /// (component, version) already reported missing from the bundle.
    missing: BTreeSet<(&'static str, Version)>,
    etcd_min_reported: bool,
}

impl Builder<'_> {
    fn run(&mut self) {
        let cp: Vec<&NodeState> = self.state.control_plane().collect();
        if cp.is_empty() {
            self.blockers.push(Blocker::new(
                None,
                "no-control-plane",
                "the cluster has no control-plane Node",
                "at least one Node with the control-plane role",
                "check the spec's Node roles",
            ));
            return;
        }
        // Unknown versions are blockers already; nothing sensible can be planned without them.
        let Some(cp_current) = lowest(cp.iter().map(|n| &n.apiserver)) else {
            return;
        };
        let target = self.targets.kubernetes.clone();
        let cp_path = kubernetes::control_plane_path(
            &cp_current,
            &target,
            &self.available.kubernetes,
            &mut self.blockers,
        );
        let mut etcd_path = self.etcd_path(&cp_current).into_iter().peekable();
        self.check_containerd_target();

        // External etcd first, as far as kubeadm's table allows with the running control plane.
        while let Some(s) = etcd_path.next_if(|s| etcd::line_allowed_with(s, &cp_current)) {
            self.etcd_step(&s);
        }
        // A control-plane kubelet left a minor behind by a stopped run finishes that minor's
        // roll before the control plane moves on (resuming gives the rest of the first plan).
        let behind: Vec<String> = cp
            .iter()
            .filter(|n| {
                self.now[&n.name]
                    .kubelet
                    .as_ref()
                    .is_some_and(|k| minor_distance(&cp_current, k) > 0)
            })
            .map(|n| n.name.clone())
            .collect();
        if !behind.is_empty() && !cp_path.is_empty() {
            let ver = kubernetes::worker_catch_up_version(
                &cp_current,
                &self.available.kubernetes,
                &mut self.blockers,
            );
            for n in behind {
                self.roll(&[n], &ver, false);
            }
        }
        let mut cp_now = cp_current;
        for v in &cp_path {
            // An etcd line the next minor needs goes right before its kubeadm step.
            while let Some(s) = etcd_path.next_if(|s| etcd::line_allowed_with(s, v)) {
                self.etcd_step(&s);
            }
            self.check_etcd_minimum(v);
            // Workers the next minor would leave more than three minors behind catch up to
            // the control plane's version first (Cluster API's chained upgrade).
            let lagging: Vec<String> = self
                .state
                .workers()
                .filter(|w| {
                    self.now[&w.name]
                        .kubelet
                        .as_ref()
                        .is_some_and(|k| !kubelet_may_stay(k, v))
                })
                .map(|w| w.name.clone())
                .collect();
            if !lagging.is_empty() {
                let ver = kubernetes::worker_catch_up_version(
                    &cp_now,
                    &self.available.kubernetes,
                    &mut self.blockers,
                );
                self.roll_workers(&lagging, &ver);
            }
            self.control_plane_minor(&cp, v);
            cp_now = v.clone();
        }
        // Left over only when the etcd target is past what the Kubernetes target pairs with
        // (an etcd-policy blocker says so); listed so the plan shows them.
        for s in etcd_path {
            self.etcd_step(&s);
        }
        // Control-plane Nodes not rolled yet (containerd only, or a resumed roll).
        for n in &cp {
            if self.kubelet_behind(&n.name, &target) || self.containerd_pending(&n.name) {
                self.roll(std::slice::from_ref(&n.name), &target, false);
            }
        }
        let workers: Vec<String> = self
            .state
            .workers()
            .filter(|w| self.kubelet_behind(&w.name, &target) || self.containerd_pending(&w.name))
            .map(|w| w.name.clone())
            .collect();
        self.roll_workers(&workers, &target);
        self.check_final_containerd(&target);
    }

    /// kubeadm on every control-plane Node below `v` (apply on the first unless a Node is
    /// already there, which means apply ran before), then each one's roll, one at a time.
    fn control_plane_minor(&mut self, cp: &[&NodeState], v: &Version) {
        let applied = cp
            .iter()
            .any(|n| self.now[&n.name].apiserver.as_ref().is_some_and(|a| a >= v));
        let needing: Vec<String> = cp
            .iter()
            .filter(|n| self.now[&n.name].apiserver.as_ref().is_some_and(|a| a < v))
            .map(|n| n.name.clone())
            .collect();
        if !needing.is_empty() {
            self.require("Kubernetes", v);
        }
        for (i, name) in needing.into_iter().enumerate() {
            let t = self.now.get_mut(&name).expect("tracked");
            t.apiserver = Some(v.clone());
            t.kubeadm = Some(v.clone());
            self.steps.push(if i == 0 && !applied {
                Step::KubeadmApply {
                    node: name,
                    version: v.clone(),
                }
            } else {
                Step::KubeadmNode {
                    node: name,
                    version: v.clone(),
                }
            });
        }
        for n in cp {
            if self.kubelet_behind(&n.name, v) {
                self.roll(std::slice::from_ref(&n.name), v, false);
            }
        }
    }

    /// Workers in spec order, in batches of maxUnavailable; a batch never mixes Nodes whose
    /// containerd moves with Nodes whose containerd stays.
    fn roll_workers(&mut self, names: &[String], kubelet: &Version) {
        let mut batch: Vec<String> = Vec::new();
        let mut batch_moves = false;
        for n in names {
            let moves = self.containerd_moves(n, kubelet);
            if !batch.is_empty() && (batch.len() == self.batch || moves != batch_moves) {
                self.roll(&batch, kubelet, true);
                batch.clear();
            }
            batch_moves = moves;
            batch.push(n.clone());
        }
        if !batch.is_empty() {
            self.roll(&batch, kubelet, true);
        }
    }

    fn roll(&mut self, nodes: &[String], kubelet: &Version, worker: bool) {
        let moves = nodes.iter().any(|n| self.containerd_moves(n, kubelet));
        let containerd = moves.then(|| self.targets.containerd.clone()).flatten();
        if nodes.iter().any(|n| self.kubelet_behind(n, kubelet)) {
            self.require("Kubernetes", kubelet);
        }
        if let Some(c) = &containerd {
            self.require("containerd", c);
        }
        for n in nodes {
            let t = self.now.get_mut(n).expect("tracked");
            if t.kubelet.as_ref() != Some(kubelet) && worker {
                t.kubeadm = Some(kubelet.clone());
            }
            t.kubelet = Some(kubelet.clone());
            if let Some(c) = &containerd {
                t.containerd = Some(c.clone());
            }
            // At the target Kubernetes, a containerd it does not support is reported once by
            // the final containerd check.
            let kept = t
                .containerd
                .clone()
                .filter(|_| *kubelet != self.targets.kubernetes);
            if let Some(c) = kept.filter(|c| !containerd::line_ok(kubelet, c)) {
                self.blockers.push(Blocker::new(
                    Some(n),
                    "containerd-roll",
                    &format!(
                        "containerd {c} would run under kubelet {kubelet}, which does not \
                         support its line, and the containerd target cannot be installed in \
                         that roll"
                    ),
                    &format!(
                        "a containerd line Kubernetes {} supports (containerd's RELEASES.md)",
                        line(kubelet)
                    ),
                    "set a containerd target both this roll's and the target Kubernetes support",
                ));
            }
        }
        self.steps.push(Step::Roll {
            nodes: nodes.to_vec(),
            kubelet: kubelet.clone(),
            containerd,
            worker,
        });
    }

    fn kubelet_behind(&self, node: &str, v: &Version) -> bool {
        self.now[node].kubelet.as_ref().is_some_and(|k| k < v)
    }

    /// The containerd target still has to be installed on `node`.
    fn containerd_pending(&self, node: &str) -> bool {
        match (&self.targets.containerd, &self.now[node].containerd) {
            (Some(t), Some(c)) => c < t,
            _ => false,
        }
    }

    /// containerd moves on `node` in a roll to `kubelet`: pending, and its line supported.
    fn containerd_moves(&self, node: &str, kubelet: &Version) -> bool {
        self.containerd_pending(node)
            && self
                .targets
                .containerd
                .as_ref()
                .is_some_and(|t| containerd::line_ok(kubelet, t))
    }

    /// A blocker (once per version) when a step's version is not in the bundle.
    fn require(&mut self, what: &'static str, v: &Version) {
        if !self.missing.insert((what, v.clone())) {
            return;
        }
        let all: &Available = self.available;
        let available = match what {
            "etcd" => &all.etcd,
            "containerd" => &all.containerd,
            _ => &all.kubernetes,
        };
        require_available(v, available, what, &mut self.blockers);
    }

    fn finish(self) -> Plan {
        let rolled: BTreeSet<&str> = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Roll { .. }))
            .flat_map(Step::nodes)
            .collect();
        let mut blockers = self.blockers;
        blockers::pdbs(self.state, &rolled, &mut blockers);
        let uncordon = self
            .state
            .nodes
            .iter()
            .filter(|n| n.cordoned && !rolled.contains(n.name.as_str()))
            .map(|n| n.name.clone())
            .collect();
        let nodes = self
            .state
            .nodes
            .iter()
            .map(|n| node_plan(n, &self.now[&n.name]))
            .collect();
        Plan {
            cluster: self.state.cluster.clone(),
            nodes,
            steps: self.steps,
            blockers,
            notes: self.notes,
            uncordon,
        }
    }
}

fn node_plan(n: &NodeState, end: &Tracked) -> NodePlan {
    let mut changes = Vec::new();
    let mut push = |component, current: &Option<Version>, target: &Option<Version>| {
        if let Some(t) = target
            && current.as_ref() != Some(t)
        {
            changes.push(Change {
                component,
                current: current.clone(),
                target: t.clone(),
            });
        }
    };
    push(Component::Kubernetes, &n.apiserver, &end.apiserver);
    push(Component::Kubeadm, &n.kubeadm, &end.kubeadm);
    push(Component::Kubelet, &n.kubelet, &end.kubelet);
    push(Component::Etcd, &n.etcd, &end.etcd);
    push(Component::Containerd, &n.containerd, &end.containerd);
    NodePlan {
        name: n.name.clone(),
        changes,
    }
}
