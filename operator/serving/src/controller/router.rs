//! The router of an LLMService that scales to zero (see `render::router`): its Deployment, its
//! disruption budget and the replicas' `<name>-backend` Service exist exactly while the spec
//! asks for `idleReplicaCount: 0` and the controller knows the router's image.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service, policy::v1::PodDisruptionBudget};
use kube::{Api, ResourceExt, api::PatchParams};

use super::{
    Context,
    reconcile::{apply, delete_if_present, patch},
};
use crate::{LLMService, error::Result, render};

/// Where an LLMService's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// Straight to the replicas: the spec does not scale to zero.
    Direct,
    /// Through the router.
    Routed,
    /// Straight to the replicas while the router, just deployed, has no available pod: until
    /// one can hold requests, KEDA must not go to zero either.
    RouterStarting,
    /// Straight to the replicas although the spec scales to zero: the controller runs
    /// without `--router-image`, so it must not let KEDA go to zero.
    NoRouterImage,
}

/// Applies the router and the backend Service, or removes them; returns the route, by which
/// the caller points `<name>` at the router or at the replicas.
pub(super) async fn route(ctx: &Context, svc: &LLMService) -> Result<Route> {
    let wanted = render::scales_to_zero(svc);
    match (&ctx.router_image, wanted) {
        (Some(image), true) => {
            // The backend first: the router forwards to it as soon as it runs.
            apply(ctx, svc, &render::backend_service(svc)).await?;
            // The apply's answer is the stored Deployment, whose status says whether a
            // router pod is available.
            let name = render::router_name(svc);
            let router: Deployment = patch(
                ctx,
                &svc.namespace().unwrap_or_default(),
                &name,
                &PatchParams::apply(crate::names::MANAGER).force(),
                &render::router_deployment(svc, image),
            )
            .await
            .map_err(|source| crate::error::Error::ApplyObject {
                kind: "Deployment",
                name,
                source,
            })?;
            apply(ctx, svc, &render::router_disruption_budget(svc)).await?;
            let available = router
                .status
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            Ok(if available > 0 {
                Route::Routed
            } else {
                Route::RouterStarting
            })
        }
        (image, _) => {
            // Most services never had a router: one read instead of three deletes each pass.
            // The Deployment goes last in `remove`, so a half-removed router is still found.
            let deployments: Api<Deployment> =
                Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
            if deployments
                .get_opt(&render::router_name(svc))
                .await
                .map_err(|source| crate::error::Error::ReadObjects {
                    kind: "Deployment",
                    source,
                })?
                .is_some()
            {
                remove(ctx, svc).await?;
            }
            Ok(if wanted && image.is_none() {
                Route::NoRouterImage
            } else {
                Route::Direct
            })
        }
    }
}

/// The `<name>` Service for `route`.
pub(super) fn front_service(svc: &LLMService, route: Route) -> serde_json::Value {
    if route == Route::Routed {
        render::router_service(svc)
    } else {
        render::service(svc)
    }
}

/// Removes the router's objects (of a deleted LLMService, or one that no longer scales to
/// zero).
pub(super) async fn remove(ctx: &Context, svc: &LLMService) -> Result<()> {
    let ns = svc.namespace().unwrap_or_default();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    delete_if_present(&budgets, "PodDisruptionBudget", &render::router_name(svc)).await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    delete_if_present(&services, "Service", &render::backend_name(svc)).await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    delete_if_present(&deployments, "Deployment", &render::router_name(svc)).await
}

/// The Autoscaling condition's message while the router starts.
pub(super) fn router_starting(svc: &LLMService) -> String {
    format!(
        "waiting for a pod of the router Deployment {} to be available: until then requests go straight to the replicas and KEDA keeps minReplicas",
        render::router_name(svc)
    )
}

/// `route`'s word for the Autoscaling condition when it keeps the service from scaling to
/// zero.
pub(super) const NO_ROUTER_IMAGE: &str = "spec.scaling.keda.idleReplicaCount is 0, but the serving controller runs without --router-image, so nothing would hold requests while no replica runs: KEDA keeps at least minReplicas; deploy the controller with --router-image (kubegrid serving-manifests and Cluster.spec.serving set it)";
