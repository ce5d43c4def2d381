//! Control plane before workers, one Node at a time; kubeadm one minor at a time; workers
//! chained (Cluster API); batches of maxUnavailable.

use kubegrid_upgrade::{Policy, Step, plan};

use crate::common::{
    apply_path, blocker, bundle, bundle_without, ids, lab, lab_targets, plan_of, position,
    roll_path, targets, uniform, worker,
};

#[test]
fn control_plane_goes_before_workers_one_node_at_a_time() {
    let p = plan_of(&lab(), &lab_targets());
    let last_cp = p
        .steps
        .iter()
        .rposition(|s| !matches!(s, Step::Roll { worker: true, .. }))
        .unwrap();
    let first_worker = p
        .steps
        .iter()
        .position(|s| matches!(s, Step::Roll { worker: true, .. }))
        .unwrap();
    assert!(last_cp < first_worker, "{:#?}", ids(&p));
    for s in &p.steps {
        if let Step::Roll {
            nodes,
            worker: false,
            ..
        } = s
        {
            assert_eq!(nodes.len(), 1, "control-plane rolls take one Node: {s:?}");
        }
    }
    // Per minor: apply on the first control-plane Node, node on the others, then the rolls.
    let minor_132: Vec<String> = ids(&p)
        .into_iter()
        .filter(|id| id.contains("1.32.4"))
        .collect();
    assert_eq!(
        minor_132,
        [
            "kubeadm-apply/cp-1/1.32.4",
            "kubeadm-node/cp-2/1.32.4",
            "kubeadm-node/cp-3/1.32.4",
            "roll/cp-1/1.32.4+containerd-2.1.9",
            "roll/cp-2/1.32.4+containerd-2.1.9",
            "roll/cp-3/1.32.4+containerd-2.1.9",
        ]
    );
}

#[test]
fn kubeadm_goes_one_minor_at_a_time_through_the_newest_patch() {
    let p = plan_of(
        &uniform("1.30.14", "3.5.30", "2.1.9", 1),
        &targets("1.32.4", None, None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    // 1.31 is in the bundle as 1.31.4 and 1.31.12: the newest is the intermediate.
    assert_eq!(apply_path(&p), ["1.31.12", "1.32.4"]);
    assert_eq!(roll_path(&p, "cp-2"), ["1.31.12", "1.32.4"]);
    // 1.30 -> 1.32 is within the kubelet's three minors: the worker moves once.
    assert_eq!(roll_path(&p, "w-1"), ["1.32.4"]);
}

#[test]
fn a_missing_intermediate_minor_is_a_blocker_naming_it() {
    let p = plan(
        &lab(),
        &lab_targets(),
        &bundle_without(&["1.32.4"]),
        &Policy::default(),
    );
    let b = blocker(&p, "bundle-missing");
    assert!(b.message.contains("no Kubernetes 1.32"), "{}", b.message);
    assert!(b.message.contains("Hint:"), "{}", b.message);
    assert!(!p.can_run());
}

#[test]
fn a_missing_target_is_a_blocker_listing_what_the_bundle_has() {
    let p = plan_of(&lab(), &targets("1.33.9", Some("3.5.30"), Some("2.1.9")));
    let b = blocker(&p, "bundle-missing");
    assert!(b.message.contains("no Kubernetes 1.33.9"), "{}", b.message);
    assert_eq!(p.blockers.len(), 1, "reported once: {:#?}", p.blockers);
    assert!(b.message.contains("1.33.4"), "{}", b.message);
}

#[test]
fn workers_skip_minors_the_kubelet_skew_allows() {
    // Cluster API's example: 1.29 -> 1.33, workers 1.29 -> 1.32 -> 1.33.
    let p = plan_of(
        &uniform("1.29.15", "3.5.30", "2.1.9", 2),
        &targets("1.33.4", None, None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(apply_path(&p), ["1.30.14", "1.31.12", "1.32.4", "1.33.4"]);
    assert_eq!(roll_path(&p, "w-1"), ["1.32.4", "1.33.4"]);
    assert_eq!(roll_path(&p, "w-2"), ["1.32.4", "1.33.4"]);
    // The workers catch up after the control plane reached 1.32 and before it moves to 1.33.
    let caught_up = position(&p, "roll/w-1/1.32.4");
    assert!(position(&p, "roll/cp-3/1.32.4") < caught_up);
    assert!(caught_up < position(&p, "kubeadm-apply/cp-1/1.33.4"));
}

#[test]
fn each_worker_catches_up_only_when_its_own_kubelet_would_fall_out_of_skew() {
    let mut state = uniform("1.30.14", "3.6.5", "2.1.9", 0);
    state.nodes.push(worker("w-old", "1.29.15", "2.1.9"));
    state.nodes.push(worker("w-new", "1.30.14", "2.1.9"));
    let p = plan_of(&state, &targets("1.34.2", None, None));
    assert!(p.can_run(), "{:#?}", p.blockers);
    // w-old would be 4 minors behind 1.33, w-new 4 behind 1.34.
    assert_eq!(roll_path(&p, "w-old"), ["1.32.4", "1.34.2"]);
    assert_eq!(roll_path(&p, "w-new"), ["1.33.4", "1.34.2"]);
}

#[test]
fn workers_roll_in_batches_of_max_unavailable() {
    let state = uniform("1.32.4", "3.5.30", "2.1.9", 5);
    let p = plan(
        &state,
        &targets("1.33.4", None, None),
        &bundle(),
        &Policy { max_unavailable: 2 },
    );
    let batches: Vec<Vec<String>> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Roll {
                nodes,
                worker: true,
                ..
            } => Some(nodes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        batches,
        [vec!["w-1", "w-2"], vec!["w-3", "w-4"], vec!["w-5"]]
    );
}

#[test]
fn a_batch_never_mixes_nodes_whose_containerd_moves_with_nodes_whose_does_not() {
    let mut state = uniform("1.32.4", "3.5.30", "2.1.9", 0);
    state.nodes.push(worker("w-1", "1.32.4", "1.7.24"));
    state.nodes.push(worker("w-2", "1.32.4", "2.1.9"));
    state.nodes.push(worker("w-3", "1.32.4", "2.1.9"));
    let p = plan(
        &state,
        &targets("1.33.4", None, Some("2.1.9")),
        &bundle(),
        &Policy { max_unavailable: 3 },
    );
    let worker_ids: Vec<String> = ids(&p)
        .into_iter()
        .filter(|id| id.starts_with("roll/w-"))
        .collect();
    assert_eq!(
        worker_ids,
        ["roll/w-1/1.33.4+containerd-2.1.9", "roll/w-2,w-3/1.33.4"]
    );
}

#[test]
fn a_patch_upgrade_is_one_kubeadm_step() {
    let p = plan_of(
        &uniform("1.33.1", "3.5.30", "2.1.9", 1),
        &targets("1.33.4", None, None),
    );
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(apply_path(&p), ["1.33.4"]);
    assert_eq!(roll_path(&p, "w-1"), ["1.33.4"]);
}

#[test]
fn no_downgrade_of_a_minor() {
    let p = plan_of(
        &uniform("1.32.4", "3.5.30", "2.1.9", 1),
        &targets("1.31.4", None, None),
    );
    let b = blocker(&p, "downgrade");
    assert_eq!(b.node.as_deref(), Some("cp-1"));
    assert_eq!(
        b.message,
        "Node cp-1: the target 1.31.4 would downgrade the minor of kube-apiserver 1.32.4, \
         kubelet 1.32.4, kubeadm 1.32.4 running here; expected a target of 1.32.4 or newer. \
         Hint: kubegrid never downgrades; set the target to the running version or newer"
    );
    // One blocker per Node.
    assert_eq!(p.blockers.len(), 4, "{:#?}", p.blockers);
    assert!(p.steps.is_empty(), "{:#?}", ids(&p));
    assert!(!p.can_run());
}

#[test]
fn no_downgrade_of_a_patch_either() {
    let p = plan_of(
        &uniform("1.33.4", "3.5.30", "2.1.9", 1),
        &targets("1.33.1", None, None),
    );
    let b = blocker(&p, "downgrade-patch");
    assert!(
        b.message.contains("would downgrade the patch of"),
        "{}",
        b.message
    );
    assert!(!p.can_run());
}
