//! The Cluster reconciler: `reconcile -> Result<Action>`.
//!
//! A Cluster is reconciled with its Nodes (those whose `spec.clusterName` names it). It runs
//! an operation when there is something to do: intent that no successful operation carried
//! out yet, a Node that is not Ready, or a Node being deleted. Failures retry with
//! exponential backoff; an operation interrupted by a restart or a leader change resumes from
//! the journal.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::EventType,
        finalizer::{Event as Finalizer, finalizer},
    },
};
use kubegrid_api::{Cluster, ClusterPhase, DeletionPolicy, Node, NodePhase};
use kubegrid_journal::OperationStatus;
use serde_json::json;
use tracing::Instrument;

use crate::{
    context::Context,
    error::{Error, Result},
    immutable, members,
    operation::{self, key},
    outcome,
    runner::JobKind,
    secrets,
    status::{self, PROGRESSING, condition},
    tracker, upgrade,
};

/// Finalizer on Clusters: deletion waits for the hosts to be reset (or orphaned).
pub const CLUSTER_FINALIZER: &str = "kubegrid.io/cluster";
/// Finalizer on Nodes: deletion waits for the host to leave the cluster.
pub const NODE_FINALIZER: &str = "kubegrid.io/node";

/// Reconciles one Cluster.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconcile("Cluster");
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let span = tracing::info_span!("reconcile", cluster = %key(&cluster));
    let cluster = with_fresh_finalizers(&api, cluster).await?;
    finalizer(&api, CLUSTER_FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(c) => apply(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    })
}

/// The Cluster to reconcile: the controller's cached copy, or the stored one when the copy
/// lacks the finalizer. The copy can miss the finalizer that the previous reconcile just
/// added, since a watch event arrives after the write returned; kube-runtime's finalizer
/// helper would then add it again with a JSON patch whose `test` of the old list fails (422
/// on a real API server), failing the reconcile with a Warning Event. Only a Cluster without
/// the finalizer costs this read: in practice its first reconcile.
async fn with_fresh_finalizers(api: &Api<Cluster>, cluster: Arc<Cluster>) -> Result<Arc<Cluster>> {
    if cluster.finalizers().iter().any(|f| f == CLUSTER_FINALIZER) {
        return Ok(cluster);
    }
    let name = cluster.name_any();
    let stored = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("read Cluster {}", key(&cluster))))?;
    // Gone meanwhile: the finalizer helper sees the copy, as before.
    Ok(stored.map_or(cluster, Arc::new))
}

/// What to do after a failed reconcile: retry with backoff, counting the failure.
pub fn error_policy(cluster: Arc<Cluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(error.category());
    let delay = ctx.failed(&key(&cluster), None);
    tracing::warn!(
        cluster = %key(&cluster),
        category = error.category(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    // Every failure leaves an Event, also those (API, journal, files) that write no status.
    let recorder = ctx.recorder.clone();
    let reference = operation::reference(cluster.as_ref());
    let note = format!("{error} (retrying in {}s)", delay.as_secs());
    tokio::spawn(async move {
        tracker::publish_with(
            &recorder,
            &reference,
            EventType::Warning,
            "ReconcileFailed",
            note,
        )
        .await;
    });
    Action::requeue(delay)
}

/// The Nodes of `cluster`: those that name it, split into live ones and ones being deleted,
/// and those it took but that now name another Cluster (see [`immutable::check`]).
struct Members {
    live: Vec<Node>,
    leaving: Vec<Node>,
    moved: Vec<Node>,
}

async fn nodes_of(ctx: &Context, cluster: &Cluster) -> Result<Members> {
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Node> = Api::namespaced(ctx.client.clone(), &ns);
    let name = cluster.name_any();
    let all = members::related(&api, &name).await?;
    let (mine, others): (Vec<Node>, Vec<Node>) =
        all.into_iter().partition(|n| n.spec.cluster_name == name);
    let (live, leaving) = mine
        .into_iter()
        .partition(|n| n.metadata.deletion_timestamp.is_none());
    let moved = others
        .into_iter()
        .filter(|n| n.annotations().get(immutable::TAKEN_BY) == Some(&name))
        .collect();
    Ok(Members {
        live,
        leaving,
        moved,
    })
}

/// Adds (`hold`) or removes the Node finalizer. The Node is read afresh and written with
/// that read's resourceVersion: the copy the reconcile started from is stale once an
/// operation wrote the Node's status, and a finalizer list must never be written over a
/// concurrent change to it.
async fn set_node_finalizer(api: &Api<Node>, name: &str, hold: bool) -> Result<()> {
    let Some(node) = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("read Node {name}")))?
    else {
        return Ok(());
    };
    let has = node.finalizers().iter().any(|f| f == NODE_FINALIZER);
    if has == hold {
        return Ok(());
    }
    let mut finalizers: Vec<String> = node
        .finalizers()
        .iter()
        .filter(|f| *f != NODE_FINALIZER)
        .cloned()
        .collect();
    if hold {
        finalizers.push(NODE_FINALIZER.into());
    }
    let mut patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": node.resource_version(),
    }});
    if let Some(annotations) = hold.then(|| immutable::taken_by(&node)).flatten() {
        patch["metadata"]["annotations"] = annotations;
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(Error::kube(format!("update finalizers of Node {name}")))
}

/// Adds the Node finalizer where it is missing.
async fn hold_nodes(api: &Api<Node>, nodes: &[Node]) -> Result<()> {
    for node in nodes
        .iter()
        .filter(|n| !n.finalizers().iter().any(|f| f == NODE_FINALIZER))
    {
        set_node_finalizer(api, &node.name_any(), true).await?;
    }
    Ok(())
}

/// Removes the Node finalizer, letting a deleted Node go.
pub(crate) async fn release_node(api: &Api<Node>, node: &Node) -> Result<()> {
    set_node_finalizer(api, &node.name_any(), false).await
}

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action> {
    let cluster_key = key(cluster);
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let nodes_api: Api<Node> = Api::namespaced(ctx.client.clone(), &ns);
    let Members {
        live,
        leaving,
        moved,
    } = nodes_of(ctx, cluster).await?;
    hold_nodes(&nodes_api, &live).await?;
    // A deleted Node that never joined left nothing on its host to undo.
    let members: Vec<String> = ctx
        .journal
        .members(&cluster_key)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut removing = Vec::new();
    for node in leaving {
        if members.contains(&node.name_any()) {
            removing.push(node);
        } else {
            release_node(&nodes_api, &node).await?;
        }
    }
    if let Err(e) = immutable::check(cluster, &live, &moved) {
        // The API server's CEL rules refuse these edits; this catches servers that skip them.
        outcome::refused(ctx, &clusters, cluster, &live, "ImmutableFieldChanged", &e).await?;
        ctx.metrics.failure(e.category());
        return Ok(Action::await_change());
    }
    let manifest = match operation::manifest(ctx, JobKind::Apply, cluster, &live) {
        Ok(manifest) => manifest,
        Err(mut e) => {
            if let (Error::InvalidSpec { problems, .. }, false) = (&mut e, removing.is_empty()) {
                let names: Vec<String> = removing.iter().map(|n| n.name_any()).collect();
                problems.push_str(&format!(
                    "\n  (the Nodes being deleted, {}, are left out: deleting them would leave the Cluster so; they stay until the spec allows it)",
                    names.join(", ")
                ));
            }
            // Nothing but a spec change can fix this: no retry until the spec changes.
            outcome::refused(ctx, &clusters, cluster, &live, "InvalidSpec", &e).await?;
            ctx.metrics.failure(e.category());
            return Ok(Action::await_change());
        }
    };
    // Upgrade first (on the Nodes already in the cluster), then converge.
    match upgrade::change(ctx, cluster).await? {
        Some(change) => {
            return upgrade::run(ctx, &clusters, &nodes_api, cluster, &live, change).await;
        }
        None => upgrade::settle(&clusters, cluster).await?,
    }
    let digest = operation::spec_digest(ctx, JobKind::Apply, cluster, &live);
    // The periodic certificate checks are operations too, but carry out no spec.
    let last = ctx
        .journal
        .latest_operation_except(&cluster_key, crate::certs::JOURNAL_KIND)
        .await?;
    let carried_out = last
        .as_ref()
        .is_some_and(|op| op.status == OperationStatus::Succeeded && op.spec_digest == digest);
    let all_ready = live
        .iter()
        .all(|n| n.status.as_ref().and_then(|s| s.phase) == Some(NodePhase::Ready));
    let ready = |c: &Cluster| c.status.as_ref().and_then(|s| s.phase) == Some(ClusterPhase::Ready);
    let nothing_to_do = carried_out && all_ready && removing.is_empty();
    // The Cluster this reconcile got is the controller's cached copy, which can lack the
    // status the last operation just wrote: a real API server's watch event arrives after
    // the write returned, and the reconcile queued meanwhile may run first. Read the status
    // afresh before running the whole operation again only to write it.
    let fresh = if nothing_to_do && !ready(cluster) {
        let name = cluster.name_any();
        let read = clusters.get_status(&name).await;
        Some(read.map_err(Error::kube(format!("read Cluster {cluster_key}")))?)
    } else {
        None
    };
    let current = fresh.as_ref().unwrap_or(cluster);
    if nothing_to_do && ready(current) {
        status::sync_roles(&nodes_api, &live).await?;
        ctx.succeeded(&cluster_key);
        // Installed and converged: the certificates' check, renewal or rotation.
        return crate::certs::maintain(ctx, &clusters, current, &live).await;
    }
    if let Some(wait) = ctx.wait_left(&cluster_key, &digest) {
        return Ok(Action::requeue(wait));
    }
    let prepared = operation::prepare(
        ctx,
        JobKind::Apply,
        cluster,
        manifest,
        digest.clone(),
        &removing,
    );
    let job = match prepared.await {
        Ok(job) => job,
        Err(e @ Error::ReadSecret { .. }) => {
            outcome::refused(ctx, &clusters, cluster, &live, "SecretMissing", &e).await?;
            return Err(e);
        }
        Err(e @ Error::ReadConfigMap { .. }) => {
            outcome::refused(ctx, &clusters, cluster, &live, "ConfigMapMissing", &e).await?;
            return Err(e);
        }
        Err(e @ Error::Bundle { .. }) => {
            outcome::refused(ctx, &clusters, cluster, &live, "BundleInvalid", &e).await?;
            return Err(e);
        }
        // What a reference names (a ConfigMap's manifest) is invalid. Retried with backoff,
        // not only on a spec change: fixing the ConfigMap fixes it, and ConfigMaps are not
        // watched.
        Err(e @ Error::InvalidSpec { .. }) => {
            outcome::refused(ctx, &clusters, cluster, &live, "InvalidSpec", &e).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    outcome::starting(ctx, &clusters, &nodes_api, cluster, &live, &removing, &job).await?;
    let result = operation::run(ctx, cluster, &live, job).await;
    let (result, hosts) = match result {
        Ok(r) => r,
        Err(e) => {
            outcome::refused(ctx, &clusters, cluster, &live, "OperationError", &e).await?;
            return Err(e);
        }
    };
    outcome::finished(
        ctx, &clusters, &nodes_api, cluster, &live, &removing, &result, &hosts,
    )
    .await?;
    if outcome::succeeded(&result) {
        ctx.succeeded(&cluster_key);
        Ok(Action::await_change())
    } else {
        let delay = ctx.failed(&cluster_key, Some(&digest));
        ctx.metrics.failure(outcome::category(&result));
        Ok(Action::requeue(delay))
    }
}

async fn cleanup(cluster: &Cluster, ctx: &Context) -> Result<Action> {
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let nodes_api: Api<Node> = Api::namespaced(ctx.client.clone(), &ns);
    let m = nodes_of(ctx, cluster).await?;
    let all: Vec<Node> = m.live.into_iter().chain(m.leaving).collect();
    let cluster_ref = operation::reference(cluster);
    if cluster.spec.deletion_policy == DeletionPolicy::Orphan || all.is_empty() {
        for node in &all {
            release_node(&nodes_api, node).await?;
        }
        // The hosts keep running, so their admin kubeconfig must outlive the Cluster.
        secrets::disown_kubeconfig(&ctx.client, cluster).await?;
        forget(ctx, cluster);
        tracker::publish_with(
            &ctx.recorder,
            &cluster_ref,
            EventType::Normal,
            "Orphaned",
            format!(
                "deletionPolicy {:?}: {} host(s) left as they are; Secret {} kept",
                cluster.spec.deletion_policy,
                all.len(),
                secrets::kubeconfig_secret_name(&cluster.name_any())
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    let prepared = match operation::manifest(ctx, JobKind::Reset, cluster, &all) {
        Ok(manifest) => {
            let digest = operation::spec_digest(ctx, JobKind::Reset, cluster, &all);
            operation::prepare(ctx, JobKind::Reset, cluster, manifest, digest, &[]).await
        }
        Err(e) => Err(e),
    };
    let job = match prepared {
        Ok(job) => job,
        Err(e) => {
            outcome::refused(ctx, &clusters, cluster, &all, "ResetBlocked", &e).await?;
            return Err(e);
        }
    };
    let cluster_key = job.cluster.clone();
    status::patch_cluster(
        &clusters,
        &cluster.name_any(),
        json!({
            "phase": ClusterPhase::Deleting,
            "conditions": status::merge(
                cluster.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default(),
                vec![condition(PROGRESSING, true, "Resetting", "deletionPolicy Reset: resetting every host", cluster.metadata.generation)],
                &status::now(),
            ),
        }),
    )
    .await?;
    let (result, _) = operation::run(ctx, cluster, &all, job).await?;
    let failed: Vec<String> = result
        .hosts
        .iter()
        .filter(|h| !h.ok)
        .map(|h| format!("{}: {}", h.name, h.error.clone().unwrap_or_default()))
        .collect();
    if outcome::succeeded(&result) {
        for node in &all {
            release_node(&nodes_api, node).await?;
        }
        forget(ctx, cluster);
        tracker::publish_with(
            &ctx.recorder,
            &cluster_ref,
            EventType::Normal,
            "Reset",
            format!(
                "deletionPolicy Reset: {} host(s) reset (operation {})",
                all.len(),
                result.operation
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    let reason = if failed.is_empty() {
        format!("{:?}", result.outcome)
    } else {
        failed.join("; ")
    };
    let message = format!(
        "resetting hosts failed (operation {}): {reason}",
        result.operation
    );
    let operation = outcome::operation_status(ctx, JobKind::Reset, result.operation).await?;
    status::patch_cluster(
        &clusters,
        &cluster.name_any(),
        json!({ "operation": operation }),
    )
    .await?;
    outcome::degraded(ctx, &clusters, cluster, "ResetFailed", &message).await?;
    Err(Error::ResetFailed {
        cluster: cluster_key,
        reason,
    })
}

/// Drops what the operator keeps in memory about a deleted Cluster: its backoff and its
/// hosts-by-phase series (set to 0).
fn forget(ctx: &Context, cluster: &Cluster) {
    let cluster_key = key(cluster);
    ctx.succeeded(&cluster_key);
    ctx.metrics.hosts(&cluster_key, &[]);
    ctx.metrics.certificate_expiry(&cluster_key, &[]);
    ctx.certs.forget(&cluster_key);
}
