//! One reconcile of a Cluster that needs an upgrade: wait while paused, else prepare the
//! upgrade job, run it with `spec.upgrade.paused` mirrored into the running roll, and write
//! what it left.

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt, runtime::controller::Action};
use kubegrid_api::{Cluster, Node};

use super::{Change, status};
use crate::{
    context::Context,
    error::{Error, Result},
    operation::{self, key},
    outcome,
    runner::JobKind,
};

/// How often a running roll re-reads `spec.upgrade.paused`.
const PAUSE_POLL: Duration = Duration::from_secs(1);

/// Runs the upgrade `change` asks for on `live`'s Nodes that are in the cluster already
/// (Nodes not joined yet join in the install that follows it).
pub async fn run(
    ctx: &Context,
    clusters: &Api<Cluster>,
    nodes_api: &Api<Node>,
    cluster: &Cluster,
    live: &[Node],
    change: Change,
) -> Result<Action> {
    let cluster_key = key(cluster);
    if cluster.spec.upgrade.as_ref().is_some_and(|u| u.paused) {
        status::paused_before(ctx, clusters, cluster, &change).await?;
        ctx.succeeded(&cluster_key);
        return Ok(Action::await_change());
    }
    let members: Vec<String> = ctx
        .journal
        .members(&cluster_key)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let nodes: Vec<Node> = live
        .iter()
        .filter(|n| members.is_empty() || members.contains(&n.name_any()))
        .cloned()
        .collect();
    let manifest = match operation::manifest(ctx, JobKind::Upgrade, cluster, &nodes) {
        Ok(m) => m,
        Err(e) => {
            outcome::refused(ctx, clusters, cluster, live, "InvalidSpec", &e).await?;
            ctx.metrics.failure(e.category());
            return Ok(Action::await_change());
        }
    };
    let digest = operation::spec_digest(ctx, JobKind::Upgrade, cluster, &nodes);
    if let Some(wait) = ctx.wait_left(&cluster_key, &digest) {
        return Ok(Action::requeue(wait));
    }
    let prepared = operation::prepare(
        ctx,
        JobKind::Upgrade,
        cluster,
        manifest,
        digest.clone(),
        &[],
    )
    .await;
    let mut job = match prepared {
        Ok(job) => job,
        Err(e) => {
            if let Some(reason) = refusal_reason(&e) {
                outcome::refused(ctx, clusters, cluster, live, reason, &e).await?;
            }
            return Err(e);
        }
    };
    if let Some(u) = job.upgrade.as_mut() {
        u.change = change.summary();
    }
    status::starting(ctx, clusters, cluster, &change).await?;
    // Stops with this reconcile, also when it is dropped (this replica lost the Lease).
    let _watcher = job.upgrade.as_ref().map(|u| {
        AbortOnDrop(super::watch_paused(
            clusters.clone(),
            cluster.name_any(),
            Arc::clone(&u.paused),
            PAUSE_POLL,
        ))
    });
    let ran = operation::run(ctx, cluster, &nodes, job).await;
    let (result, hosts) = match ran {
        Ok(r) => r,
        Err(e) => {
            outcome::refused(ctx, clusters, cluster, live, "OperationError", &e).await?;
            return Err(e);
        }
    };
    let ended = status::finished(
        ctx, clusters, nodes_api, cluster, &nodes, &change, &result, &hosts,
    )
    .await?;
    Ok(match ended {
        // The install that follows converges at the new version.
        status::Ended::Succeeded(_) => {
            ctx.succeeded(&cluster_key);
            Action::requeue(Duration::from_millis(100))
        }
        status::Ended::Paused(_) => {
            ctx.succeeded(&cluster_key);
            Action::await_change()
        }
        status::Ended::Blocked(_) | status::Ended::Failed(_) => {
            ctx.metrics.failure(outcome::category(&result));
            Action::requeue(ctx.failed(&cluster_key, Some(&digest)))
        }
    })
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The condition reason of a job that could not be prepared, as for an install.
fn refusal_reason(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::ReadSecret { .. } => "SecretMissing",
        Error::ReadConfigMap { .. } => "ConfigMapMissing",
        Error::Bundle { .. } => "BundleInvalid",
        Error::InvalidSpec { .. } => "InvalidSpec",
        _ => return None,
    })
}
