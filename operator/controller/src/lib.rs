//! kubegrid's operator: watches `Cluster` and `Node` resources and runs the shared engine on
//! their hosts, with per-node progress in status, Events, retries with backoff, resume after
//! restarts, and one writer through a leader Lease.
//!
//! ```text
//! elect ──leader──► Controller<Cluster> (+ Nodes mapped to their Cluster)
//!   │                   └─ reconcile ─► operation::prepare ─► Runner (engine) ─► outcome
//!   └─lost──► the Controller future is dropped at once: running operations stop mid-phase
//!             and the next leader resumes them from the journal.
//! ```

pub mod certs;
pub mod context;
pub mod error;
pub mod gpus;
pub mod health;
pub mod immutable;
pub mod inputs;
/// Leader election over a Lease ([`kubegrid_lease`]), under its old path.
pub use kubegrid_lease as leader;
pub mod members;
pub mod metrics;
pub mod operation;
pub mod outcome;
pub mod reconcile;
pub mod runner;
pub mod secrets;
pub mod status;
pub mod tracker;
pub mod upgrade;

use std::{future::Future, sync::Arc};

use futures::{FutureExt, StreamExt};
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, reflector::ObjectRef, watcher},
};
use kubegrid_api::{Cluster, Node};
use tokio::sync::watch;

pub use context::{Backoff, Context, Settings};
pub use error::{Error, Result};

/// Which namespaces the operator watches.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// Every namespace (a ClusterRole).
    #[default]
    All,
    /// One namespace (a Role there).
    Namespace(String),
}

/// Runs the operator until `shutdown` completes: elects, reconciles while leading, and stops
/// acting the moment leadership is lost. On shutdown it releases the Lease if it holds it.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    lease: leader::LeaseConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (tx, mut leading) = watch::channel(false);
    let mut election = tokio::spawn(leader::elect(ctx.client.clone(), lease.clone(), tx));
    let probe = tokio::spawn(probe_api(Arc::clone(&ctx), lease.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            // Mapped to a bool so no watch guard is held across the awaits that follow.
            open = leading.wait_for(|l| *l).map(|r| r.is_ok()) => if !open {
                break election_ended(&mut election).await;
            },
        }
        ctx.metrics.set_leader(true);
        tracing::info!(identity = %lease.identity, "leading: reconciling");
        let controller = controller(Arc::clone(&ctx), &scope);
        tokio::select! {
            _ = &mut shutdown => {
                ctx.metrics.set_leader(false);
                break Ok(());
            }
            () = controller => {
                tracing::warn!("controller stopped while leading; standing by");
            }
            open = leading.wait_for(|l| !*l).map(|r| r.is_ok()) => {
                ctx.metrics.set_leader(false);
                if !open {
                    // The election itself ended: nobody renews the Lease any more.
                    break election_ended(&mut election).await;
                }
                tracing::warn!(identity = %lease.identity, "lost the Lease: stopped acting");
            }
        }
        ctx.metrics.set_leader(false);
    };
    probe.abort();
    // The election stops first: left running, it could take the Lease again after release.
    election.abort();
    let held = *leading.borrow();
    if held && let Err(e) = leader::release(&ctx.client, &lease).await {
        tracing::warn!("releasing the Lease: {e}");
    }
    result
}

/// Keeps `/readyz` true while the API server answers a read of the Lease, leader or not: a
/// standby must be Ready too, or a rolling update that waits for it never finishes.
async fn probe_api(ctx: Arc<Context>, lease: leader::LeaseConfig) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace);
    loop {
        let answered = tokio::time::timeout(lease.renew_interval, api.get_opt(&lease.name)).await;
        ctx.probes.set_api_reachable(matches!(answered, Ok(Ok(_))));
        tokio::time::sleep(lease.retry_interval).await;
    }
}

async fn election_ended(
    election: &mut tokio::task::JoinHandle<kubegrid_lease::Result<()>>,
) -> Result<()> {
    match election.await {
        Ok(result) => result.map_err(Error::from),
        Err(e) => Err(Error::Election {
            reason: e.to_string(),
        }),
    }
}

/// The Cluster controller: reconciles Clusters, and a Cluster again whenever one of its Nodes
/// changes.
pub fn controller(ctx: Arc<Context>, scope: &Scope) -> impl Future<Output = ()> + Send {
    let client: Client = ctx.client.clone();
    let (clusters, nodes): (Api<Cluster>, Api<Node>) = match scope {
        Scope::All => (Api::all(client.clone()), Api::all(client)),
        Scope::Namespace(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
    };
    Controller::new(clusters, watcher::Config::default())
        .watches(nodes, watcher::Config::default(), |node: Node| {
            let ns = node.namespace()?;
            Some(ObjectRef::<Cluster>::new(&node.spec.cluster_name).within(&ns))
        })
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("reconcile: {e}");
            }
        })
}
