//! One roll of Nodes in a batch: (workers) `kubeadm upgrade node`, cordon and drain through
//! the Eviction API, the new containerd and kubelet, Ready, uncordon; and how kubegrid marks
//! the Nodes it cordons so that it uncordons only those.

use std::time::Instant;

use kube::Client;
use kubegrid_plan::ClusterContext;

use super::{
    StepResult,
    steps::{fail, part, phase},
};
use crate::{error::Error, operation::Run, progress::Progress};

/// The progress phase of cordoning and draining a Node in a roll.
pub const DRAIN_PHASE: &str = "drain";
/// The progress phase of waiting for a rolled Node to be Ready.
pub const READY_PHASE: &str = "ready";
/// The progress phase of uncordoning a rolled Node.
pub const UNCORDON_PHASE: &str = "uncordon";

/// The annotation kubegrid puts on a Node it cordons for an upgrade, so that a later run
/// uncordons only Nodes it cordoned itself, never one an administrator cordoned.
pub const CORDONED_BY: &str = "kubegrid.io/cordoned-for-upgrade";

/// A batch of Nodes: (workers) `kubeadm upgrade node`, then cordon and drain each, the new
/// containerd and kubelet, Ready, uncordon.
pub(super) async fn roll_nodes(
    run: &mut Run,
    client: &Client,
    out: &mut StepResult,
    ctx: &ClusterContext,
    nodes: &[String],
    containerd: bool,
    worker: bool,
) -> Result<(), Error> {
    if worker && !phase(run, out, ctx, "kubeadm-node", nodes).await? {
        return Ok(());
    }
    let mut drained = Vec::new();
    for node in nodes {
        let started = Instant::now();
        begin(run, node, DRAIN_PHASE, "cordon and drain");
        let result = cordon_and_drain(run, client, node).await;
        done(run, node, DRAIN_PHASE, result.as_ref().err());
        part(out, node, DRAIN_PHASE, started, result.is_ok());
        match result {
            Ok(()) => drained.push(node.clone()),
            Err(why) if run.req.options.upgrade.force_drain => {
                tracing::warn!(%node, "drain failed, upgrading anyway (--force): {why}");
                drained.push(node.clone());
            }
            Err(why) => {
                // Nothing was changed on this Node nor on the others of the batch yet: all
                // of them go back into service, and the roll stops here.
                for n in drained.iter().chain(std::iter::once(node)) {
                    let back = uncordon(client, n).await;
                    out.left.insert(
                        n.clone(),
                        match back {
                            Ok(()) => "uncordoned, not upgraded".into(),
                            Err(e) => format!("not upgraded; uncordoning failed: {e}"),
                        },
                    );
                }
                fail(out, format!("draining {node} failed: {why}"));
                return Ok(());
            }
        }
    }
    let mut ok = true;
    if containerd {
        ok = phase(run, out, ctx, "node-containerd", nodes).await?;
    }
    if ok {
        ok = phase(run, out, ctx, "node-kubelet", nodes).await?;
    }
    if !ok {
        for n in nodes {
            out.left
                .insert(n.clone(), "cordoned: failed after its drain".into());
        }
        return Ok(());
    }
    for node in nodes {
        let started = Instant::now();
        begin(run, node, READY_PHASE, "wait until Ready");
        let ready = kubegrid_cluster::wait_ready(
            client,
            node,
            run.req.options.upgrade.ready_timeout,
            run.req.options.drain.poll_interval,
        )
        .await;
        done(run, node, READY_PHASE, ready.as_ref().err());
        part(out, node, READY_PHASE, started, ready.is_ok());
        if let Err(e) = ready {
            out.left
                .insert(node.clone(), "cordoned: not Ready after its upgrade".into());
            fail(out, e.to_string());
            return Ok(());
        }
        let started = Instant::now();
        begin(run, node, UNCORDON_PHASE, "uncordon");
        let back = uncordon(client, node).await;
        done(run, node, UNCORDON_PHASE, back.as_ref().err());
        part(out, node, UNCORDON_PHASE, started, back.is_ok());
        if let Err(e) = back {
            fail(out, e);
            return Ok(());
        }
    }
    Ok(())
}

/// Cordons (marking the Node as cordoned by kubegrid unless an administrator had already
/// cordoned it) and drains it through the Eviction API.
async fn cordon_and_drain(run: &Run, client: &Client, node: &str) -> Result<(), String> {
    let conditions = kubegrid_cluster::node_conditions(client)
        .await
        .map_err(|e| e.to_string())?;
    let already = conditions.get(node).is_some_and(|c| c.unschedulable);
    if !already {
        kubegrid_cluster::annotate_node(client, node, CORDONED_BY, Some(&run.op.0.to_string()))
            .await
            .map_err(|e| e.to_string())?;
    }
    kubegrid_cluster::drain(client, node, &run.req.options.drain)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Uncordons a Node that kubegrid cordoned (it carries [`CORDONED_BY`]); one an
/// administrator cordoned before the upgrade stays cordoned.
pub(super) async fn uncordon(client: &Client, node: &str) -> Result<(), String> {
    let ours = kubegrid_cluster::node_annotation(client, node, CORDONED_BY)
        .await
        .map_err(|e| e.to_string())?;
    if ours.is_none() {
        return Ok(());
    }
    kubegrid_cluster::uncordon(client, node)
        .await
        .map_err(|e| e.to_string())?;
    kubegrid_cluster::annotate_node(client, node, CORDONED_BY, None)
        .await
        .map_err(|e| e.to_string())
}

/// Progress: a Node began an engine-side part of its roll.
fn begin(run: &Run, node: &str, phase: &str, task: &str) {
    run.observer.event(&Progress::TaskStarted {
        host: node.to_string(),
        phase: phase.to_string(),
        task: task.to_string(),
    });
}

/// Progress: a Node finished an engine-side part of its roll.
fn done(run: &Run, node: &str, phase: &str, error: Option<&impl ToString>) {
    run.observer.event(&Progress::HostDone {
        host: node.to_string(),
        phase: phase.to_string(),
        ok: error.is_none(),
        changed: 0,
        error: error.map(ToString::to_string),
    });
}
