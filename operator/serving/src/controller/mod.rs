//! The LLMService controller: turns each LLMService into its workloads, Services,
//! disruption budget and KEDA ScaledObject, drains replicas before removing them, and
//! reports what exists in status.
//!
//! ```text
//! LLMService ─► validate ─► apply Service, PDB, ScaledObject ─► pod mode: Deployment
//!      │        (idleReplicaCount 0: the router's Deployment, `<name>` → router → `<name>-backend`)
//!      ▲                                                  └───► service mode: StatefulSet +
//!      │                                                         Service per replica; excess
//!      │                                                         replicas drained highest first
//!      └─── status (replicas, ready, selector, phase, endpoint, conditions) ◄─ workloads' status
//! ```

mod context;
mod reconcile;
mod replicas;
mod router;
mod status;

use std::{future::Future, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    runtime::{Controller, watcher},
};

pub use context::Context;
pub use reconcile::{error_policy, reconcile};

use crate::LLMService;

/// Runs the controller over LLMServices in `namespace` (every namespace when `None`) until
/// the stream ends, reconciling an LLMService again whenever one of its workloads (or its
/// router's Deployment) changes.
pub fn run(ctx: Arc<Context>, namespace: Option<&str>) -> impl Future<Output = ()> + Send {
    let client: Client = ctx.client.clone();
    let (services, deployments, sets): (Api<LLMService>, Api<Deployment>, Api<StatefulSet>) =
        match namespace {
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client),
            ),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
        };
    let owned = watcher::Config::default().labels(crate::names::SERVICE_LABEL);
    // The routers' Deployments carry the router label instead: their availability decides
    // when `<name>` moves to the router.
    let routers = watcher::Config::default().labels(crate::render::ROUTER_LABEL);
    Controller::new(services, watcher::Config::default())
        .owns(deployments.clone(), owned.clone())
        .owns(deployments, routers)
        .owns(sets, owned)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("reconcile: {e}");
            }
        })
}
