//! etcd: kubeadm's table per Kubernetes minor, external members first, one member and one
//! minor at a time, 3.6 only from 3.5.26 or later; stacked etcd left to kubeadm.

use kubegrid_upgrade::{EtcdTopology, Policy, Step, plan};

use crate::common::{
    blocker, bundle_without, etcd_path, ids, lab, lab_targets, plan_of, position, targets, uniform,
};

#[test]
fn the_lab_cluster_is_noted_below_kubeadms_minimum_and_etcd_goes_first() {
    let p = plan_of(&lab(), &lab_targets());
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert!(
        p.notes.iter().any(|n| n.contains(
            "etcd 3.4.23 is below kubeadm's minimum 3.5.24 for external etcd with Kubernetes \
             1.31 (members below it: cp-1, cp-2, cp-3); the plan's first etcd steps bring it \
             to 3.5.30"
        )),
        "{:#?}",
        p.notes
    );
    assert_eq!(
        ids(&p)[..3],
        ["etcd/cp-1/3.5.30", "etcd/cp-2/3.5.30", "etcd/cp-3/3.5.30"]
    );
}

#[test]
fn members_go_one_at_a_time_and_one_minor_at_a_time() {
    // 3.4 -> 3.6 goes through 3.5 (newest in the bundle, past 3.5.26), every member on a
    // minor before any goes to the next.
    let p = plan_of(
        &uniform("1.33.4", "3.4.23", "2.1.9", 0),
        &targets("1.34.2", Some("3.6.5"), None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(etcd_path(&p), ["3.5.30", "3.6.5"]);
    for s in &p.steps {
        if let Step::EtcdMember { from, to, .. } = s {
            assert!(to.minor - from.minor <= 1, "{s:?}");
        }
    }
}

#[test]
fn etcd_3_6_comes_right_before_the_kubeadm_step_that_needs_it() {
    let p = plan_of(
        &uniform("1.31.4", "3.5.16", "2.1.9", 1),
        &targets("1.35.1", Some("3.6.5"), None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    // 3.5.16 < 3.5.26: first to 3.5.30 (while 1.31 still runs), then 3.6 before 1.34.
    assert_eq!(etcd_path(&p), ["3.5.30", "3.6.5"]);
    assert_eq!(position(&p, "etcd/cp-1/3.5.30"), 0);
    let to_36 = position(&p, "etcd/cp-1/3.6.5");
    assert!(position(&p, "roll/cp-3/1.33.4") < to_36);
    assert!(to_36 < position(&p, "kubeadm-apply/cp-1/1.34.2"));
}

#[test]
fn etcd_3_6_is_refused_without_a_3_5_26_or_later_to_stop_at() {
    let p = plan(
        &uniform("1.33.4", "3.5.16", "2.1.9", 0),
        &targets("1.34.2", Some("3.6.5"), None),
        &bundle_without(&["3.5.30"]),
        &Policy::default(),
    );
    let b = blocker(&p, "etcd-path");
    assert!(b.message.contains("3.5.26"), "{}", b.message);
}

#[test]
fn a_missing_intermediate_etcd_minor_is_a_blocker_naming_it() {
    let p = plan(
        &uniform("1.33.4", "3.4.23", "2.1.9", 0),
        &targets("1.34.2", Some("3.6.5"), None),
        &bundle_without(&["3.5.16", "3.5.30"]),
        &Policy::default(),
    );
    let b = blocker(&p, "bundle-missing");
    assert!(b.message.contains("no etcd 3.5"), "{}", b.message);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::EtcdMember { .. })));
}

#[test]
fn an_etcd_target_off_kubeadms_table_is_refused() {
    let p = plan_of(
        &uniform("1.32.4", "3.5.30", "2.1.9", 0),
        &targets("1.33.4", Some("3.6.5"), None),
    );
    let b = blocker(&p, "etcd-policy");
    assert!(
        b.message.contains("3.5.x, at least 3.5.24"),
        "{}",
        b.message
    );
    let p = plan_of(
        &uniform("1.32.4", "3.5.16", "2.1.9", 0),
        &targets("1.33.4", Some("3.5.16"), None),
    );
    blocker(&p, "etcd-policy");
}

#[test]
fn etcd_left_below_the_minimum_blocks_the_kubeadm_step() {
    let mut t = lab_targets();
    t.etcd = None;
    let p = plan_of(&lab(), &t);
    let b = blocker(&p, "etcd-below-minimum");
    assert!(
        b.message.contains("3.4.23") && b.message.contains("3.5.24"),
        "{}",
        b.message
    );
}

#[test]
fn stacked_etcd_gets_no_member_steps() {
    let mut state = lab();
    state.etcd.topology = EtcdTopology::Stacked;
    for n in &mut state.nodes {
        n.etcd = None;
    }
    let p = plan_of(&state, &lab_targets());
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::EtcdMember { .. })));
    assert!(
        p.notes.iter().any(|n| n.contains("stacked")),
        "{:#?}",
        p.notes
    );
}

#[test]
fn an_etcd_downgrade_is_refused() {
    let p = plan_of(
        &uniform("1.33.4", "3.5.30", "2.1.9", 0),
        &targets("1.33.4", Some("3.5.24"), None),
    );
    let b = blocker(&p, "downgrade-patch");
    assert!(b.message.contains("patch of etcd 3.5.30"), "{}", b.message);
}

#[test]
fn kubeadms_etcd_table_is_encoded() {
    use kubegrid_upgrade::rules::etcd::policy;
    let v = crate::common::v;
    for k in ["1.31.4", "1.32.4", "1.33.4"] {
        let p = policy(&v(k));
        assert_eq!((p.line, p.minimum), ((3, 5), v("3.5.24")), "{k}");
    }
    for k in ["1.34.2", "1.35.1", "1.36.0"] {
        assert_eq!(policy(&v(k)).line, (3, 6), "{k}");
    }
}
