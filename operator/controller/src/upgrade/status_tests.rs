//! How an upgrade's end reads in status.

use super::*;
use crate::runner::HostOutcome;

fn host(name: &str, failed: Option<(&str, &str)>) -> HostOutcome {
    HostOutcome {
        name: name.into(),
        ok: failed.is_none(),
        failed_phase: failed.map(|(p, _)| p.into()),
        error: failed.map(|(_, e)| e.into()),
        facts: None,
        versions: None,
    }
}

fn result(outcome: RunOutcome, hosts: Vec<HostOutcome>, summary: UpgradeSummary) -> RunResult {
    RunResult {
        operation: 7,
        outcome,
        hosts,
        removed: Vec::new(),
        kubeconfig: None,
        host_keys: BTreeMap::new(),
        upgrade: Some(summary),
        certs: None,
        serving: None,
    }
}

fn change() -> Change {
    Change {
        what: vec!["Kubernetes v1.31.4 → v1.32.4".into()],
    }
}

fn planned() -> UpgradeSummary {
    UpgradeSummary {
        planned: vec![
            "kubeadm-apply/cp-1/1.32.4".into(),
            "roll/cp-1/1.32.4".into(),
            "roll/w-1/1.32.4".into(),
        ],
        done: vec!["kubeadm-apply/cp-1/1.32.4".into()],
        ..UpgradeSummary::default()
    }
}

#[test]
fn each_outcome_has_its_reason_and_says_what_happened() {
    let blocked = UpgradeSummary {
        blockers: vec!["w-1: Node w-1 is NotReady".into()],
        ..UpgradeSummary::default()
    };
    let r = result(RunOutcome::PreflightFailed(vec![]), vec![], blocked);
    assert_eq!(
        ended(&r, &change()),
        Ended::Blocked("nothing was changed: w-1: Node w-1 is NotReady".into())
    );
    let paused = UpgradeSummary {
        paused: true,
        ..planned()
    };
    let r = result(RunOutcome::Succeeded, vec![], paused);
    let e = ended(&r, &change());
    assert_eq!(e.reason(), "Paused");
    assert!(
        e.message()
            .contains("after 1 of 3 steps (next: roll/cp-1/1.32.4)"),
        "{e:?}"
    );
    let r = result(RunOutcome::Succeeded, vec![], UpgradeSummary::default());
    assert!(
        ended(&r, &change())
            .message()
            .contains("every Node already runs its target versions"),
    );
    let failed = UpgradeSummary {
        stopped: Some("step roll/cp-1/1.32.4 failed: draining cp-1 failed: PDB".into()),
        left: BTreeMap::from([("cp-1".into(), "uncordoned, not upgraded".into())]),
        ..planned()
    };
    let r = result(RunOutcome::HostsFailed, vec![host("cp-1", None)], failed);
    let e = ended(&r, &change());
    assert_eq!(e.reason(), "Failed");
    assert!(
        e.message().starts_with("step roll/cp-1/1.32.4 failed")
            && e.message().contains("left: cp-1 uncordoned, not upgraded")
            && e.message().contains("1 of 3 steps done, 2 not started"),
        "{e:?}"
    );
}

#[test]
fn a_node_a_failed_step_left_behind_is_failed_with_where_it_was_left() {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Node",
        "metadata": {"name": "cp-1", "namespace": "fleet"},
        "spec": {"clusterName": "gpu", "address": "10.0.0.1", "roles": ["control-plane"]},
        "status": {"phase": "Upgrading"},
    }))
    .unwrap();
    let failed = UpgradeSummary {
        stopped: Some("step roll/cp-1/1.32.4 failed: draining cp-1 failed: PDB".into()),
        left: BTreeMap::from([("cp-1".into(), "uncordoned, not upgraded".into())]),
        ..planned()
    };
    // Its drain failed: the engine counts the host as fine, the step does not.
    let r = result(RunOutcome::HostsFailed, vec![host("cp-1", None)], failed);
    let e = ended(&r, &change());
    let patch = node_status(&r, "cp-1", &node, None, &e);
    assert_eq!(patch["phase"], "Failed", "{patch:#}");
    let last = patch["lastError"].as_str().unwrap();
    assert!(
        last.contains("draining cp-1 failed") && last.ends_with("left uncordoned, not upgraded"),
        "{last}"
    );
    // A Node the roll did not stop at is Ready.
    let ok = result(RunOutcome::Succeeded, vec![host("cp-1", None)], planned());
    let patch = node_status(&ok, "cp-1", &node, None, &ended(&ok, &change()));
    assert_eq!(patch["phase"], "Ready", "{patch:#}");
}
