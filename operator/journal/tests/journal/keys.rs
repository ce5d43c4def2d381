use kubegrid_journal::Error;

use crate::fresh;

const ED: &str = "ssh-ed25519";
const FP1: &str = "SHA256:Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";
const FP2: &str = "SHA256:YmFyYmF6MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";

#[tokio::test]
async fn pin_then_read_and_pin_again_is_a_no_op() {
    let (_dir, journal) = fresh().await;
    assert!(journal.pinned_key("lab", "h1").await.unwrap().is_none());
    journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP1)
        .await
        .unwrap();
    let pinned = journal
        .pinned_key("lab", "h1")
        .await
        .unwrap()
        .expect("pinned");
    assert_eq!(pinned.algorithm, ED);
    assert_eq!(pinned.fingerprint, FP1);
    assert_eq!(pinned.address, "10.0.0.2:22");
    assert!(pinned.first_seen_ms > 0);
    assert_eq!(pinned.replaced_ms, None);

    journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP1)
        .await
        .unwrap();
    assert_eq!(journal.pinned_key("lab", "h1").await.unwrap(), Some(pinned));
    assert!(
        journal.pinned_key("other", "h1").await.unwrap().is_none(),
        "pins belong to one cluster"
    );
}

#[tokio::test]
async fn a_different_key_is_refused_and_the_pin_kept() {
    let (_dir, journal) = fresh().await;
    journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP1)
        .await
        .unwrap();
    let err = journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP2)
        .await
        .unwrap_err();
    match &err {
        Error::KeyAlreadyPinned(conflict) => {
            assert_eq!(
                (conflict.cluster.as_str(), conflict.host.as_str()),
                ("lab", "h1")
            );
            assert_eq!(conflict.pinned_fingerprint, FP1);
            assert_eq!(conflict.offered_fingerprint, FP2);
        }
        other => panic!("expected KeyAlreadyPinned, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(FP1) && message.contains(FP2) && message.contains("h1"),
        "{message}"
    );
    let err = journal
        .pin_key("lab", "h1", "10.0.0.2:22", "ecdsa-sha2-nistp256", FP1)
        .await;
    assert!(
        matches!(err, Err(Error::KeyAlreadyPinned { .. })),
        "algorithm change is a new key"
    );
    assert_eq!(
        journal
            .pinned_key("lab", "h1")
            .await
            .unwrap()
            .unwrap()
            .fingerprint,
        FP1
    );
}

#[tokio::test]
async fn replace_and_forget() {
    let (_dir, journal) = fresh().await;
    let err = journal.replace_key("lab", "h1", ED, FP2).await.unwrap_err();
    assert!(matches!(err, Error::KeyNotPinned { .. }), "{err}");

    journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP1)
        .await
        .unwrap();
    let before = journal.pinned_key("lab", "h1").await.unwrap().unwrap();
    let previous = journal.replace_key("lab", "h1", ED, FP2).await.unwrap();
    assert_eq!(previous, before);
    let after = journal.pinned_key("lab", "h1").await.unwrap().unwrap();
    assert_eq!(after.fingerprint, FP2);
    assert_eq!(after.address, before.address);
    assert_eq!(after.first_seen_ms, before.first_seen_ms);
    assert!(after.replaced_ms.is_some());
    journal
        .pin_key("lab", "h1", "10.0.0.2:22", ED, FP2)
        .await
        .expect("new key now matches");

    assert!(journal.forget_key("lab", "h1").await.unwrap());
    assert!(journal.pinned_key("lab", "h1").await.unwrap().is_none());
    assert!(!journal.forget_key("lab", "h1").await.unwrap());
    journal
        .pin_key("lab", "h1", "10.0.0.3:22", ED, FP1)
        .await
        .expect("pins afresh");
}
