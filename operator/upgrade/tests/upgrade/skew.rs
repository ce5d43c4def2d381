//! The live skew check: kube-apiservers within one minor; kubelet never newer than the oldest
//! kube-apiserver and at most three minors older than the newest.

use kubegrid_upgrade::{Step, skew};
use semver::Version;

use crate::common::{lab, lab_targets, plan_of, uniform, v};

fn rules(state: &kubegrid_upgrade::ClusterState) -> Vec<(Option<String>, String)> {
    skew(state).into_iter().map(|b| (b.node, b.rule)).collect()
}

#[test]
fn a_uniform_cluster_is_in_skew() {
    assert!(skew(&lab()).is_empty());
}

#[test]
fn a_kubelet_newer_than_the_oldest_apiserver_is_named() {
    let mut state = uniform("1.32.4", "3.5.30", "2.1.9", 1);
    state.nodes[0].apiserver = Some(v("1.33.4"));
    state.nodes[0].kubelet = Some(v("1.33.4"));
    let found = skew(&state);
    assert_eq!(
        rules(&state),
        [(Some("cp-1".to_owned()), "skew-kubelet-newer".to_owned())]
    );
    let m = &found[0].message;
    assert!(
        m.contains("kubelet 1.33.4") && m.contains("1.32.4") && m.contains("Hint:"),
        "{m}"
    );
}

#[test]
fn a_kubelet_more_than_three_minors_older_is_named() {
    let mut state = uniform("1.33.4", "3.5.30", "2.1.9", 2);
    state.nodes[4].kubelet = Some(v("1.29.15"));
    assert_eq!(
        rules(&state),
        [(Some("w-2".to_owned()), "skew-kubelet-older".to_owned())]
    );
    // Three minors older is allowed.
    state.nodes[4].kubelet = Some(v("1.30.14"));
    assert!(skew(&state).is_empty());
}

#[test]
fn apiservers_two_minors_apart_are_named() {
    let mut state = uniform("1.31.4", "3.5.30", "2.1.9", 0);
    state.nodes[0].apiserver = Some(v("1.33.4"));
    assert_eq!(
        rules(&state),
        [
            (Some("cp-2".to_owned()), "skew-apiserver".to_owned()),
            (Some("cp-3".to_owned()), "skew-apiserver".to_owned())
        ]
    );
}

#[test]
fn every_state_the_lab_plan_passes_through_is_in_skew() {
    // Replays the plan on the state, as the executor would, checking skew before each step.
    let mut state = lab();
    let p = plan_of(&state, &lab_targets());
    for step in &p.steps {
        assert!(
            skew(&state).is_empty(),
            "before {}: {:#?}",
            step.id(),
            skew(&state)
        );
        apply(&mut state, step);
    }
    assert!(skew(&state).is_empty());
    // And planning again from the end state finds nothing to do.
    assert!(plan_of(&state, &lab_targets()).is_noop());
}

#[test]
fn the_planner_refuses_a_cluster_out_of_skew_now() {
    let mut state = lab();
    state.nodes[3].kubelet = Some(v("1.32.4"));
    let p = plan_of(&state, &lab_targets());
    assert!(
        p.blockers
            .iter()
            .any(|b| b.rule == "skew-kubelet-newer" && b.node.as_deref() == Some("w-1"))
    );
    assert!(!p.can_run());
}

/// What the executor's step does to the versions.
pub fn apply(state: &mut kubegrid_upgrade::ClusterState, step: &Step) {
    let set = |o: &mut Option<Version>, to: &Version| *o = Some(to.clone());
    match step {
        Step::EtcdMember { node, to, .. } => {
            let n = state.nodes.iter_mut().find(|n| n.name == *node).unwrap();
            set(&mut n.etcd, to);
        }
        Step::KubeadmApply { node, version } | Step::KubeadmNode { node, version } => {
            let n = state.nodes.iter_mut().find(|n| n.name == *node).unwrap();
            set(&mut n.apiserver, version);
            set(&mut n.kubeadm, version);
        }
        Step::Roll {
            nodes,
            kubelet,
            containerd,
            worker,
        } => {
            for name in nodes {
                let n = state.nodes.iter_mut().find(|n| n.name == *name).unwrap();
                set(&mut n.kubelet, kubelet);
                if *worker {
                    set(&mut n.kubeadm, kubelet);
                }
                if let Some(c) = containerd {
                    set(&mut n.containerd, c);
                }
            }
        }
    }
}
