use kubegrid_journal::{
    Error, FinalStatus, HostOutcome, OUTPUT_TAIL_BYTES, OperationId, OperationKind,
    OperationStatus, TaskState,
};

use crate::{Kind, apply, fresh, on_both_backends, task};

on_both_backends!(
    begin_record_finish_round_trip,
    events_filter_by_host,
    a_second_result_for_the_same_phase_replaces_the_first,
    output_keeps_only_its_tail,
    unknown_and_finished_operations_are_refused,
    kinds_round_trip_as_text,
);

async fn begin_record_finish_round_trip(kind: Kind) {
    let journal = fresh(kind).await;
    let first = journal.begin(apply(&["h1", "h2", "h3"])).await.unwrap();
    let events = [
        task("h1", "prepare", "sysctl", TaskState::Changed),
        task("h2", "prepare", "sysctl", TaskState::Unchanged),
        task("h1", "runtime", "containerd", TaskState::Changed),
        task("h2", "runtime", "containerd", TaskState::Failed),
        task("h2", "runtime", "restart", TaskState::Skipped),
    ];
    for ev in &events {
        journal.record(first, ev).await.unwrap();
    }
    let down = HostOutcome {
        ok: false,
        error: Some("connection lost".into()),
    };
    journal
        .host_result(first, "h3", "prepare", down)
        .await
        .unwrap();
    journal
        .host_result(first, "h1", "prepare", ok())
        .await
        .unwrap();

    let running = journal.operation(first).await.unwrap().unwrap();
    assert_eq!(running.status, OperationStatus::Running);
    assert_eq!(running.finished_ms, None);
    assert_eq!(running.duration_ms, None);
    assert_eq!(running.owner_pid, std::process::id());

    journal
        .finish(first, FinalStatus::Failed, Some("failed on 2 hosts".into()))
        .await
        .unwrap();
    let second = journal.begin(apply(&["h1"])).await.unwrap();
    assert!(second > first);

    let op = journal.operation(first).await.unwrap().unwrap();
    assert_eq!(op.kind, OperationKind::Apply);
    assert_eq!(op.cluster, "lab");
    assert_eq!(op.spec_digest, "sha256:0123");
    assert_eq!(op.hosts, ["h1", "h2", "h3"]);
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(op.summary.as_deref(), Some("failed on 2 hosts"));
    assert_eq!((op.changed, op.failed, op.hosts_failed), (2, 1, 2));
    let finished = op.finished_ms.expect("finished time");
    assert!(finished >= op.started_ms);
    assert_eq!(op.duration_ms, Some((finished - op.started_ms) as u64));
    assert!(
        op.last_activity_ms
            .is_some_and(|t| t >= op.started_ms && t <= finished)
    );

    let stored = journal.events(first, None).await.unwrap();
    let seen: Vec<_> = stored
        .iter()
        .map(|e| (e.host.as_str(), e.phase.as_str(), e.task.as_str(), e.status))
        .collect();
    let want: Vec<_> = events
        .iter()
        .map(|e| (e.host.as_str(), e.phase.as_str(), e.task.as_str(), e.status))
        .collect();
    assert_eq!(seen, want, "events come back in recording order");
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(stored[0].message, "sysctl on h1");
    assert_eq!(stored[0].duration_ms, 12);
    assert!(stored[0].changed && !stored[1].changed);

    let results = journal.host_results(first).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].host, "h3");
    assert!(!results[0].ok);
    assert_eq!(results[0].error.as_deref(), Some("connection lost"));
    assert!(results[1].ok && results[1].error.is_none());

    let listed = journal.operations(10).await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(listed[0].status, OperationStatus::Running);
    assert_eq!(journal.operations(1).await.unwrap().len(), 1);
}

async fn events_filter_by_host(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1", "h2"])).await.unwrap();
    for (host, name) in [("h1", "a"), ("h2", "b"), ("h1", "c"), ("h2", "d")] {
        journal
            .record(id, &task(host, "p", name, TaskState::Unchanged))
            .await
            .unwrap();
    }
    let h2: Vec<_> = journal
        .events(id, Some("h2"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.task)
        .collect();
    assert_eq!(h2, ["b", "d"]);
    assert!(journal.events(id, Some("nope")).await.unwrap().is_empty());
    assert_eq!(journal.events(id, None).await.unwrap().len(), 4);
}

async fn a_second_result_for_the_same_phase_replaces_the_first(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    let failed = HostOutcome {
        ok: false,
        error: Some("timeout".into()),
    };
    journal
        .host_result(id, "h1", "prepare", failed)
        .await
        .unwrap();
    journal
        .host_result(id, "h1", "prepare", ok())
        .await
        .unwrap();
    let results = journal.host_results(id).await.unwrap();
    assert_eq!(results.len(), 1);
    assert!(results[0].ok);
}

async fn output_keeps_only_its_tail(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    let mut ev = task("h1", "p", "cmd", TaskState::Failed);
    ev.output = format!("HEAD{}é-the-end", "x".repeat(10_000));
    journal.record(id, &ev).await.unwrap();
    let stored = &journal.events(id, None).await.unwrap()[0].output;
    assert!(stored.len() <= OUTPUT_TAIL_BYTES);
    assert!(stored.len() >= OUTPUT_TAIL_BYTES - 3);
    assert!(stored.ends_with("xé-the-end"));
    assert!(!stored.contains("HEAD"));
}

async fn unknown_and_finished_operations_are_refused(kind: Kind) {
    let journal = fresh(kind).await;
    let missing = OperationId(999);
    let err = journal
        .record(missing, &task("h1", "p", "t", TaskState::Changed))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownOperation { id, .. } if id == missing),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&journal.path().display().to_string()),
        "{err}"
    );
    let err = journal
        .host_result(
            missing,
            "h1",
            "p",
            HostOutcome {
                ok: true,
                error: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownOperation { .. }), "{err}");
    let err = journal
        .finish(missing, FinalStatus::Succeeded, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownOperation { .. }), "{err}");
    assert!(journal.operation(missing).await.unwrap().is_none());

    let id = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .finish(id, FinalStatus::Succeeded, None)
        .await
        .unwrap();
    let err = journal
        .finish(id, FinalStatus::Failed, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlreadyFinished {
                status: OperationStatus::Succeeded,
                ..
            }
        ),
        "{err}"
    );
    let op = journal.operation(id).await.unwrap().unwrap();
    assert_eq!(
        op.status,
        OperationStatus::Succeeded,
        "a refused finish changes nothing"
    );
}

async fn kinds_round_trip_as_text(kind: Kind) {
    let journal = fresh(kind).await;
    let mut plan = apply(&[]);
    plan.kind = OperationKind::Plan;
    let plan_id = journal.begin(plan).await.unwrap();
    let mut upgrade = apply(&[]);
    upgrade.kind = OperationKind::Upgrade;
    let upgrade_id = journal.begin(upgrade).await.unwrap();
    let mut certs = apply(&[]);
    certs.kind = OperationKind::Certs;
    let certs_id = journal.begin(certs).await.unwrap();
    let mut later = apply(&[]);
    later.kind = OperationKind::Other("rotate-certs".into());
    let later_id = journal.begin(later).await.unwrap();
    let plan = journal.operation(plan_id).await.unwrap().unwrap();
    assert_eq!(plan.kind, OperationKind::Plan);
    assert!(plan.hosts.is_empty());
    let upgrade = journal.operation(upgrade_id).await.unwrap().unwrap();
    assert_eq!(upgrade.kind, OperationKind::Upgrade);
    let certs = journal.operation(certs_id).await.unwrap().unwrap();
    assert_eq!(certs.kind, OperationKind::Certs);
    assert_eq!(serde_json::to_value(&certs).unwrap()["kind"], "certs");
    let later = journal.operation(later_id).await.unwrap().unwrap();
    assert_eq!(later.kind, OperationKind::Other("rotate-certs".into()));
    let json = serde_json::to_value(&later).unwrap();
    assert_eq!(json["kind"], "rotate-certs");
    assert_eq!(json["status"], "running");
}

/// A successful host result.
fn ok() -> HostOutcome {
    HostOutcome {
        ok: true,
        error: None,
    }
}
