//! The text and JSON of the lead's e2e plan: 3 control-plane/etcd + 2 workers, 1.31.4 ->
//! 1.33.4, etcd 3.4.23 -> 3.5.30, containerd 1.6.20 -> 2.1.9.

use kubegrid_upgrade::render_text;

use crate::common::{assert_golden, golden_path, lab, lab_targets, plan_of};

#[test]
fn e2e_plan_text_matches_golden() {
    let p = plan_of(&lab(), &lab_targets());
    assert!(p.can_run(), "{:#?}", p.blockers);
    assert_eq!(render_text(&p), p.to_string());
    assert_golden(&golden_path("e2e-1.31-to-1.33.txt"), &render_text(&p));
}

#[test]
fn e2e_plan_json_matches_golden() {
    let p = plan_of(&lab(), &lab_targets());
    let json = serde_json::to_string_pretty(&p).unwrap() + "\n";
    assert_golden(&golden_path("e2e-1.31-to-1.33.json"), &json);
    // A recorded plan reads back as the same plan.
    let back: kubegrid_upgrade::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn blocked_plan_text_matches_golden() {
    // etcd left at 3.4.23 (no etcd target) and a PodDisruptionBudget at zero on a worker.
    let mut state = lab();
    state.pdbs.push(kubegrid_upgrade::Pdb {
        namespace: "shop".into(),
        name: "db".into(),
        disruptions_allowed: 0,
        nodes: vec!["w-2".into()],
    });
    let mut t = lab_targets();
    t.etcd = None;
    let p = plan_of(&state, &t);
    assert!(!p.can_run());
    assert_golden(&golden_path("blocked-etcd-and-pdb.txt"), &render_text(&p));
}
