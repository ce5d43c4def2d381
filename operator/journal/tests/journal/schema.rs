use std::os::unix::fs::PermissionsExt;

use kubegrid_journal::{Backend, FinalStatus, Journal, OperationStatus};

use crate::{Kind, apply, fresh, journal_path, new_location, on_both_backends, raw_sqlite};

on_both_backends!(reopening_applies_each_migration_once);
on_both_backends!(multi_thread: two_first_opens_of_the_same_new_journal_both_succeed);

async fn reopening_applies_each_migration_once(kind: Kind) {
    let journal = fresh(kind).await;
    let backend = match kind {
        Kind::Sqlite => Backend::Sqlite,
        Kind::Postgres => Backend::Postgres,
    };
    assert_eq!(journal.backend(), backend);
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    journal
        .finish(id, FinalStatus::Succeeded, None)
        .await
        .unwrap();
    journal.journal.clone().close().await;

    for _ in 0..2 {
        let again = journal.reopen().await;
        let op = again
            .operation(id)
            .await
            .unwrap()
            .expect("operation survives re-open");
        assert_eq!(op.status, OperationStatus::Succeeded);
        assert_eq!(
            journal.migrations_applied().await,
            4,
            "each of the four migrations applied once"
        );
        again.close().await;
    }
}

/// Two processes (or operator replicas) opening a journal that does not exist yet: both
/// create or migrate it without tripping over each other.
async fn two_first_opens_of_the_same_new_journal_both_succeed(kind: Kind) {
    let (url, _dir) = new_location(kind).await;
    let (a, b) = tokio::join!(Journal::connect(&url), Journal::connect(&url));
    let (a, b) = (a.expect("first open"), b.expect("second open"));
    let id = a.begin(apply(&["h1"])).await.unwrap();
    assert!(b.operation(id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_fresh_sqlite_file_gets_a_private_dir_and_wal() {
    let journal = fresh(Kind::Sqlite).await;
    let dir = journal._dir.as_ref().expect("sqlite temp dir");
    let path = journal_path(dir.path());
    assert_eq!(journal.path(), path);

    let parent_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(parent_mode & 0o777, 0o700, "journal directory mode");
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(file_mode & 0o777, 0o600, "journal file mode");

    let again = Journal::open(&path).await.expect("re-open by path");
    let mut conn = raw_sqlite(&again).await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
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
