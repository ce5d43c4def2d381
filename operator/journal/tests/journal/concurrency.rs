use kubegrid_journal::{FinalStatus, Journal, OperationStatus, TaskState};

use crate::{apply, journal_path, task};

const EACH: usize = 60;

/// Two handles on one file stand in for two processes (an `apply` and a `history`, or two
/// applies): WAL plus the busy timeout must let both write without losing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_record_into_one_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path());
    let a = Journal::open(&path).await.unwrap();
    let b = Journal::open(&path).await.unwrap();
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
