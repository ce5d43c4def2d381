//! Re-runs: planning again from live versions resumes; Nodes at target produce no steps;
//! cordoned Nodes at target are listed for uncordon.

use crate::common::{ids, lab, lab_targets, plan_of, v};
use crate::skew::apply;

#[test]
fn a_cluster_at_target_is_a_noop() {
    let p = plan_of(
        &crate::common::uniform("1.33.4", "3.5.30", "2.1.9", 2),
        &lab_targets(),
    );
    assert!(p.is_noop() && p.can_run(), "{:#?}", p);
    assert!(p.nodes.iter().all(|n| n.changes.is_empty()));
}

#[test]
fn resuming_after_any_step_plans_exactly_the_rest() {
    let start = lab();
    let full = plan_of(&start, &lab_targets());
    for done in 0..=full.steps.len() {
        let mut state = start.clone();
        for s in &full.steps[..done] {
            apply(&mut state, s);
        }
        let rest = plan_of(&state, &lab_targets());
        assert!(rest.can_run(), "after {done} steps: {:#?}", rest.blockers);
        assert_eq!(
            ids(&rest),
            ids(&full)[done..],
            "after {done} steps the plan is the rest of the first one"
        );
    }
}

#[test]
fn after_kubeadm_apply_the_other_control_plane_nodes_get_kubeadm_node() {
    let mut state = lab();
    for n in &mut state.nodes {
        n.etcd = Some(v("3.5.30"));
    }
    state.nodes[0].apiserver = Some(v("1.32.4"));
    state.nodes[0].kubeadm = Some(v("1.32.4"));
    let p = plan_of(&state, &lab_targets());
    assert_eq!(
        ids(&p)[..2],
        ["kubeadm-node/cp-2/1.32.4", "kubeadm-node/cp-3/1.32.4"]
    );
}

#[test]
fn a_cordoned_node_at_target_is_uncordoned_not_rolled() {
    let mut state = crate::common::uniform("1.33.4", "3.5.30", "2.1.9", 2);
    state.nodes[3].cordoned = true;
    let p = plan_of(&state, &lab_targets());
    assert!(p.steps.is_empty());
    assert_eq!(p.uncordon, ["w-1"]);
    assert!(!p.is_noop());
}

#[test]
fn a_cordoned_node_left_behind_is_rolled_and_its_roll_uncordons_it() {
    let mut state = crate::common::uniform("1.33.4", "3.5.30", "2.1.9", 2);
    state.nodes[4].cordoned = true;
    state.nodes[4].kubelet = Some(v("1.32.4"));
    let p = plan_of(&state, &lab_targets());
    assert_eq!(ids(&p), ["roll/w-2/1.33.4"]);
    assert!(p.uncordon.is_empty());
}
