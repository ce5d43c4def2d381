//! Choosing the backend by URL, and how a journal that cannot be reached is reported.

use kubegrid_journal::{Backend, Error, Journal};

use crate::{apply, journal_path, pg};

#[tokio::test]
async fn sqlite_urls_and_plain_paths_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path());
    let by_url = Journal::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite:// URL");
    assert_eq!(by_url.backend(), Backend::Sqlite);
    assert_eq!(by_url.path(), path);
    let id = by_url.begin(apply(&["h1"])).await.unwrap();

    for url in [
        path.display().to_string(),
        format!("sqlite:{}", path.display()),
        format!("SQLite://{}", path.display()),
    ] {
        let again = Journal::connect(&url).await.expect(&url);
        assert_eq!(again.backend(), Backend::Sqlite, "{url}");
        assert!(again.operation(id).await.unwrap().is_some(), "{url}");
    }
    let by_path = Journal::open(&path).await.unwrap();
    assert!(by_path.operation(id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_postgres_url_is_shown_without_its_password() {
    let url = pg::server().database().await;
    // The throwaway server trusts local connections, so the password is never checked.
    let with_password = url.replace("kubegrid@", "kubegrid:hunter22@");
    for url in [
        with_password.clone(),
        url.replace("postgres://", "postgresql://"),
        format!("{url}&password=hunter22"),
    ] {
        let journal = Journal::connect(&url).await.expect(&url);
        assert_eq!(journal.backend(), Backend::Postgres);
        let shown = journal.path().display().to_string();
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(
            shown.contains(&pg::server().socket_dir().display().to_string()),
            "{shown}"
        );
        journal.begin(apply(&["h1"])).await.unwrap();
    }
    assert_eq!(
        Journal::connect(&with_password)
            .await
            .unwrap()
            .path()
            .display()
            .to_string(),
        with_password.replace("hunter22", "***")
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_an_open_error_naming_it_without_the_password() {
    let nowhere = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://kubegrid:hunter22@localhost/journal?host={}",
        nowhere.path().join("no-socket-here").display()
    );
    let err = Journal::connect(&url).await.expect_err("nothing listens");
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no-socket-here"), "{message}");
    assert!(!message.contains("hunter22"), "{message}");
    assert!(message.contains("hint:"), "{message}");
}

#[tokio::test]
async fn a_missing_postgres_database_is_an_open_error() {
    let url = pg::server().url("no_such_database");
    let err = Journal::connect(&url).await.expect_err("no such database");
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("no_such_database"), "{chain}");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://root:hunter22@db/journal", "sqlite::memory:", ""] {
        let err = Journal::connect(url).await.expect_err(url);
        assert!(
            matches!(err, Error::UnsupportedUrl { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }
}
