use std::os::unix::fs::PermissionsExt;

use kubegrid_journal::{FinalStatus, Journal, OperationStatus};

use crate::{apply, fresh, journal_path, raw};

#[tokio::test]
async fn fresh_file_gets_private_dir_wal_and_reopens_idempotently() {
    let (dir, journal) = fresh().await;
    let path = journal_path(dir.path());
    assert_eq!(journal.path(), path);

    let parent_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(parent_mode & 0o777, 0o700, "journal directory mode");
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(file_mode & 0o777, 0o600, "journal file mode");

    let id = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .finish(id, FinalStatus::Succeeded, None)
        .await
        .unwrap();
    journal.close().await;

    for _ in 0..2 {
        let again = Journal::open(&path).await.expect("re-open");
        let op = again
            .operation(id)
            .await
            .unwrap()
            .expect("operation survives re-open");
        assert_eq!(op.status, OperationStatus::Succeeded);

        let mut conn = raw(&again).await;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(applied, 2, "each of the two migrations applied once");
        again.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_opens_of_the_same_new_file_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path());
    let (a, b) = tokio::join!(Journal::open(&path), Journal::open(&path));
    let (a, b) = (a.expect("first open"), b.expect("second open"));
    let id = a.begin(apply(&["h1"])).await.unwrap();
    assert!(b.operation(id).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unopenable_path_names_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("journal.db");
    std::fs::create_dir(&path).unwrap();
    let err = Journal::open(&path)
        .await
        .expect_err("a directory is not a journal");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
