use kubegrid_journal::{Error, FinalStatus, OperationStatus, TaskState};

use crate::{Kind, apply, fresh, on_both_backends, task};

on_both_backends!(
    an_operation_whose_owner_died_is_marked_interrupted,
    a_recycled_pid_is_not_a_live_owner,
    an_owner_with_another_boot_id,
);

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let pid = child.id();
    child.wait().expect("reap `true`");
    i64::from(pid)
}

async fn an_operation_whose_owner_died_is_marked_interrupted(kind: Kind) {
    let journal = fresh(kind).await;
    let orphan = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .record(orphan, &task("h1", "p", "a", TaskState::Changed))
        .await
        .unwrap();
    let live = journal.begin(apply(&["h1"])).await.unwrap();

    journal
        .exec(&format!(
            "UPDATE operations SET owner_pid = {} WHERE id = {orphan}",
            dead_pid()
        ))
        .await;

    assert_eq!(journal.recover_interrupted().await.unwrap(), [orphan]);
    let op = journal.operation(orphan).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Interrupted);
    assert!(op.finished_ms.is_some_and(|t| t >= op.started_ms));
    assert!(op.summary.as_deref().unwrap().contains("interrupted"));
    assert_eq!(
        op.changed, 1,
        "what was recorded before the owner died stays"
    );

    let still = journal.operation(live).await.unwrap().unwrap();
    assert_eq!(
        still.status,
        OperationStatus::Running,
        "this process's operation is left alone"
    );

    assert!(
        journal.recover_interrupted().await.unwrap().is_empty(),
        "recovery runs once"
    );
    let err = journal
        .finish(orphan, FinalStatus::Succeeded, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyFinished { .. }), "{err}");

    let next = journal.begin(apply(&["h1"])).await.unwrap();
    assert!(next > live, "the next run records a new operation");
    journal
        .finish(live, FinalStatus::Succeeded, None)
        .await
        .unwrap();
}

async fn a_recycled_pid_is_not_a_live_owner(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    // This process's pid, but a different start time: the pid was reused by someone else.
    journal
        .exec(&format!(
            "UPDATE operations SET owner_start = owner_start + 1 WHERE id = {id}"
        ))
        .await;
    assert_eq!(journal.recover_interrupted().await.unwrap(), [id]);
    let op = journal.operation(id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Interrupted);
}

/// A dead pid under another boot id: on SQLite the machine rebooted, so the owner is gone; on
/// Postgres it may be a replica on another machine, which only the leader's
/// `interrupt_running` may judge.
async fn an_owner_with_another_boot_id(kind: Kind) {
    let journal = fresh(kind).await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .exec(&format!(
            "UPDATE operations SET owner_pid = {}, \
             owner_boot_id = '00000000-0000-0000-0000-000000000000' WHERE id = {id}",
            dead_pid()
        ))
        .await;
    let recovered = journal.recover_interrupted().await.unwrap();
    let status = journal.operation(id).await.unwrap().unwrap().status;
    match kind {
        Kind::Sqlite => {
            assert_eq!(recovered, [id]);
            assert_eq!(status, OperationStatus::Interrupted);
        }
        Kind::Postgres => {
            assert!(recovered.is_empty(), "{recovered:?}");
            assert_eq!(status, OperationStatus::Running);
            assert_eq!(
                journal
                    .interrupt_running("lab", "leader changed")
                    .await
                    .unwrap(),
                [id],
                "the new leader recovers it"
            );
        }
    }
}
