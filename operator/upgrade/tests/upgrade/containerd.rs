//! containerd: only a line the Kubernetes version supports (containerd's RELEASES.md), moved in
//! the Node's first roll whose kubelet supports it.

use kubegrid_upgrade::Step;

use crate::common::{blocker, ids, lab, lab_targets, plan_of, targets, uniform};

#[test]
fn containerd_moves_in_each_nodes_first_roll() {
    let p = plan_of(&lab(), &lab_targets());
    let with_containerd: Vec<String> = p
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Roll {
                    containerd: Some(_),
                    ..
                }
            )
        })
        .map(Step::id)
        .collect();
    assert_eq!(
        with_containerd,
        [
            "roll/cp-1/1.32.4+containerd-2.1.9",
            "roll/cp-2/1.32.4+containerd-2.1.9",
            "roll/cp-3/1.32.4+containerd-2.1.9",
            "roll/w-1/1.33.4+containerd-2.1.9",
            "roll/w-2/1.33.4+containerd-2.1.9",
        ]
    );
}

#[test]
fn containerd_waits_for_a_roll_whose_kubelet_supports_its_line() {
    // 2.2 is not in containerd's 1.34 row: it moves in the 1.35 roll, not the 1.34 one.
    let p = plan_of(
        &uniform("1.33.4", "3.6.5", "2.1.9", 0),
        &targets("1.35.1", Some("3.6.5"), Some("2.2.1")),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert!(
        ids(&p).contains(&"roll/cp-1/1.34.2".to_owned()),
        "{:#?}",
        ids(&p)
    );
    assert!(
        ids(&p).contains(&"roll/cp-1/1.35.1+containerd-2.2.1".to_owned()),
        "{:#?}",
        ids(&p)
    );
}

#[test]
fn a_containerd_line_the_target_kubernetes_does_not_support_is_refused() {
    // Kubernetes 1.35 is the last minor supporting containerd 1.x.
    let p = plan_of(
        &uniform("1.35.1", "3.6.5", "1.6.20", 0),
        &targets("1.36.0", Some("3.6.5"), Some("1.7.24")),
    );
    let b = blocker(&p, "containerd-unsupported");
    assert!(
        b.message.contains("line 1.7") && b.message.contains("2.3.0+, 2.2.0+"),
        "{}",
        b.message
    );
}

#[test]
fn a_kept_containerd_the_target_kubernetes_does_not_support_is_refused() {
    let p = plan_of(
        &uniform("1.35.1", "3.6.5", "1.7.24", 1),
        &targets("1.36.0", Some("3.6.5"), None),
    );
    let b = blocker(&p, "containerd-unsupported");
    assert_eq!(b.node.as_deref(), Some("cp-1"));
    assert!(
        b.message.contains("containerd 1.7.24 stays"),
        "{}",
        b.message
    );
}

#[test]
fn a_containerd_only_change_rolls_each_node_without_a_kubelet_change() {
    let p = plan_of(
        &uniform("1.33.4", "3.5.30", "1.7.24", 1),
        &targets("1.33.4", None, Some("2.1.9")),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(
        ids(&p),
        [
            "roll/cp-1/1.33.4+containerd-2.1.9",
            "roll/cp-2/1.33.4+containerd-2.1.9",
            "roll/cp-3/1.33.4+containerd-2.1.9",
            "roll/w-1/1.33.4+containerd-2.1.9",
        ]
    );
}

#[test]
fn a_containerd_downgrade_is_refused() {
    let p = plan_of(
        &uniform("1.33.4", "3.5.30", "2.1.9", 0),
        &targets("1.33.4", None, Some("1.7.24")),
    );
    let b = blocker(&p, "downgrade");
    assert!(
        b.message.contains("minor of containerd 2.1.9"),
        "{}",
        b.message
    );
}

#[test]
fn containerds_support_table_is_encoded_row_by_row() {
    use kubegrid_upgrade::rules::containerd::{Support, support};
    let v = crate::common::v;
    assert_eq!(support(&v("1.31.4"), &v("1.6.34")), Support::Supported);
    assert_eq!(
        support(&v("1.31.4"), &v("1.6.20")),
        Support::BelowRecommended {
            minimum: v("1.6.34")
        }
    );
    assert_eq!(support(&v("1.33.4"), &v("2.1.9")), Support::Supported);
    assert!(matches!(
        support(&v("1.34.2"), &v("2.2.1")),
        Support::UnsupportedLine { .. }
    ));
    assert_eq!(support(&v("1.35.1"), &v("1.7.28")), Support::Supported);
    assert!(matches!(
        support(&v("1.35.1"), &v("1.6.39")),
        Support::UnsupportedLine { .. }
    ));
    assert!(matches!(
        support(&v("1.36.0"), &v("1.7.28")),
        Support::UnsupportedLine { .. }
    ));
    // Past the table only the 1.x cut-off is known.
    assert!(matches!(
        support(&v("1.37.0"), &v("1.7.28")),
        Support::UnsupportedLine { .. }
    ));
    assert_eq!(support(&v("1.37.0"), &v("2.3.0")), Support::Unknown);
    assert_eq!(support(&v("1.29.0"), &v("1.7.0")), Support::Unknown);
}
