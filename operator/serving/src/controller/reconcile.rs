//! One pass over one LLMService: validate, apply what it needs, converge its replicas, and
//! report. Deletion drains every replica before the finalizer goes.

use std::sync::Arc;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Service,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{Context, replicas, router, status};
use crate::{
    LLMService,
    error::{Error, Result},
    names::{FINALIZER, MANAGER, MAX_NAME_LEN, is_servable_name},
    render,
};

/// Reconciles `svc`; see the module documentation.
pub async fn reconcile(svc: Arc<LLMService>, ctx: Arc<Context>) -> Result<Action> {
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<LLMService> = Api::namespaced(ctx.client.clone(), &ns);
    if svc.meta().deletion_timestamp.is_some() {
        return finalize(&svc, &ctx, &api).await;
    }
    if !svc.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = svc.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        set_finalizers(&api, &svc, finalizers).await?;
        // The write is a change the watch delivers; the next pass goes on from there.
        return Ok(Action::await_change());
    }
    let problems = problems(&svc);
    if !problems.is_empty() {
        let message = problems.join("; ");
        if status::refused(&api, &svc, &message).await? {
            publish(&ctx, &svc, EventType::Warning, "InvalidSpec", message).await;
        }
        return Ok(Action::await_change());
    }
    let route = router::route(&ctx, &svc).await?;
    apply(&ctx, &svc, &router::front_service(&svc, route)).await?;
    apply(&ctx, &svc, &render::disruption_budget(&svc)).await?;
    let autoscaling = autoscale(&ctx, &svc, route).await?;
    let observed = replicas::converge(&ctx, &svc, svc.spec.replicas).await?;
    status::write(&api, &svc, &observed, autoscaling).await?;
    Ok(Action::requeue(ctx.resync))
}

/// Logs the failure and tries again after [`Context::retry`].
pub fn error_policy(svc: Arc<LLMService>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(
        llmservice = %svc.name_any(),
        namespace = %svc.namespace().unwrap_or_default(),
        "reconcile failed: {error}"
    );
    Action::requeue(ctx.retry)
}

/// Everything that keeps the controller from serving `svc`, each naming its field.
fn problems(svc: &LLMService) -> Vec<String> {
    let mut out = Vec::new();
    let name = svc.name_any();
    if !is_servable_name(&name) {
        out.push(format!(
            "metadata.name: {name:?} must be a DNS label of at most {MAX_NAME_LEN} characters starting with a letter: it names the Services and StatefulSets of the replicas"
        ));
    }
    out.extend(svc.spec.validate().iter().map(ToString::to_string));
    out
}

/// Applies or removes the KEDA ScaledObject; `Some((ok, reason, message))` for the
/// `Autoscaling` condition when the spec asks for KEDA. Without a router, or while it has no
/// available pod, for a service that asks to scale to zero, the object keeps `minReplicas`
/// instead (no `idleReplicaCount`).
async fn autoscale(
    ctx: &Context,
    svc: &LLMService,
    route: router::Route,
) -> Result<Option<(bool, String, String)>> {
    let api = scaled_objects(ctx, svc);
    let name = svc.name_any();
    let Some(mut object) = render::scaled_object(svc) else {
        delete_if_present(&api, "ScaledObject", &name).await?;
        return Ok(None);
    };
    // Nothing can hold requests yet: no idleReplicaCount, so KEDA stops at minReplicas.
    if matches!(
        route,
        router::Route::NoRouterImage | router::Route::RouterStarting
    ) && let Some(spec) = object["spec"].as_object_mut()
    {
        spec.remove("idleReplicaCount");
    }
    let answer = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await;
    match answer {
        Ok(_) if route == router::Route::NoRouterImage => {
            let message = router::NO_ROUTER_IMAGE.to_string();
            publish(
                ctx,
                svc,
                EventType::Warning,
                "RouterImageMissing",
                message.clone(),
            )
            .await;
            Ok(Some((false, "RouterImageMissing".into(), message)))
        }
        Ok(_) if route == router::Route::RouterStarting => Ok(Some((
            false,
            "RouterStarting".into(),
            router::router_starting(svc),
        ))),
        Ok(_) => Ok(Some((
            true,
            "ScaledObjectApplied".into(),
            format!(
                "KEDA ScaledObject {name} scales spec.replicas on: {}",
                object["spec"]["triggers"][0]["metadata"]["query"]
                    .as_str()
                    .unwrap_or_default()
            ),
        ))),
        // KEDA's CRD is not installed: serving works, scaling is manual until it is.
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let message = format!(
                "spec.scaling.keda is set but this cluster has no KEDA (keda.sh/v1alpha1 ScaledObject is not served): install KEDA in the cluster or remove spec.scaling.keda; replicas stay at spec.replicas ({})",
                svc.spec.replicas
            );
            publish(ctx, svc, EventType::Warning, "KedaMissing", message.clone()).await;
            Ok(Some((false, "KedaMissing".into(), message)))
        }
        Err(source) => Err(Error::ApplyObject {
            kind: "ScaledObject",
            name,
            source,
        }),
    }
}

fn scaled_objects(ctx: &Context, svc: &LLMService) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "scaledobjects");
    Api::namespaced_with(
        ctx.client.clone(),
        &svc.namespace().unwrap_or_default(),
        &resource,
    )
}

/// Removes `svc`'s replicas, each drained, then its other objects and the finalizer.
async fn finalize(svc: &LLMService, ctx: &Context, api: &Api<LLMService>) -> Result<Action> {
    if !svc.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let observed = replicas::converge(ctx, svc, 0).await?;
    if observed.replicas > 0 || observed.draining.is_some() {
        // The workloads' watch wakes this up as pods go; the requeue is a safety net.
        return Ok(Action::requeue(ctx.retry));
    }
    let removed = replicas::remove_all(ctx, svc).await?;
    if removed {
        return Ok(Action::requeue(ctx.retry));
    }
    let name = svc.name_any();
    let ns = svc.namespace().unwrap_or_default();
    delete_if_present(
        &Api::<Service>::namespaced(ctx.client.clone(), &ns),
        "Service",
        &name,
    )
    .await?;
    delete_if_present(
        &Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns),
        "PodDisruptionBudget",
        &name,
    )
    .await?;
    // 404 also when KEDA is not installed: nothing to remove then either.
    delete_if_present(&scaled_objects(ctx, svc), "ScaledObject", &name).await?;
    router::remove(ctx, svc).await?;
    let finalizers = svc
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, svc, finalizers).await?;
    Ok(Action::await_change())
}

/// Writes `metadata.finalizers`, only if the object did not change since it was read.
async fn set_finalizers(
    api: &Api<LLMService>,
    svc: &LLMService,
    finalizers: Vec<String>,
) -> Result<()> {
    let patch = json!({"metadata": {
        "resourceVersion": svc.resource_version(),
        "finalizers": finalizers,
    }});
    api.patch(
        &svc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(|source| Error::SetFinalizer {
        name: svc.name_any(),
        source,
    })
}

/// Server-side applies `object` (apiVersion, kind and metadata included) in `svc`'s
/// namespace.
pub(super) async fn apply(ctx: &Context, svc: &LLMService, object: &Value) -> Result<()> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = svc.namespace().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    let (kind, result) = match kind {
        "Service" => (
            "Service",
            patch::<Service>(ctx, &ns, &name, &params, object)
                .await
                .map(drop),
        ),
        "PodDisruptionBudget" => (
            "PodDisruptionBudget",
            patch::<PodDisruptionBudget>(ctx, &ns, &name, &params, object)
                .await
                .map(drop),
        ),
        "Deployment" => (
            "Deployment",
            patch::<Deployment>(ctx, &ns, &name, &params, object)
                .await
                .map(drop),
        ),
        "StatefulSet" => (
            "StatefulSet",
            patch::<StatefulSet>(ctx, &ns, &name, &params, object)
                .await
                .map(drop),
        ),
        other => unreachable!("the renderer makes no {other}"),
    };
    result.map_err(|source| Error::ApplyObject { kind, name, source })
}

/// Server-side applies `object` as `K`; the answer is the object as stored, status included.
pub(super) async fn patch<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    params: &PatchParams,
    object: &Value,
) -> kube::Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(ctx.client.clone(), ns)
        .patch(name, params, &Patch::Apply(object))
        .await
}

/// Deletes `name` unless it is already gone.
pub(super) async fn delete_if_present<K>(api: &Api<K>, kind: &'static str, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteObject {
            kind,
            name: name.to_string(),
            source,
        }),
    }
}

/// Publishes an Event about `svc`, logging (not failing) when the API refuses it.
pub(super) async fn publish(
    ctx: &Context,
    svc: &LLMService,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_event(ctx, svc, type_, reason, note, None).await;
}

/// [`publish`] with a related object.
pub(super) async fn publish_event(
    ctx: &Context,
    svc: &LLMService,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<k8s_openapi::api::core::v1::ObjectReference>,
) {
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(kubegrid_api::conditions::truncate(&note, 1024)),
        action: "Reconcile".into(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&event, &svc.object_ref(&())).await {
        tracing::warn!(reason, "event not recorded: {e}");
    }
}
