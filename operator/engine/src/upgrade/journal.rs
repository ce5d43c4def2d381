//! The journal's part in an upgrade: every step is recorded per Node as it ends (phase
//! `upgrade <step id>`), and a run that follows an upgrade that did not finish (failed,
//! stopped, paused or interrupted) names that operation and the steps it finished. The plan
//! made from the hosts' live versions leaves those steps out; a step the journal records as
//! finished that the hosts still need is listed as re-planned, so a disagreement between the
//! journal and the hosts shows instead of passing silently.

use kubegrid_journal::{HostOutcome, OperationKind, OperationStatus};
use serde::Serialize;

use super::StepResult;
use crate::{error::Error, operation::Run};

/// The journal phase of a step, before its id.
pub const STEP_PHASE_PREFIX: &str = "upgrade ";

/// What an earlier, unfinished upgrade of the cluster had done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    /// The earlier operation's journal id.
    pub operation: i64,
    /// How it ended (`failed`, `interrupted`; `succeeded` when it was paused).
    pub status: String,
    /// The steps it finished on every Node they name, in the order it ran them.
    pub finished_steps: Vec<String>,
    /// Steps it finished that the live versions still ask for, so this run plans them again.
    pub replanned: Vec<String>,
}

/// Records a step's end for each Node it names.
pub async fn record(run: &Run, step: &StepResult) {
    for node in step.step.nodes() {
        let outcome = HostOutcome {
            ok: step.ok,
            error: step.error.clone(),
        };
        let phase = format!("{STEP_PHASE_PREFIX}{}", step.id);
        if let Err(e) = run.journal.host_result(run.op, node, &phase, outcome).await {
            tracing::warn!("journal: {e}");
        }
    }
}

/// The cluster's latest earlier upgrade, when it did not finish every step it planned.
pub async fn earlier(run: &Run, planned: &[String]) -> Result<Option<Resumed>, Error> {
    let ops = run.journal.operations(200).await?;
    let Some(last) = ops
        .iter()
        .filter(|o| o.cluster == run.req.cluster && o.kind == OperationKind::Upgrade)
        .filter(|o| o.id != run.op)
        .max_by_key(|o| o.id.0)
    else {
        return Ok(None);
    };
    let results = run.journal.host_results(last.id).await?;
    let mut finished: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for r in &results {
        let Some(id) = r.phase.strip_prefix(STEP_PHASE_PREFIX) else {
            continue;
        };
        if !r.ok {
            failed.push(id.to_string());
        } else if !finished.iter().any(|f| f == id) {
            finished.push(id.to_string());
        }
    }
    finished.retain(|id| !failed.contains(id));
    // A run that finished every step it planned leaves nothing to resume (a paused run ends
    // `succeeded` too, but with steps left, which the live plan shows).
    if last.status == OperationStatus::Succeeded && planned.is_empty() {
        return Ok(None);
    }
    if finished.is_empty() && failed.is_empty() {
        return Ok(None);
    }
    let replanned = planned
        .iter()
        .filter(|id| finished.contains(id))
        .cloned()
        .collect();
    Ok(Some(Resumed {
        operation: last.id.0,
        status: last.status.to_string(),
        finished_steps: finished,
        replanned,
    }))
}
