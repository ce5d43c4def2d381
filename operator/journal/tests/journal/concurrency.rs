use kubegrid_journal::{FinalStatus, Journal, OperationStatus, TaskState};

use crate::{Kind, apply, fresh, on_both_backends, task};

const EACH: usize = 60;

on_both_backends!(multi_thread: two_handles_record_into_one_journal_at_once);

/// Two handles on one journal stand in for two processes (an `apply` and a `history`, or two
/// applies; on Postgres, two operator replicas): WAL plus the busy timeout (SQLite) or the
/// server (Postgres) must let both write without losing anything.
async fn two_handles_record_into_one_journal_at_once(kind: Kind) {
    let journal = fresh(kind).await;
    let a = journal.journal.clone();
    let b = journal.reopen().await;
    let op_a = a.begin(apply(&["a1"])).await.unwrap();
    let op_b = b.begin(apply(&["b1"])).await.unwrap();

    let write = |journal: Journal, op, host: &'static str| async move {
        for i in 0..EACH {
            let ev = task(host, "p", &format!("t{i}"), TaskState::Changed);
            journal.record(op, &ev).await.unwrap();
        }
        journal
            .finish(op, FinalStatus::Succeeded, None)
            .await
            .unwrap();
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(write(a.clone(), op_a, "a1")),
        tokio::spawn(write(b.clone(), op_b, "b1")),
    );
    ra.unwrap();
    rb.unwrap();

    for (reader, op, host) in [(&b, op_a, "a1"), (&a, op_b, "b1")] {
        let events = reader.events(op, None).await.unwrap();
        let names: Vec<_> = events.iter().map(|e| e.task.clone()).collect();
        let want: Vec<_> = (0..EACH).map(|i| format!("t{i}")).collect();
        assert_eq!(names, want, "every event of {host}, in order");
        let op = reader.operation(op).await.unwrap().unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded);
        assert_eq!(op.changed, EACH as u64);
    }
}
