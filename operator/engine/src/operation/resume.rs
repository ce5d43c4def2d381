//! Resuming an interrupted operation from the journal.
//!
//! An operation cut short (its process killed, an operator replica that lost its Lease) left
//! per-host, per-phase results in the journal. A later run of the same spec that names it in
//! [`super::Options::resume_from`] skips each playbook phase on each host that the earlier
//! run finished there, rather than running it again. Facts and preflight always run again:
//! they only read, and the hosts may have changed in between. The skipped results are copied
//! into the new operation, so it can be resumed in turn.

use std::collections::BTreeSet;

use kubegrid_journal::{HostOutcome, OperationId, OperationStatus};

use super::Run;
use crate::{error::Error, progress::Progress};

/// What an earlier run finished: `(host, phase)` pairs that ended ok.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    from: Option<OperationId>,
    done: BTreeSet<(String, String)>,
}

impl Resume {
    /// Reads what `run.req.options.resume_from` finished. Nothing is resumed from an operation
    /// of another cluster or spec, or one that finished: its results describe other intent.
    pub(crate) async fn load(run: &Run) -> Result<Resume, Error> {
        let Some(from) = run.req.options.resume_from else {
            return Ok(Resume::default());
        };
        let Some(prior) = run.journal.operation(from).await? else {
            tracing::warn!(operation = %from, "resume: no such operation; running everything");
            return Ok(Resume::default());
        };
        let same_intent =
            prior.cluster == run.req.cluster && prior.spec_digest == run.req.spec_digest;
        let unfinished = matches!(
            prior.status,
            OperationStatus::Interrupted | OperationStatus::Running
        );
        if !same_intent || !unfinished {
            tracing::info!(
                operation = %from,
                status = prior.status.as_str(),
                same_intent,
                "resume: not resuming from an operation with other intent or one that finished"
            );
            return Ok(Resume::default());
        }
        let done = run
            .journal
            .host_results(from)
            .await?
            .into_iter()
            .filter(|r| r.ok)
            .map(|r| (r.host, r.phase))
            .collect();
        Ok(Resume {
            from: Some(from),
            done,
        })
    }

    /// Whether `host` finished `phase` in the earlier run.
    pub(crate) fn finished(&self, host: &str, phase: &str) -> bool {
        self.done.contains(&(host.to_string(), phase.to_string()))
    }

    /// Records `host`'s `phase` as done in this run too, and tells the observer.
    pub(crate) async fn carry(&self, run: &Run, host: &str, phase: &str) {
        let from = self.from.map(|id| id.0).unwrap_or_default();
        run.observer.event(&Progress::TaskFinished {
            host: host.to_string(),
            phase: phase.to_string(),
            task: "resume".into(),
            status: "unchanged".into(),
            message: format!("finished in interrupted operation {from}; not run again"),
        });
        run.observer.event(&Progress::HostDone {
            host: host.to_string(),
            phase: phase.to_string(),
            ok: true,
            changed: 0,
            error: None,
        });
        let ok = HostOutcome {
            ok: true,
            error: None,
        };
        if let Err(e) = run.journal.host_result(run.op, host, phase, ok).await {
            tracing::warn!("journal: {e}");
        }
    }
}
