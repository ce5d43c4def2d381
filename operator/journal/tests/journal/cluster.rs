//! What an operator reads and does per cluster: the latest operation, per-phase host results,
//! and interrupting a previous leader's operations.

use kubegrid_journal::{
    Error, FinalStatus, HostOutcome, NewOperation, OperationKind, OperationStatus, TaskState,
};

use crate::{Kind, apply, fresh, on_both_backends, task};

on_both_backends!(
    latest_operation_is_the_newest_of_that_cluster,
    interrupt_running_marks_every_running_operation_of_one_cluster,
    host_results_show_each_phase_per_host,
);

fn op_of(cluster: &str, hosts: &[&str]) -> NewOperation {
    NewOperation {
        cluster: cluster.into(),
        ..apply(hosts)
    }
}

async fn latest_operation_is_the_newest_of_that_cluster(kind: Kind) {
    let journal = fresh(kind).await;
    assert_eq!(journal.latest_operation("lab").await.unwrap(), None);

    let first = journal.begin(op_of("lab", &["h1"])).await.unwrap();
    journal
        .record(first, &task("h1", "p", "a", TaskState::Changed))
        .await
        .unwrap();
    journal
        .finish(first, FinalStatus::Succeeded, None)
        .await
        .unwrap();
    let other = journal.begin(op_of("prod", &["p1"])).await.unwrap();
    let latest = journal.latest_operation("lab").await.unwrap().unwrap();
    assert_eq!(
        latest.id, first,
        "another cluster's newer operation does not count"
    );
    assert_eq!(latest.status, OperationStatus::Succeeded);
    assert_eq!(latest.changed, 1, "with its counts");

    let mut plan = op_of("lab", &["h1", "h2"]);
    plan.kind = OperationKind::Plan;
    let second = journal.begin(plan).await.unwrap();
    let latest = journal.latest_operation("lab").await.unwrap().unwrap();
    assert_eq!(latest.id, second);
    assert_eq!(latest.kind, OperationKind::Plan);
    assert_eq!(latest.status, OperationStatus::Running);
    assert_eq!(latest.hosts, ["h1", "h2"]);
    assert_eq!(
        journal.latest_operation("prod").await.unwrap().unwrap().id,
        other
    );
    assert_eq!(journal.latest_operation("nope").await.unwrap(), None);
    // The operator's certificate checks do not hide the operation that carried out the spec.
    let mut check = op_of("lab", &["h1"]);
    check.kind = OperationKind::Certs;
    let check = journal.begin(check).await.unwrap();
    assert_eq!(
        journal.latest_operation("lab").await.unwrap().unwrap().id,
        check
    );
    let except = journal.latest_operation_except("lab", "certs").await;
    assert_eq!(except.unwrap().unwrap().id, second);
    assert_eq!(
        journal
            .latest_operation_except("nope", "certs")
            .await
            .unwrap(),
        None
    );
}

async fn interrupt_running_marks_every_running_operation_of_one_cluster(kind: Kind) {
    let journal = fresh(kind).await;
    let done = journal.begin(op_of("lab", &["h1"])).await.unwrap();
    journal
        .finish(done, FinalStatus::Failed, Some("h1 failed".into()))
        .await
        .unwrap();
    let mine = journal.begin(op_of("lab", &["h1"])).await.unwrap();
    // Another replica's operation: its owner is alive as far as any pid check can tell.
    let theirs = journal
        .reopen()
        .await
        .begin(op_of("lab", &["h2"]))
        .await
        .unwrap();
    let elsewhere = journal.begin(op_of("prod", &["p1"])).await.unwrap();

    let reason = "interrupted: operator leader changed; password=hunter22";
    let ids = journal.interrupt_running("lab", reason).await.unwrap();
    assert_eq!(
        ids,
        [mine, theirs],
        "running ones of that cluster, whoever owns them"
    );
    for id in [mine, theirs] {
        let op = journal.operation(id).await.unwrap().unwrap();
        assert_eq!(op.status, OperationStatus::Interrupted);
        assert!(op.finished_ms.is_some_and(|t| t >= op.started_ms));
        assert_eq!(
            op.summary.as_deref(),
            Some("interrupted: operator leader changed; password=[REDACTED]"),
            "the reason is stored redacted"
        );
    }
    let done = journal.operation(done).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.summary.as_deref()),
        (OperationStatus::Failed, Some("h1 failed")),
        "a finished operation keeps its outcome"
    );
    let elsewhere_op = journal.operation(elsewhere).await.unwrap().unwrap();
    assert_eq!(
        elsewhere_op.status,
        OperationStatus::Running,
        "other clusters are untouched"
    );

    assert!(
        journal
            .interrupt_running("lab", "again")
            .await
            .unwrap()
            .is_empty()
    );
    let err = journal
        .finish(mine, FinalStatus::Succeeded, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlreadyFinished {
                status: OperationStatus::Interrupted,
                ..
            }
        ),
        "the old owner cannot finish it afterwards: {err}"
    );
    assert_eq!(
        journal
            .interrupt_running("prod", "leader changed")
            .await
            .unwrap(),
        [elsewhere]
    );
}

async fn host_results_show_each_phase_per_host(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1", "h2"])).await.unwrap();
    let ok = || HostOutcome {
        ok: true,
        error: None,
    };
    journal
        .host_result(id, "h1", "prepare", ok())
        .await
        .unwrap();
    journal
        .host_result(id, "h2", "prepare", ok())
        .await
        .unwrap();
    journal
        .host_result(id, "h1", "runtime", ok())
        .await
        .unwrap();
    let lost = HostOutcome {
        ok: false,
        error: Some("connection lost".into()),
    };
    journal
        .host_result(id, "h2", "runtime", lost)
        .await
        .unwrap();

    let results = journal.host_results(id).await.unwrap();
    let seen: Vec<_> = results
        .iter()
        .map(|r| (r.host.as_str(), r.phase.as_str(), r.ok, r.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("h1", "prepare", true, None),
            ("h2", "prepare", true, None),
            ("h1", "runtime", true, None),
            ("h2", "runtime", false, Some("connection lost")),
        ]
    );
    assert!(results.iter().all(|r| r.recorded_ms > 0));
    let op = journal.operation(id).await.unwrap().unwrap();
    assert_eq!(
        op.hosts_failed, 1,
        "a failed phase result counts its host as failed"
    );
    assert!(
        journal
            .host_results(kubegrid_journal::OperationId(id.0 + 1))
            .await
            .unwrap()
            .is_empty()
    );
}
