//! What the journal keeps about a requested reboot, and what a later run decides from it.
//!
//! Before `systemctl reboot` is sent, the engine stores a pending request for the host (the
//! operation, the phase and the boot id at that moment) in the cluster's state. It is removed
//! once the host answered with another boot id. If kubegrid dies in between, the next run's
//! `reboot:` phase finds the request: a boot id that differs from the stored one means the
//! reboot happened, so it is recorded and never requested again; the same boot id means the
//! request never took effect (it may not even have been sent), so it is sent again.

use kubegrid_journal::{Journal, OperationId, TaskRecord, TaskState};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A reboot requested and not yet seen done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pending {
    /// The operation that requested it.
    pub operation: i64,
    /// Its `reboot:` phase.
    pub phase: String,
    /// The host's boot id when it was requested.
    pub boot_id: String,
    /// When, in ms since the epoch.
    pub requested_at_ms: u64,
}

/// What one host's `reboot:` phase does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing: no reboot wanted, none pending.
    Nothing,
    /// Reboot the host now: a new request, or one pending that has not taken effect yet.
    Reboot {
        /// The request already in the journal, sent again.
        pending: Option<Pending>,
    },
    /// A pending request took effect while no kubegrid waited for it: record it, no reboot.
    AlreadyRebooted(Pending),
    /// A pending request never took effect and the predicate no longer holds: drop it.
    NoLongerNeeded(Pending),
}

/// Decides from the pending request (if any), the boot id the host reports now and whether
/// the phase's predicate holds for it. A boot id other than the requested one always wins:
/// a reboot is never requested twice for one request.
pub(crate) fn decide(pending: Option<Pending>, boot_id: &str, wanted: bool) -> Decision {
    match pending {
        Some(p) if p.boot_id != boot_id => Decision::AlreadyRebooted(p),
        Some(p) if wanted => Decision::Reboot { pending: Some(p) },
        Some(p) => Decision::NoLongerNeeded(p),
        None if wanted => Decision::Reboot { pending: None },
        None => Decision::Nothing,
    }
}

/// The cluster-state key of a host's pending reboot in one phase: a playbook may reboot a
/// host in more than one phase, and each phase settles only its own request.
pub(crate) fn key(host: &str, phase: &str) -> String {
    format!("reboot/{host}/{phase}")
}

/// The host's pending reboot request in `phase`, if any. An unreadable record is reported
/// rather than ignored: ignoring it could reboot the host twice.
pub(crate) async fn load(
    journal: &Journal,
    cluster: &str,
    host: &str,
    phase: &str,
) -> Result<Option<Pending>, Error> {
    let Some(text) = journal.state(cluster, &key(host, phase)).await? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Protocol {
            host: host.to_string(),
            message: format!(
                "the journal's pending reboot record `{}` cannot be read ({e}); remove it with the journal tools once you have checked the host",
                key(host, phase)
            ),
        })
}

/// Stores the request before it is sent.
pub(crate) async fn store(
    journal: &Journal,
    cluster: &str,
    host: &str,
    pending: &Pending,
) -> Result<(), Error> {
    let text = serde_json::to_string(pending).map_err(|e| Error::Protocol {
        host: host.to_string(),
        message: format!("cannot encode the pending reboot record: {e}"),
    })?;
    journal
        .put_state(cluster, &key(host, &pending.phase), &text)
        .await?;
    Ok(())
}

/// Removes the request once it is done (or no longer needed).
pub(crate) async fn clear(
    journal: &Journal,
    cluster: &str,
    host: &str,
    phase: &str,
) -> Result<(), Error> {
    journal.delete_state(cluster, &key(host, phase)).await?;
    Ok(())
}

/// Journals one step of a host's reboot as a task of the phase, so `kubegrid history`
/// shows it with the operation.
pub(crate) async fn note(
    journal: &Journal,
    op: OperationId,
    host: &str,
    phase: &str,
    task: &str,
    duration_ms: u64,
    message: &str,
) {
    let rec = TaskRecord {
        host: host.to_string(),
        phase: phase.to_string(),
        task: task.to_string(),
        status: TaskState::Changed,
        duration_ms,
        message: message.to_string(),
        output: String::new(),
    };
    if let Err(e) = journal.record(op, &rec).await {
        tracing::warn!("journal: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(boot: &str) -> Pending {
        Pending {
            operation: 7,
            phase: "gpu-reboot".into(),
            boot_id: boot.into(),
            requested_at_ms: 1,
        }
    }

    #[test]
    fn a_new_boot_id_means_the_request_was_done_and_is_never_sent_again() {
        // Whether or not the predicate still holds: a second reboot for one request is wrong.
        for wanted in [true, false] {
            assert_eq!(
                decide(Some(pending("a")), "b", wanted),
                Decision::AlreadyRebooted(pending("a"))
            );
        }
    }

    #[test]
    fn the_same_boot_id_means_the_request_has_not_taken_effect() {
        assert_eq!(
            decide(Some(pending("a")), "a", true),
            Decision::Reboot {
                pending: Some(pending("a"))
            }
        );
        assert_eq!(
            decide(Some(pending("a")), "a", false),
            Decision::NoLongerNeeded(pending("a"))
        );
    }

    #[test]
    fn without_a_pending_request_the_predicate_decides() {
        assert_eq!(decide(None, "a", true), Decision::Reboot { pending: None });
        assert_eq!(decide(None, "a", false), Decision::Nothing);
    }

    #[test]
    fn records_survive_their_json_form() {
        let text = serde_json::to_string(&pending("x")).unwrap();
        assert!(text.contains("\"bootId\":\"x\""), "{text}");
        assert_eq!(
            serde_json::from_str::<Pending>(&text).unwrap(),
            pending("x")
        );
    }
}
