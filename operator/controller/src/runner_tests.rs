//! The summary of an engine upgrade report.

use kubegrid_engine::upgrade::{StepResult, UpgradeReport};
use kubegrid_upgrade::{Blocker, Plan, Step};

use super::*;

fn roll(node: &str) -> Step {
    Step::Roll {
        nodes: vec![node.into()],
        kubelet: semver::Version::new(1, 32, 4),
        containerd: None,
        worker: true,
    }
}

fn report(steps: Vec<Step>, blockers: Vec<Blocker>) -> UpgradeReport {
    UpgradeReport {
        plan: Plan {
            cluster: "gpu".into(),
            nodes: Vec::new(),
            steps,
            blockers,
            notes: Vec::new(),
            uncordon: Vec::new(),
        },
        blockers: Vec::new(),
        resumed: None,
        steps: Vec::new(),
        paused: false,
        stopped: None,
        uncordoned: Vec::new(),
    }
}

#[test]
fn an_upgrade_report_sums_up_its_blockers_steps_and_where_nodes_were_left() {
    let mut r = report(
        vec![],
        vec![Blocker {
            node: Some("w-1".into()),
            rule: "node-ready".into(),
            message: "Node w-1 is NotReady".into(),
        }],
    );
    r.blockers.push(Blocker {
        node: None,
        rule: "kubernetes-api".into(),
        message: "the Kubernetes API did not answer".into(),
    });
    assert_eq!(
        UpgradeSummary::of(&r).blockers,
        [
            "the Kubernetes API did not answer",
            "w-1: Node w-1 is NotReady"
        ]
    );
    let mut r = report(vec![roll("w-1"), roll("w-2")], vec![]);
    let ran = |step: &Step, ok: bool| StepResult {
        id: step.id(),
        step: step.clone(),
        ok,
        error: (!ok).then(|| "draining w-2 failed".into()),
        duration_ms: 1,
        parts: Vec::new(),
        left: if ok {
            BTreeMap::new()
        } else {
            BTreeMap::from([("w-2".into(), "uncordoned, not upgraded".into())])
        },
    };
    r.steps = vec![ran(&roll("w-1"), true), ran(&roll("w-2"), false)];
    r.stopped = Some("step roll/w-2/1.32.4 failed: draining w-2 failed".into());
    let s = UpgradeSummary::of(&r);
    assert!(s.blockers.is_empty());
    assert_eq!(s.planned, ["roll/w-1/1.32.4", "roll/w-2/1.32.4"]);
    assert_eq!(s.done, ["roll/w-1/1.32.4"]);
    assert_eq!(s.left["w-2"], "uncordoned, not upgraded");
    assert_eq!(s.stopped, r.stopped);
    assert!(!s.paused);
}
