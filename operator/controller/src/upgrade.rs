//! Until kubegrid upgrades clusters, an installed Cluster whose `spec.kubernetesVersion`
//! changes is refused: no operation runs, `Progressing` goes False with reason
//! `UpgradeNotSupported` naming the installed and the requested version, and a Warning Event
//! says so. `Ready` and the phase stay as they were: the cluster still runs, at the installed
//! version. The installed version is the journal's (what the engine recorded after
//! `kubeadm init`), or `status.kubernetesVersion` for a journal rebuilt from an empty volume.

use kube::{Api, ResourceExt, runtime::events::EventType};
use kubegrid_api::Cluster;
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, Result},
    operation::{key, reference},
    status::{self, PROGRESSING, condition},
    tracker,
};

/// The condition reason and Event reason of a refused version change.
pub const REASON: &str = "UpgradeNotSupported";

/// The refusal when `cluster` asks for another version than the one it runs; `Err` only
/// when the journal cannot be read.
pub async fn refusal(ctx: &Context, cluster: &Cluster) -> Result<Option<Error>> {
    let cluster_key = key(cluster);
    let installed = match ctx.journal.installed_version(&cluster_key).await? {
        Some(v) => Some(v),
        None => cluster
            .status
            .as_ref()
            .and_then(|s| s.kubernetes_version.clone()),
    };
    Ok(kubegrid_engine::upgrade::check(
        &cluster_key,
        installed.as_deref(),
        &cluster.spec.kubernetes_version,
    )
    .err()
    .map(|e| Error::Unsupported(Box::new(e))))
}

/// Records the refusal in the Cluster's status and an Event.
pub async fn refuse(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    error: &Error,
) -> Result<()> {
    let message = error.to_string();
    let gen_ = cluster.metadata.generation;
    let old = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "message": status::truncate(&message, 1024),
            "conditions": status::merge(old, vec![
                condition(PROGRESSING, false, REASON, &message, gen_),
            ], &status::now()),
        }),
    )
    .await?;
    tracker::publish_with(
        &ctx.recorder,
        &reference(cluster),
        EventType::Warning,
        REASON,
        message,
    )
    .await;
    Ok(())
}

/// Clears a refusal that no longer holds (the spec asks for the installed version again and
/// nothing else is to do): `Progressing` goes back to False with reason `UpToDate`.
pub async fn clear(clusters: &Api<Cluster>, cluster: &Cluster) -> Result<()> {
    let old = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let refused = old
        .iter()
        .any(|c| c.type_ == PROGRESSING && c.reason == REASON);
    if !refused {
        return Ok(());
    }
    status::patch_cluster(
        clusters,
        &cluster.name_any(),
        json!({
            "message": null,
            "conditions": status::merge(old, vec![
                condition(PROGRESSING, false, "UpToDate", "the spec asks for the installed version; nothing to do", cluster.metadata.generation),
            ], &status::now()),
        }),
    )
    .await
}
