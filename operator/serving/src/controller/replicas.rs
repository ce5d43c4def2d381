//! Converging the replicas: pod mode's Deployment, or service mode's StatefulSets, added in
//! index order and removed highest index first, each only after its pod drained.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Service,
};
use kube::{Api, ResourceExt, api::ListParams, runtime::events::EventType};

use super::{
    Context,
    reconcile::{apply, delete_if_present, publish_event},
};
use crate::{
    LLMService, ScalingMode,
    error::{Error, Result},
    names::{self, REPLICA_LABEL},
    render,
};

/// What the workloads hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Pods that exist.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready: i32,
    /// The service-mode replica being drained before removal, if any.
    pub draining: Option<String>,
}

/// Brings `svc`'s workloads to `desired` replicas in its scaling mode and removes the other
/// mode's workloads (a changed mode).
pub(crate) async fn converge(ctx: &Context, svc: &LLMService, desired: i32) -> Result<Observed> {
    let mode = svc
        .spec
        .scaling
        .as_ref()
        .map(|s| s.mode)
        .unwrap_or_default();
    match mode {
        ScalingMode::Pod => {
            let sets = stateful_sets(ctx, svc).await?;
            service_mode(ctx, svc, 0, sets).await?;
            pod_mode(ctx, svc, desired).await
        }
        ScalingMode::Service => {
            let deployments = deployments(ctx, svc);
            delete_if_present(&deployments, "Deployment", &svc.name_any()).await?;
            let sets = stateful_sets(ctx, svc).await?;
            service_mode(ctx, svc, desired, sets).await
        }
    }
}

/// Deletes the emptied workloads and the per-replica Services of a deleted LLMService;
/// whether anything was left to delete.
pub(crate) async fn remove_all(ctx: &Context, svc: &LLMService) -> Result<bool> {
    let name = svc.name_any();
    let deployments = deployments(ctx, svc);
    let had_deployment = deployments
        .get_opt(&name)
        .await
        .map_err(|source| Error::ReadObjects {
            kind: "Deployment",
            source,
        })?
        .is_some();
    delete_if_present(&deployments, "Deployment", &name).await?;
    Ok(had_deployment)
}

async fn pod_mode(ctx: &Context, svc: &LLMService, desired: i32) -> Result<Observed> {
    let api = deployments(ctx, svc);
    let read = |api: Api<Deployment>| async move {
        api.get_opt(&svc.name_any())
            .await
            .map_err(|source| Error::ReadObjects {
                kind: "Deployment",
                source,
            })
    };
    // Zero replicas needs no Deployment: one is scaled down if it exists, never created (a
    // deleted LLMService's drained Deployment must not come back).
    if desired > 0 || read(api.clone()).await?.is_some() {
        let mut object = render::deployment(svc);
        object["spec"]["replicas"] = desired.into();
        apply(ctx, svc, &object).await?;
    }
    let status = read(api).await?.and_then(|d| d.status).unwrap_or_default();
    Ok(Observed {
        replicas: status.replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        draining: None,
    })
}

async fn service_mode(
    ctx: &Context,
    svc: &LLMService,
    desired: i32,
    mut sets: BTreeMap<i32, StatefulSet>,
) -> Result<Observed> {
    let name = svc.name_any();
    for index in 0..desired {
        let existed = sets.contains_key(&index);
        apply(ctx, svc, &render::stateful_set(svc, index, 1)).await?;
        apply(ctx, svc, &render::replica_service(svc, index)).await?;
        if !existed {
            publish_about(
                ctx,
                svc,
                &name,
                index,
                EventType::Normal,
                "ReplicaAdded",
                format!(
                    "added replica {} (StatefulSet and Service)",
                    names::replica(&name, index)
                ),
            )
            .await;
        }
    }
    // Highest index first, one at a time: the lower replicas keep serving meanwhile.
    let mut draining = None;
    let excess: Vec<i32> = sets.range(desired..).map(|(i, _)| *i).rev().collect();
    for index in excess {
        let replica = names::replica(&name, index);
        let set = &sets[&index];
        let pods = set.status.as_ref().map_or(0, |s| s.replicas);
        if set.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
            apply(ctx, svc, &render::stateful_set(svc, index, 0)).await?;
            publish_about(
                ctx,
                svc,
                &name,
                index,
                EventType::Normal,
                "Draining",
                format!(
                    "draining replica {replica} before removing it: its pod finishes running and queued requests (up to {} s) before vLLM stops",
                    svc.spec.engine.drain_timeout_seconds
                ),
            )
            .await;
            draining = Some(replica);
            break;
        }
        if pods > 0 {
            draining = Some(replica);
            break;
        }
        delete_if_present(&stateful_set_api(ctx, svc), "StatefulSet", &replica).await?;
        delete_if_present(
            &Api::<Service>::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default()),
            "Service",
            &replica,
        )
        .await?;
        sets.remove(&index);
        publish_about(
            ctx,
            svc,
            &name,
            index,
            EventType::Normal,
            "ReplicaRemoved",
            format!("removed replica {replica} after its pod drained and stopped"),
        )
        .await;
    }
    let (replicas, ready) = sets.values().fold((0, 0), |(r, ok), set| {
        let s = set.status.as_ref();
        (
            r + s.map_or(0, |s| s.replicas),
            ok + s.and_then(|s| s.ready_replicas).unwrap_or(0),
        )
    });
    Ok(Observed {
        replicas,
        ready,
        draining,
    })
}

/// Publishes an Event about `svc` whose related object is replica `index`'s StatefulSet:
/// Events are aggregated by their regarding and related objects and reason, so without it
/// the removal of a second replica would only count up the first one's Event.
async fn publish_about(
    ctx: &Context,
    svc: &LLMService,
    name: &str,
    index: i32,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let related = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("StatefulSet".into()),
        name: Some(names::replica(name, index)),
        namespace: svc.namespace(),
        ..Default::default()
    };
    publish_event(ctx, svc, type_, reason, note, Some(related)).await;
}

fn deployments(ctx: &Context, svc: &LLMService) -> Api<Deployment> {
    Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default())
}

fn stateful_set_api(ctx: &Context, svc: &LLMService) -> Api<StatefulSet> {
    Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default())
}

/// `svc`'s service-mode StatefulSets by replica index, as last seen after any apply.
async fn stateful_sets(ctx: &Context, svc: &LLMService) -> Result<BTreeMap<i32, StatefulSet>> {
    let selector = names::selector(&svc.name_any());
    let list = stateful_set_api(ctx, svc)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::ReadObjects {
            kind: "StatefulSet",
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|set| {
            let index = set.labels().get(REPLICA_LABEL)?.parse().ok()?;
            Some((index, set))
        })
        .collect())
}
