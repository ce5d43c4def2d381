//! Status and Events before and after an operation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::events::EventType};
use kubegrid_api::{Cluster, ClusterPhase, Condition, Node, NodePhase};
use serde_json::{Value, json};

use crate::{
    context::Context,
    error::{Error, Result},
    immutable,
    operation::{self, reference},
    reconcile::release_node,
    runner::{Job, JobKind, RunOutcome, RunResult},
    secrets,
    status::{self, DEGRADED, PROGRESSING, READY, condition},
    tracker::{self, HostState},
};

/// Whether an operation left every host done.
pub fn succeeded(result: &RunResult) -> bool {
    result.outcome == RunOutcome::Succeeded
}

/// The failures-metric category of an operation's outcome.
pub fn category(result: &RunResult) -> &'static str {
    match result.outcome {
        RunOutcome::Succeeded => "none",
        RunOutcome::HostsFailed => "hosts",
        RunOutcome::PreflightFailed(_) => "preflight",
        RunOutcome::Unreachable => "unreachable",
        RunOutcome::ClusterFailed(_) => "cluster-checks",
    }
}

fn conditions_of(cluster: &Cluster) -> &[Condition] {
    cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

fn ready_nodes(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.phase) == Some(NodePhase::Ready))
        .count()
}

/// Records that nothing was done because of `error` (a bad spec, a missing Secret, an
/// unusable bundle): Ready and Progressing go False with `reason`, and a Warning Event says
/// why.
pub async fn refused(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    nodes: &[Node],
    reason: &str,
    error: &Error,
) -> Result<()> {
    let message = error.to_string();
    let gen_ = cluster.metadata.generation;
    let phase = cluster
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(ClusterPhase::Pending);
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "phase": phase,
            "message": status::truncate(&message, 1024),
            "nodes": {"total": nodes.len(), "ready": ready_nodes(nodes)},
            "conditions": status::merge(conditions_of(cluster), vec![
                condition(READY, false, reason, &message, gen_),
                condition(PROGRESSING, false, reason, "nothing was done; see the Ready condition", gen_),
            ], &status::now()),
        }),
    )
    .await?;
    // No operation writes these Nodes' status now; their Roles column still shows.
    let nodes_api: Api<Node> = Api::namespaced(
        ctx.client.clone(),
        &cluster.namespace().unwrap_or_else(|| "default".into()),
    );
    status::sync_roles(&nodes_api, nodes).await?;
    tracker::publish_with(
        &ctx.recorder,
        &reference(cluster),
        EventType::Warning,
        reason,
        message,
    )
    .await;
    Ok(())
}

/// Marks the Cluster Progressing and its Nodes Pending or Removing before an operation.
pub async fn starting(
    ctx: &Context,
    clusters: &Api<Cluster>,
    nodes_api: &Api<Node>,
    cluster: &Cluster,
    live: &[Node],
    removing: &[Node],
    job: &Job,
) -> Result<()> {
    let gen_ = cluster.metadata.generation;
    // A version change on an installed cluster runs an upgrade instead (see `upgrade`):
    // every install operation installs or converges at the installed version.
    let (phase, reason) = match job.resume_from {
        Some(_) => (ClusterPhase::Provisioning, "Resuming"),
        None => (ClusterPhase::Provisioning, "Installing"),
    };
    let what = match job.resume_from {
        Some(id) => format!(
            "resuming interrupted operation {id} on {} host(s)",
            live.len()
        ),
        None => format!("{} on {} host(s)", job.kind.as_str(), live.len()),
    };
    let mut new = vec![condition(PROGRESSING, true, reason, &what, gen_)];
    if !conditions_of(cluster).iter().any(|c| c.type_ == READY) {
        new.push(condition(READY, false, reason, "not installed yet", gen_));
    }
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "phase": phase,
            "message": what,
            "nodes": {"total": live.len(), "ready": ready_nodes(live)},
            "conditions": status::merge(conditions_of(cluster), new, &status::now()),
        }),
    )
    .await?;
    for node in live {
        let mut patch = json!({"desiredState": "Present"});
        if node.status.as_ref().and_then(|s| s.phase).is_none() {
            patch["phase"] = json!(NodePhase::Pending);
            patch["lastTransitionTime"] = json!(status::now());
        }
        status::patch_node(
            nodes_api,
            &node.name_any(),
            Some(node.spec.roles_column()),
            patch,
        )
        .await?;
    }
    for node in removing {
        let patch = json!({
            "desiredState": "Absent",
            "phase": NodePhase::Removing,
            "lastTransitionTime": status::now(),
        });
        status::patch_node(
            nodes_api,
            &node.name_any(),
            Some(node.spec.roles_column()),
            patch,
        )
        .await?;
    }
    tracker::publish_with(
        &ctx.recorder,
        &reference(cluster),
        EventType::Normal,
        "OperationStarted",
        what,
    )
    .await;
    Ok(())
}

/// The Cluster-level summary of a failed operation: the condition reason and a message that
/// names the hosts.
fn failure(result: &RunResult) -> (&'static str, String) {
    let hosts: Vec<String> = result
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
        .collect();
    match &result.outcome {
        RunOutcome::Succeeded => ("Installed", String::new()),
        RunOutcome::HostsFailed => ("HostsFailed", hosts.join("; ")),
        RunOutcome::Unreachable => ("HostsUnreachable", hosts.join("; ")),
        RunOutcome::PreflightFailed(findings) => (
            "PreflightFailed",
            format!("nothing was changed: {}", findings.join("; ")),
        ),
        RunOutcome::ClusterFailed(why) => ("ClusterChecksFailed", why.clone()),
    }
}

/// The Node status after an operation.
pub(crate) fn node_status(
    result: &RunResult,
    name: &str,
    node: &Node,
    state: Option<&HostState>,
) -> Value {
    let host = result.hosts.iter().find(|h| h.name == name);
    let was = node.status.as_ref().and_then(|s| s.phase);
    let mut patch = json!({
        "currentStep": null,
        "operation": result.operation,
    });
    if let Some(key) = result.host_keys.get(name) {
        patch["hostKey"] = json!(key);
    }
    if let Some(facts) = host.and_then(|h| h.facts.as_ref()) {
        patch["facts"] = json!(facts);
    }
    if let Some(versions) = host.and_then(|h| h.versions.as_ref()) {
        patch["versions"] = json!(versions);
    }
    if let Some(s) = state.filter(|s| !s.phase_times.is_empty()) {
        patch["phaseTimes"] = json!(s.phase_times);
    }
    let phase = match (host, &result.outcome) {
        (Some(h), _) if !h.ok => {
            patch["lastError"] = json!(status::truncate(
                &format!(
                    "{}: {}",
                    h.failed_phase.as_deref().unwrap_or("?"),
                    h.error.as_deref().unwrap_or("")
                ),
                2048
            ));
            Some(NodePhase::Failed)
        }
        (Some(_), RunOutcome::Succeeded | RunOutcome::HostsFailed) => {
            patch["lastError"] = Value::Null;
            Some(NodePhase::Ready)
        }
        _ => None,
    };
    if let Some(p) = phase {
        patch["phase"] = json!(p);
        if was != Some(p) {
            patch["lastTransitionTime"] = json!(status::now());
        }
    }
    patch
}

/// Writes what an operation left: Node statuses, released Nodes, the kubeconfig Secret, the
/// Cluster's status and an Event.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
pub async fn finished(
    ctx: &Context,
    clusters: &Api<Cluster>,
    nodes_api: &Api<Node>,
    cluster: &Cluster,
    live: &[Node],
    removing: &[Node],
    result: &RunResult,
    hosts: &BTreeMap<String, HostState>,
) -> Result<()> {
    let mut ready = 0;
    let mut phases: BTreeMap<String, i64> = BTreeMap::new();
    for node in live {
        let name = node.name_any();
        let patch = node_status(result, &name, node, hosts.get(&name));
        let phase = match serde_json::from_value::<NodePhase>(patch["phase"].clone()) {
            Ok(p) => Some(p),
            Err(_) => node.status.as_ref().and_then(|s| s.phase),
        };
        ready += usize::from(phase == Some(NodePhase::Ready));
        if let Some(p) = phase {
            *phases.entry(format!("{p:?}")).or_default() += 1;
        }
        status::patch_node(nodes_api, &name, Some(node.spec.roles_column()), patch).await?;
    }
    let counts: Vec<(String, i64)> = phases.into_iter().collect();
    ctx.metrics.hosts(&operation::key(cluster), &counts);
    for node in removing {
        if result.removed.contains(&node.name_any()) {
            release_node(nodes_api, node).await?;
        }
    }
    if let Some(text) = &result.kubeconfig {
        let secrets_api: Api<Secret> =
            Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
        secrets::put_kubeconfig(&secrets_api, cluster, text).await?;
    }
    let gen_ = cluster.metadata.generation;
    let ok = succeeded(result);
    let (reason, message) = failure(result);
    let conditions = if ok {
        vec![
            condition(
                READY,
                true,
                "Installed",
                &format!("{ready} of {} Nodes Ready", live.len()),
                gen_,
            ),
            condition(
                PROGRESSING,
                false,
                "Succeeded",
                &format!("operation {} succeeded", result.operation),
                gen_,
            ),
            condition(DEGRADED, false, "AsExpected", "", gen_),
        ]
    } else {
        vec![
            condition(READY, false, reason, &message, gen_),
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
            condition(DEGRADED, true, reason, &message, gen_),
        ]
    };
    let mut patch = json!({
        "phase": if ok { ClusterPhase::Ready } else { ClusterPhase::Degraded },
        "message": if ok { Value::Null } else { json!(status::truncate(&message, 1024)) },
        "nodes": {"total": live.len(), "ready": ready},
        "operation": operation_status(ctx, JobKind::Apply, result.operation).await?,
        "conditions": status::merge(conditions_of(cluster), conditions, &status::now()),
    });
    match (&result.serving, &cluster.spec.serving) {
        (Some(serving), _) => patch["serving"] = json!(serving),
        // The spec no longer asks for the layer: kubegrid leaves it running but neither
        // applies nor checks it, so an earlier report of it would be stale.
        (None, None) => patch["serving"] = Value::Null,
        // The operation stopped before the layer: the last report of it stands.
        (None, Some(_)) => {}
    }
    if ok {
        immutable::remember_cluster(clusters, cluster).await?;
        patch["observedGeneration"] = json!(gen_);
    }
    // What the engine recorded as installed, also after a failed operation whose init host
    // finished: the cluster runs that version, whatever the spec says.
    if let Some(version) = ctx
        .journal
        .installed_version(&operation::key(cluster))
        .await?
    {
        patch["kubernetesVersion"] = json!(kubegrid_engine::upgrade::display(&version));
    }
    status::patch_cluster(clusters, &cluster.name_any(), patch).await?;
    let (type_, event_reason, note) = if ok {
        (
            EventType::Normal,
            "OperationSucceeded",
            format!(
                "operation {} succeeded: {ready} of {} Nodes Ready",
                result.operation,
                live.len()
            ),
        )
    } else {
        (
            EventType::Warning,
            "OperationFailed",
            format!(
                "operation {} failed ({reason}): {message}",
                result.operation
            ),
        )
    };
    tracker::publish_with(
        &ctx.recorder,
        &reference(cluster),
        type_,
        event_reason,
        note,
    )
    .await;
    Ok(())
}

/// `status.operation` for journal operation `id` of `kind`, with its start from the journal.
pub async fn operation_status(ctx: &Context, kind: JobKind, id: i64) -> Result<Value> {
    let started = ctx
        .journal
        .operation(kubegrid_journal::OperationId(id))
        .await?
        .map(|op| kubegrid_journal::format_time(op.started_ms));
    Ok(json!(kubegrid_api::OperationStatus {
        id,
        kind: kind.operation_kind(),
        started_at: started,
    }))
}

/// Marks the Cluster Degraded with `reason` (a reset that failed).
pub async fn degraded(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    reason: &str,
    message: &str,
) -> Result<()> {
    let gen_ = cluster.metadata.generation;
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "message": status::truncate(message, 1024),
            "conditions": status::merge(conditions_of(cluster), vec![
                condition(PROGRESSING, false, "RetryScheduled", "retrying with backoff", gen_),
                condition(DEGRADED, true, reason, message, gen_),
            ], &status::now()),
        }),
    )
    .await?;
    tracker::publish_with(
        &ctx.recorder,
        &reference(cluster),
        EventType::Warning,
        reason,
        message.to_string(),
    )
    .await;
    Ok(())
}
