//! The Cluster's and Nodes' status around an upgrade: condition `Upgrading` True (reason
//! `Rolling`, naming the running step) while it runs, then False with reason `Succeeded`,
//! `Paused`, `Blocked` or `Failed`; `status.kubernetesVersion` follows the journal's
//! installed version, which moves after each `kubeadm upgrade apply`.

use std::collections::BTreeMap;

use kube::{Api, ResourceExt, runtime::events::EventType};
use kubegrid_api::{Cluster, ClusterPhase, Condition, Node, NodePhase};
use kubegrid_journal::Journal;
use serde_json::{Value, json};

use super::Change;
use crate::{
    context::Context,
    error::{Error, Result},
    immutable,
    operation::{self, reference},
    outcome,
    runner::{JobKind, RunOutcome, RunResult, UpgradeSummary},
    status::{self, DEGRADED, PROGRESSING, READY, condition},
    tracker::{self, HostState},
};

/// Condition type: an upgrade runs (True), or how the last one ended (False).
pub const UPGRADING: &str = "Upgrading";

fn conditions_of(cluster: &Cluster) -> &[Condition] {
    cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Where the tracker names the running step while an upgrade rolls.
pub struct Rolling {
    /// The Cluster's namespace.
    pub clusters: Api<Cluster>,
    /// The Cluster's name.
    pub name: String,
    /// The generation the upgrade carries out.
    pub generation: Option<i64>,
    /// What the upgrade changes, on one line.
    pub change: String,
    /// The journal, for the installed version.
    pub journal: Journal,
    /// The journal's name for the Cluster.
    pub key: String,
}

impl Rolling {
    /// Step `id` starts: `Upgrading` names it, and `status.kubernetesVersion` shows what the
    /// control plane runs now (the previous step may have been a `kubeadm upgrade apply`).
    pub async fn step(&self, id: &str) -> Result<()> {
        let read = self.clusters.get_status(&self.name).await;
        let cluster = read.map_err(Error::kube(format!("read Cluster {}", self.key)))?;
        let message = format!("{}: running step {id}", self.change);
        let mut patch = json!({
            "conditions": status::merge(conditions_of(&cluster), vec![
                condition(UPGRADING, true, "Rolling", &message, self.generation),
            ], &status::now()),
        });
        if let Some(v) = self.journal.installed_version(&self.key).await? {
            patch["kubernetesVersion"] = json!(kubegrid_engine::upgrade::display(&v));
        }
        status::patch_cluster(&self.clusters, &self.name, patch).await
    }
}

/// Records that `spec.upgrade.paused` keeps the upgrade from starting (an Event only when
/// it was not paused already).
pub async fn paused_before(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    change: &Change,
) -> Result<()> {
    let message = format!(
        "spec.upgrade.paused is true: the upgrade ({}) waits; set it to false to go on",
        change.summary()
    );
    // The stored Cluster, not this reconcile's copy: a copy read before a roll stopped
    // mid-way would overwrite the condition that says where it stopped.
    let stored = clusters
        .get_opt(&cluster.name_any())
        .await
        .map_err(crate::error::Error::kube(format!(
            "read Cluster {}",
            cluster.name_any()
        )))?;
    let old = conditions_of(stored.as_ref().unwrap_or(cluster));
    // A roll paused mid-way already says where it stopped.
    let already = old
        .iter()
        .any(|c| c.type_ == UPGRADING && c.reason == "Paused");
    if already {
        return Ok(());
    }
    let gen_ = cluster.metadata.generation;
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "conditions": status::merge(old, vec![
                condition(PROGRESSING, false, "Paused", &message, gen_),
                condition(UPGRADING, false, "Paused", &message, gen_),
            ], &status::now()),
        }),
    )
    .await?;
    let cluster_ref = reference(cluster);
    let event = EventType::Normal;
    tracker::publish_with(&ctx.recorder, &cluster_ref, event, "UpgradePaused", message).await;
    Ok(())
}

/// Marks the Cluster Upgrading before the operation; the phase stays as it is (the cluster
/// keeps serving while it rolls).
pub async fn starting(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    change: &Change,
) -> Result<()> {
    let gen_ = cluster.metadata.generation;
    let message = format!("upgrading: {}", change.summary());
    let planning = format!("{}: planning from the live versions", change.summary());
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "message": message,
            "conditions": status::merge(conditions_of(cluster), vec![
                condition(PROGRESSING, true, "Upgrading", &message, gen_),
                condition(UPGRADING, true, "Rolling", &planning, gen_),
            ], &status::now()),
        }),
    )
    .await?;
    let cluster_ref = reference(cluster);
    let event = EventType::Normal;
    tracker::publish_with(
        &ctx.recorder,
        &cluster_ref,
        event,
        "UpgradeStarted",
        message,
    )
    .await;
    Ok(())
}

/// How an upgrade operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every planned step finished (or none was needed).
    Succeeded(String),
    /// `spec.upgrade.paused` stopped it between steps.
    Paused(String),
    /// Refused before any change: the blockers.
    Blocked(String),
    /// A step failed or the roll stopped: which, and where the Nodes were left.
    Failed(String),
}

impl Ended {
    /// The `Upgrading` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Succeeded(_) => "Succeeded",
            Self::Paused(_) => "Paused",
            Self::Blocked(_) => "Blocked",
            Self::Failed(_) => "Failed",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Succeeded(m) | Self::Paused(m) | Self::Blocked(m) | Self::Failed(m) => m,
        }
    }
}

/// How `result` ended, in words for status.
pub fn ended(result: &RunResult, change: &Change) -> Ended {
    let summary = result.upgrade.clone().unwrap_or_default();
    let failed_hosts = || -> Vec<String> {
        result
            .hosts
            .iter()
            .filter(|h| !h.ok)
            .map(|h| {
                format!(
                    "{} failed in {}: {}",
                    h.name,
                    h.failed_phase.as_deref().unwrap_or("?"),
                    h.error.as_deref().unwrap_or("")
                )
            })
            .collect()
    };
    match &result.outcome {
        RunOutcome::PreflightFailed(findings) => {
            let why = if summary.blockers.is_empty() {
                findings.clone()
            } else {
                summary.blockers.clone()
            };
            Ended::Blocked(format!("nothing was changed: {}", why.join("; ")))
        }
        RunOutcome::Unreachable => Ended::Blocked(format!(
            "nothing was changed: {}",
            failed_hosts().join("; ")
        )),
        RunOutcome::HostsFailed => Ended::Failed(failure(&summary, &failed_hosts())),
        RunOutcome::ClusterFailed(why) => Ended::Failed(why.clone()),
        RunOutcome::Succeeded if summary.paused => {
            let next = summary
                .planned
                .get(summary.done.len())
                .cloned()
                .unwrap_or_default();
            Ended::Paused(format!(
                "paused by spec.upgrade.paused after {} of {} steps (next: {next}); set it to false to go on",
                summary.done.len(),
                summary.planned.len()
            ))
        }
        RunOutcome::Succeeded if summary.planned.is_empty() => Ended::Succeeded(format!(
            "{}: every Node already runs its target versions (operation {})",
            change.summary(),
            result.operation
        )),
        RunOutcome::Succeeded => Ended::Succeeded(format!(
            "{}: {} steps done (operation {})",
            change.summary(),
            summary.done.len(),
            result.operation
        )),
    }
}

/// A failed roll in words: why it stopped, and where the Nodes were left.
fn failure(summary: &UpgradeSummary, hosts: &[String]) -> String {
    let mut text = summary.stopped.clone().unwrap_or_else(|| hosts.join("; "));
    if !summary.left.is_empty() {
        let left: Vec<String> = summary
            .left
            .iter()
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        text.push_str(&format!("; left: {}", left.join(", ")));
    }
    let rest = summary.planned.len().saturating_sub(summary.done.len());
    text.push_str(&format!(
        "; {} of {} steps done, {rest} not started; fix the cause, and the retry resumes from the live versions",
        summary.done.len(),
        summary.planned.len()
    ));
    text
}

/// The Node status after an upgrade: the operation's (see [`outcome::node_status`]), and
/// a Node that a failed step left behind (its drain failed, or it failed after it) is
/// Failed with where it was left.
fn node_status(
    result: &RunResult,
    name: &str,
    node: &Node,
    state: Option<&HostState>,
    ended: &Ended,
) -> Value {
    let mut patch = outcome::node_status(result, name, node, state);
    let left = result.upgrade.as_ref().and_then(|u| u.left.get(name));
    if let (Some(left), Ended::Failed(why)) = (left, ended) {
        let base = patch["lastError"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| why.clone());
        patch["lastError"] = json!(status::truncate(&format!("{base}; left {left}"), 2048));
        if patch["phase"] != json!(NodePhase::Failed) {
            patch["phase"] = json!(NodePhase::Failed);
            patch["lastTransitionTime"] = json!(status::now());
        }
    }
    patch
}

/// Writes what an upgrade left: the Nodes' status, the Cluster's conditions, operation and
/// version, and an Event. Returns how it ended.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
pub async fn finished(
    ctx: &Context,
    clusters: &Api<Cluster>,
    nodes_api: &Api<Node>,
    cluster: &Cluster,
    nodes: &[Node],
    change: &Change,
    result: &RunResult,
    hosts: &BTreeMap<String, HostState>,
) -> Result<Ended> {
    let ended = ended(result, change);
    let mut ready = 0;
    for node in nodes {
        let name = node.name_any();
        let patch = node_status(result, &name, node, hosts.get(&name), &ended);
        let phase = serde_json::from_value::<NodePhase>(patch["phase"].clone())
            .ok()
            .or_else(|| node.status.as_ref().and_then(|s| s.phase));
        ready += usize::from(phase == Some(NodePhase::Ready));
        status::patch_node(nodes_api, &name, Some(node.spec.roles_column()), patch).await?;
    }
    let gen_ = cluster.metadata.generation;
    let message = ended.message().to_string();
    let mut conditions = vec![condition(UPGRADING, false, ended.reason(), &message, gen_)];
    let mut patch = json!({
        "nodes": {"total": nodes.len(), "ready": ready},
        "operation": outcome::operation_status(ctx, JobKind::Upgrade, result.operation).await?,
    });
    let (type_, event) = match &ended {
        Ended::Succeeded(_) => {
            immutable::remember_cluster(clusters, cluster).await?;
            conditions.extend([
                condition(
                    READY,
                    true,
                    "Installed",
                    &format!("{ready} of {} Nodes Ready", nodes.len()),
                    gen_,
                ),
                condition(PROGRESSING, false, "Succeeded", &message, gen_),
                condition(DEGRADED, false, "AsExpected", "", gen_),
            ]);
            patch["phase"] = json!(ClusterPhase::Ready);
            patch["message"] = Value::Null;
            (EventType::Normal, "UpgradeSucceeded")
        }
        Ended::Paused(_) => {
            conditions.push(condition(PROGRESSING, false, "Paused", &message, gen_));
            patch["message"] = json!(status::truncate(&message, 1024));
            (EventType::Normal, "UpgradePaused")
        }
        Ended::Blocked(_) => {
            // Nothing changed: the cluster runs as before, Ready as it was.
            conditions.push(condition(
                PROGRESSING,
                false,
                "RetryScheduled",
                "the upgrade is blocked; retrying with backoff",
                gen_,
            ));
            patch["message"] = json!(status::truncate(&message, 1024));
            (EventType::Warning, "UpgradeBlocked")
        }
        Ended::Failed(_) => {
            conditions.extend([
                condition(READY, false, "UpgradeFailed", &message, gen_),
                condition(
                    PROGRESSING,
                    false,
                    "RetryScheduled",
                    &format!(
                        "operation {} failed; retrying with backoff",
                        result.operation
                    ),
                    gen_,
                ),
                condition(DEGRADED, true, "UpgradeFailed", &message, gen_),
            ]);
            patch["phase"] = json!(ClusterPhase::Degraded);
            patch["message"] = json!(status::truncate(&message, 1024));
            (EventType::Warning, "UpgradeFailed")
        }
    };
    patch["conditions"] = json!(status::merge(
        conditions_of(cluster),
        conditions,
        &status::now()
    ));
    if let Some(v) = ctx
        .journal
        .installed_version(&operation::key(cluster))
        .await?
    {
        patch["kubernetesVersion"] = json!(kubegrid_engine::upgrade::display(&v));
    }
    status::patch_cluster(clusters, &cluster.name_any(), patch).await?;
    let note = format!("operation {}: {message}", result.operation);
    tracker::publish_with(&ctx.recorder, &reference(cluster), type_, event, note).await;
    Ok(ended)
}

/// The spec asks for the versions the cluster runs again while `Upgrading` still says an
/// upgrade waits or is blocked: it goes to False with reason `UpToDate`.
pub async fn settle(clusters: &Api<Cluster>, cluster: &Cluster) -> Result<()> {
    let old = conditions_of(cluster);
    let waiting = old
        .iter()
        .any(|c| c.type_ == UPGRADING && matches!(c.reason.as_str(), "Paused" | "Blocked"));
    if !waiting {
        return Ok(());
    }
    let message = "the spec asks for the versions the cluster runs; no upgrade to do";
    let gen_ = cluster.metadata.generation;
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "conditions": status::merge(old, vec![
                condition(UPGRADING, false, "UpToDate", message, gen_),
            ], &status::now()),
        }),
    )
    .await
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
