//! Refusals before any change: unreachable or NotReady Nodes, unknown versions, etcd without
//! quorum or with an unhealthy member, PodDisruptionBudgets at zero on a drained Node, a bad
//! policy. Every blocker names the Node, what was seen, what was expected and a hint.

use kubegrid_upgrade::{Pdb, Plan, Policy, plan};

use crate::common::{blocker, bundle, lab, lab_targets, plan_of, rules};

fn assert_well_formed(p: &Plan) {
    for b in &p.blockers {
        if let Some(n) = &b.node {
            assert!(
                b.message.starts_with(&format!("Node {n}: ")),
                "{}",
                b.message
            );
        }
        assert!(b.message.contains("; expected "), "{}", b.message);
        assert!(b.message.contains(". Hint: "), "{}", b.message);
        for jargon in ["Some(", "None", "Version {", "u64"] {
            assert!(!b.message.contains(jargon), "{}", b.message);
        }
    }
}

#[test]
fn an_unreachable_node_is_refused_by_name() {
    let mut state = lab();
    state.nodes[4].reachable = false;
    state.nodes[4].kubelet = None;
    state.nodes[4].containerd = None;
    let p = plan_of(&state, &lab_targets());
    let b = blocker(&p, "unreachable");
    assert_eq!(b.node.as_deref(), Some("w-2"));
    // The unknown versions are not reported a second time.
    assert_eq!(rules(&p), ["unreachable"]);
    assert_well_formed(&p);
}

#[test]
fn a_not_ready_node_is_refused_by_name() {
    let mut state = lab();
    state.nodes[1].ready = Some(false);
    let p = plan_of(&state, &lab_targets());
    assert_eq!(blocker(&p, "not-ready").node.as_deref(), Some("cp-2"));
    assert!(!p.can_run());
    // Unknown readiness (no API answer) alone does not refuse.
    let mut state = lab();
    state.nodes[1].ready = None;
    assert!(plan_of(&state, &lab_targets()).can_run());
}

#[test]
fn an_unknown_version_is_refused_by_name() {
    let mut state = lab();
    state.nodes[0].apiserver = None;
    let p = plan_of(&state, &lab_targets());
    let b = blocker(&p, "version-unknown");
    assert_eq!(b.node.as_deref(), Some("cp-1"));
    assert!(b.message.contains("kube-apiserver"), "{}", b.message);
    assert_well_formed(&p);
}

#[test]
fn etcd_without_quorum_is_refused_with_the_arithmetic() {
    let mut state = lab();
    state.etcd.healthy = 1;
    state.etcd.unhealthy = vec!["cp-2".into(), "cp-3".into()];
    let p = plan_of(&state, &lab_targets());
    let b = blocker(&p, "etcd-quorum");
    assert!(
        b.message.contains("1 healthy of 3") && b.message.contains("at least 2"),
        "{}",
        b.message
    );
    assert_well_formed(&p);
}

#[test]
fn an_unhealthy_etcd_member_is_refused_even_with_quorum() {
    let mut state = lab();
    state.etcd.healthy = 2;
    state.etcd.unhealthy = vec!["cp-3".into()];
    let p = plan_of(&state, &lab_targets());
    assert_eq!(rules(&p), ["etcd-unhealthy"]);
    assert_eq!(blocker(&p, "etcd-unhealthy").node.as_deref(), Some("cp-3"));
}

#[test]
fn a_pdb_at_zero_on_a_drained_node_is_named_with_its_nodes() {
    let mut state = lab();
    state.pdbs = vec![
        Pdb {
            namespace: "shop".into(),
            name: "db".into(),
            disruptions_allowed: 0,
            nodes: vec!["w-1".into(), "w-2".into()],
        },
        Pdb {
            namespace: "shop".into(),
            name: "web".into(),
            disruptions_allowed: 1,
            nodes: vec!["w-1".into()],
        },
    ];
    let p = plan_of(&state, &lab_targets());
    assert_eq!(rules(&p), ["pdb"]);
    let b = blocker(&p, "pdb");
    assert!(
        b.message.contains("shop/db") && b.message.contains("w-1, w-2"),
        "{}",
        b.message
    );
    assert_well_formed(&p);
}

#[test]
fn a_pdb_at_zero_on_nodes_the_plan_does_not_drain_is_no_blocker() {
    // Only etcd moves: nothing is drained.
    let mut state = crate::common::uniform("1.33.4", "3.5.16", "2.1.9", 1);
    state.pdbs.push(Pdb {
        namespace: "shop".into(),
        name: "db".into(),
        disruptions_allowed: 0,
        nodes: vec!["w-1".into()],
    });
    let p = plan_of(
        &state,
        &crate::common::targets("1.33.4", Some("3.5.30"), None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(p.steps.len(), 3);
}

#[test]
fn max_unavailable_zero_is_refused() {
    let p = plan(
        &lab(),
        &lab_targets(),
        &bundle(),
        &Policy { max_unavailable: 0 },
    );
    blocker(&p, "policy");
    assert_well_formed(&p);
}

#[test]
fn every_blocker_of_a_badly_broken_cluster_is_well_formed() {
    let mut state = lab();
    state.nodes[0].ready = Some(false);
    state.nodes[3].kubelet = Some(crate::common::v("1.33.4"));
    state.etcd.healthy = 1;
    state.etcd.unhealthy = vec!["cp-2".into(), "cp-3".into()];
    let p = plan(
        &state,
        &crate::common::targets("1.30.14", Some("3.4.23"), Some("1.6.20")),
        &bundle(),
        &Policy { max_unavailable: 0 },
    );
    assert!(p.blockers.len() >= 6, "{:#?}", p.blockers);
    assert_well_formed(&p);
}
