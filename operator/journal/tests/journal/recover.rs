use kubegrid_journal::{Error, FinalStatus, OperationStatus, TaskState};

use crate::{apply, fresh, raw, task};

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let pid = child.id();
    child.wait().expect("reap `true`");
    i64::from(pid)
}

#[tokio::test]
async fn an_operation_whose_owner_died_is_marked_interrupted() {
    let (_dir, journal) = fresh().await;
    let orphan = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .record(orphan, &task("h1", "p", "a", TaskState::Changed))
        .await
        .unwrap();
    let live = journal.begin(apply(&["h1"])).await.unwrap();

    let mut conn = raw(&journal).await;
    sqlx::query("UPDATE operations SET owner_pid = ? WHERE id = ?")
        .bind(dead_pid())
        .bind(orphan.0)
        .execute(&mut conn)
        .await
        .unwrap();

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

#[tokio::test]
async fn a_recycled_pid_is_not_a_live_owner() {
    let (_dir, journal) = fresh().await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    // This process's pid, but a different start time: the pid was reused by someone else.
    let mut conn = raw(&journal).await;
    sqlx::query("UPDATE operations SET owner_start = owner_start + 1 WHERE id = ?")
        .bind(id.0)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal.recover_interrupted().await.unwrap(), [id]);
    let op = journal.operation(id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Interrupted);
}
