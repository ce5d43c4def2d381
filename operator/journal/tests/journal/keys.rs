use kubegrid_journal::Error;

use crate::{Kind, fresh, on_both_backends};

on_both_backends!(
    pin_then_read_and_pin_again_is_a_no_op,
    a_different_key_is_refused_and_the_pin_kept,
    replace_and_forget,
);

const ED: &str = "ssh-ed25519";
const FP1: &str = "SHA256:Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";
const FP2: &str = "SHA256:YmFyYmF6MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";

async fn pin_then_read_and_pin_again_is_a_no_op(kind: Kind) {
    let journal = fresh(kind).await;
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

async fn a_different_key_is_refused_and_the_pin_kept(kind: Kind) {
    let journal = fresh(kind).await;
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

async fn replace_and_forget(kind: Kind) {
    let journal = fresh(kind).await;
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

on_both_backends!(multi_thread: concurrent_first_contacts_pin_exactly_one_key);

/// First contacts from two handles (two processes, or two replicas on Postgres) race: one
/// key wins, every other offer is refused naming the winner, and offers of the same key all
/// succeed.
async fn concurrent_first_contacts_pin_exactly_one_key(kind: Kind) {
    const RACERS: usize = 8;
    let journal = fresh(kind).await;
    let other = journal.reopen().await;
    let offer = |host: &'static str, i: usize, fingerprint: String| {
        let handle = if i.is_multiple_of(2) {
            journal.journal.clone()
        } else {
            other.clone()
        };
        tokio::spawn(async move {
            let pinned = handle
                .pin_key("lab", host, "10.0.0.2:22", ED, &fingerprint)
                .await;
            (fingerprint, pinned)
        })
    };

    let racers: Vec<_> = (0..RACERS)
        .map(|i| offer("h1", i, format!("SHA256:key{i}")))
        .collect();
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            (fingerprint, Ok(())) => winners.push(fingerprint),
            (_, Err(Error::KeyAlreadyPinned(conflict))) => {
                refused.push(conflict.pinned_fingerprint)
            }
            (_, Err(other)) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one key is pinned: {winners:?}");
    assert!(
        refused.iter().all(|pinned| *pinned == winners[0]),
        "{refused:?}"
    );
    let pinned = journal.pinned_key("lab", "h1").await.unwrap().unwrap();
    assert_eq!(pinned.fingerprint, winners[0]);

    let same: Vec<_> = (0..RACERS)
        .map(|i| offer("h2", i, FP1.to_owned()))
        .collect();
    for racer in same {
        let (_, pinned) = racer.await.unwrap();
        pinned.expect("the same key offered at once is pinned once, without conflict");
    }
}
