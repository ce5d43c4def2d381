use kubegrid_journal::{FinalStatus, HostOutcome, Redactor, TaskState};

use crate::{Kind, apply, fresh, fresh_with, on_both_backends, task};

/// Each input holds a secret that must not reach the file; each pair is (input, what must
/// remain in its place).
const CASES: &[(&str, &str)] = &[
    (
        "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\ndone",
        "key:\n[REDACTED]\ndone",
    ),
    ("db password=Tr0ub4dor&3;x", "db password=[REDACTED]"),
    ("PASSWD: letmein99", "PASSWD: [REDACTED]"),
    ("curl ?token=abc123def", "curl ?token=[REDACTED]"),
    ("client_secret=qwerty-42", "client_secret=[REDACTED]"),
    (
        "Authorization: Bearer eyJ0eXAi.eyJzdWIi.sig",
        "Authorization: Bearer [REDACTED]",
    ),
    (
        "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef",
        "kubeadm join 10.0.0.1:6443 --token [REDACTED]",
    ),
    (
        "sudo: wrong password, tried correct-horse-battery",
        "sudo: wrong password, tried [REDACTED]",
    ),
];

const GIVEN_SECRET: &str = "correct-horse-battery";

on_both_backends!(
    secrets_are_redacted_in_everything_stored_from_hosts,
    a_redactor_set_later_applies_from_then_on,
);

/// Every secret of [`CASES`], as it must never be stored.
const SECRETS: &[&str] = &[
    GIVEN_SECRET,
    "b3BlbnNzaC1rZXktdjE=",
    "Tr0ub4dor",
    "letmein99",
    "abc123def",
    "eyJ0eXAi",
    "0123456789abcdef",
];

async fn secrets_are_redacted_in_everything_stored_from_hosts(kind: Kind) {
    let redactor = Redactor::new([GIVEN_SECRET, "abc"]);
    let journal = fresh_with(kind, redactor).await;
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    for (input, _) in CASES {
        let mut ev = task("h1", "p", "t", TaskState::Failed);
        ev.message = (*input).to_owned();
        ev.output = format!("line before\n{input}");
        journal.record(id, &ev).await.unwrap();
    }
    let stored = journal.events(id, None).await.unwrap();
    assert_eq!(stored.len(), CASES.len());
    for (ev, (input, want)) in stored.iter().zip(CASES) {
        assert_eq!(ev.message, *want, "message from {input:?}");
        assert_eq!(
            ev.output,
            format!("line before\n{want}"),
            "output from {input:?}"
        );
    }

    let outcome = HostOutcome {
        ok: false,
        error: Some(format!("sudo failed with {GIVEN_SECRET}")),
    };
    journal.host_result(id, "h1", "p", outcome).await.unwrap();
    assert_eq!(
        journal.host_results(id).await.unwrap()[0].error.as_deref(),
        Some("sudo failed with [REDACTED]")
    );
    journal
        .finish(
            id,
            FinalStatus::Failed,
            Some(format!("h1: token={GIVEN_SECRET}x")),
        )
        .await
        .unwrap();
    let op = journal.operation(id).await.unwrap().unwrap();
    assert_eq!(op.summary.as_deref(), Some("h1: token=[REDACTED]"));

    // Looked at under the API: no stored text holds any part of a secret.
    let stored = journal
        .texts(
            "SELECT message || output FROM task_events
             UNION ALL SELECT COALESCE(error, '') FROM host_results
             UNION ALL SELECT COALESCE(summary, '') FROM operations",
        )
        .await
        .join("\n");
    for secret in SECRETS {
        assert!(!stored.contains(secret), "{secret} reached the journal");
    }

    if kind == Kind::Sqlite {
        // Nothing of any secret is anywhere in the file, the WAL folded back in on close.
        let path = journal.path().to_path_buf();
        journal.journal.clone().close().await;
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} reached the journal file");
        }
    }
}

async fn a_redactor_set_later_applies_from_then_on(kind: Kind) {
    let store = fresh(kind).await;
    let mut journal = store.reopen().await;
    journal.set_redactor(Redactor::new(["swordfish"]));
    assert_eq!(journal.redactor().secret_count(), 1);
    let id = journal.begin(apply(&["h1"])).await.unwrap();
    let mut ev = task("h1", "p", "t", TaskState::Changed);
    ev.message = "said swordfish".into();
    journal.record(id, &ev).await.unwrap();
    assert_eq!(
        journal.events(id, None).await.unwrap()[0].message,
        "said [REDACTED]"
    );
}
