//! A CA rotation asked for with `kubegrid.io/rotate-ca: <ca>`: the engine's `rotate-ca`
//! operation (new CA, trust both, re-issue, drop the old one; each phase journaled, so a
//! failed or interrupted rotation resumes at the next try), its progress in
//! `status.certificates.rotation`, and the annotation removed once it is done.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use kubegrid_api::{Cluster, Node, ROTATE_CA_ANNOTATION, RotationStatus};
use kubegrid_engine::certs::{CaKind, RotationReport};
use serde_json::json;

use super::{
    RETRY_INTENT, Writer, describe, failed, publish, renewal::update_kubeconfig, retry_key, run,
};
use crate::{
    context::Context,
    error::{Error, Result},
    operation::key,
    runner::{CertsJob, RunOutcome},
};

/// The phase a rotation reports once it finished.
pub const DONE: &str = "done";

/// Runs (or resumes) the rotation of `ca` on `nodes`.
pub async fn run_rotation(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    nodes: &[Node],
    ca: CaKind,
) -> Result<Action> {
    let cluster_key = key(cluster);
    if let Some(wait) = ctx.wait_left(&retry_key(&cluster_key), RETRY_INTENT) {
        return Ok(Action::requeue(wait));
    }
    let mut writer = Writer::fresh(clusters, cluster).await?;
    let previous = cluster
        .status
        .as_ref()
        .and_then(|s| s.certificates.as_ref())
        .and_then(|c| c.rotation.clone());
    let resuming = previous
        .as_ref()
        .is_some_and(|r| r.ca == ca.as_str() && r.phase != DONE);
    let note = if resuming {
        format!("resuming the rotation of the {ca} CA (annotation {ROTATE_CA_ANNOTATION})")
    } else {
        // The first phase; the engine reports where it got after the run.
        let starting = RotationStatus {
            ca: ca.as_str().into(),
            phase: "new-ca".into(),
            completed: Vec::new(),
        };
        writer
            .write(ctx, json!({"rotation": starting, "message": null}), None)
            .await?;
        format!("rotating the {ca} CA (annotation {ROTATE_CA_ANNOTATION})")
    };
    publish(ctx, cluster, EventType::Normal, "RotationStarted", note).await;
    let kubeconfig_before = ctx.journal.kubeconfig(&cluster_key).await?;
    let result = match run(ctx, cluster, nodes, CertsJob::RotateCa(ca)).await {
        Ok(result) => result,
        Err(e) => {
            let why = format!("rotating the {ca} CA failed: {e}; it resumes at the next try");
            return failed(ctx, &mut writer, "RotationFailed", &why, None).await;
        }
    };
    let rotation = result.certs.as_ref().and_then(|r| r.rotation.clone());
    if let Some(r) = &rotation {
        writer
            .write(ctx, json!({"rotation": progress(r)}), None)
            .await?;
    }
    let done = result.outcome == RunOutcome::Succeeded
        && rotation.as_ref().is_some_and(|r| r.phase == DONE);
    if !done {
        let at = rotation
            .as_ref()
            .map(|r| format!(" in phase {}", r.phase))
            .unwrap_or_default();
        let why = format!(
            "rotating the {ca} CA stopped{at} (operation {}): {}; it resumes from the journal at the next try",
            result.operation,
            describe(&result)
        );
        return failed(ctx, &mut writer, "RotationFailed", &why, None).await;
    }
    update_kubeconfig(
        ctx,
        cluster,
        kubeconfig_before.as_deref(),
        result.kubeconfig.as_deref(),
    )
    .await?;
    remove_annotation(clusters, cluster).await?;
    let phases = rotation
        .as_ref()
        .map(|r| r.completed.join(", "))
        .unwrap_or_default();
    let note = format!(
        "the {ca} CA was rotated (phases {phases}; operation {}); annotation {ROTATE_CA_ANNOTATION} removed",
        result.operation
    );
    publish(ctx, cluster, EventType::Normal, "RotationFinished", note).await;
    ctx.succeeded(&retry_key(&cluster_key));
    // The next reconcile reads the hosts again: every certificate changed.
    ctx.certs.update(&cluster_key, |m| m.recheck = true);
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// The status form of the engine's rotation progress.
pub fn progress(r: &RotationReport) -> RotationStatus {
    RotationStatus {
        ca: r.ca.as_str().into(),
        phase: r.phase.clone(),
        completed: r.completed.clone(),
    }
}

/// Removes `kubegrid.io/rotate-ca` from the Cluster (a merge patch: nothing else changes).
async fn remove_annotation(clusters: &Api<Cluster>, cluster: &Cluster) -> Result<()> {
    let name = cluster.name_any();
    let patch = json!({"metadata": {"annotations": {ROTATE_CA_ANNOTATION: null}}});
    clusters
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(Error::kube(format!(
            "remove annotation {ROTATE_CA_ANNOTATION} from Cluster {}",
            key(cluster)
        )))
}
