//! `spec.serving` once the cluster answers: the serving layer applied through the API (the
//! `LLMService` and `ModelPrewarm` CRDs, the serving controller, the model-cache DaemonSet on
//! the GPU Nodes, their RBAC), then a wait until the controller is available and the cache is
//! ready on every GPU Node. Both steps are reported as cluster checks, so the CLI's report and
//! the operator's conditions say what was deployed and whether it is healthy.
//!
//! Server-side apply with kubegrid's field manager makes a re-run change only what differs.
//! The cache's token Secret is the exception: it is created once with a fresh random token and
//! never replaced, because replacing it would cut every running cache off from its peers.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment},
        core::v1::Secret,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
};
use kubegrid_cluster::CheckResult;
use kubegrid_plan::ServingContext;
use kubegrid_serving::layer::{self, LayerOptions};
use serde_json::Value;

/// The check that reports the apply.
pub const SERVING_LAYER: &str = "serving-layer";
/// The check that reports the layer's health.
pub const SERVING_READY: &str = "serving-ready";
/// The field manager of kubegrid's server-side applies.
const FIELD_MANAGER: &str = "kubegrid";

/// The layer's options from the spec.
fn options(ctx: &ServingContext) -> LayerOptions {
    LayerOptions {
        namespace: ctx.namespace.clone(),
        cache_capacity: ctx.cache_capacity.clone(),
        pod_monitors: ctx.pod_monitors,
        ..LayerOptions::new(&ctx.image.reference())
    }
}

/// Every object the engine applies, in order: the CRDs, KEDA when asked (its CRDs exist
/// before the controller makes ScaledObjects), then the layer (namespace first).
pub fn objects(ctx: &ServingContext) -> Vec<Value> {
    let crds = [kubegrid_serving::crd(), kubegrid_serving::prewarm_crd()];
    let mut out: Vec<Value> = crds
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    if let Some(keda) = &ctx.keda {
        out.extend(keda.objects.iter().cloned());
    }
    out.extend(layer::objects(&options(ctx)));
    out
}

/// The REST plural of each kind the layer and KEDA ([`kubegrid_plan::KEDA_KINDS`]) have;
/// another kind is a bug the tests catch.
fn plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "Service" => "services",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        "APIService" => "apiservices",
        "ValidatingWebhookConfiguration" => "validatingwebhookconfigurations",
        "MutatingWebhookConfiguration" => "mutatingwebhookconfigurations",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "Deployment" => "deployments",
        "DaemonSet" => "daemonsets",
        "PodMonitor" => "podmonitors",
        _ => return None,
    })
}

/// `Kind/name`, or `Kind/namespace/name`, as errors name an object.
fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Server-side applies one object.
async fn apply(client: &Client, object: &Value) -> Result<(), String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let plural = plural(kind).ok_or_else(|| format!("kubegrid cannot apply kind {kind}"))?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 && kind == "PodMonitor" => format!(
                "the cluster has no PodMonitor kind ({}); expected the Prometheus Operator's CRDs; hint: install them first, or set spec.serving.podMonitors false",
                s.message
            ),
            other => other.to_string(),
        })
}

/// Creates the token Secret unless it exists; true when it was created.
async fn ensure_token(client: &Client, namespace: &str) -> Result<bool, String> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let secret: Secret = serde_json::from_value(layer::token_secret(namespace, &token))
        .map_err(|e| e.to_string())?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Applies the layer; the check fails naming the object that could not be applied.
pub async fn deploy(client: &Client, ctx: &ServingContext) -> CheckResult {
    let start = Instant::now();
    let objects = objects(ctx);
    let failed = |detail: String| CheckResult {
        name: SERVING_LAYER.into(),
        ok: false,
        detail,
        duration_ms: elapsed_ms(start),
    };
    for (i, object) in objects.iter().enumerate() {
        if let Err(e) = apply(client, object).await {
            return failed(format!(
                "applied {i} of {} objects; {}: {e}",
                objects.len(),
                describe(object)
            ));
        }
    }
    let token = match ensure_token(client, &ctx.namespace).await {
        Ok(true) => "created",
        Ok(false) => "kept",
        Err(e) => {
            return failed(format!(
                "applied {n} of {n} objects; Secret {}/{}: {e}",
                ctx.namespace,
                layer::TOKEN_SECRET,
                n = objects.len()
            ));
        }
    };
    CheckResult {
        name: SERVING_LAYER.into(),
        ok: true,
        detail: format!(
            "applied {} objects into namespace {} (CRDs llmservices and modelprewarms.serving.kubegrid.io, controller, model cache, image {}{}); cache token Secret {token}",
            objects.len(),
            ctx.namespace,
            ctx.image.reference(),
            match &ctx.keda {
                Some(k) => format!(
                    "; KEDA {} into namespace {}, {} objects, images {}",
                    k.version,
                    k.namespace,
                    k.objects.len(),
                    k.images
                        .iter()
                        .map(|i| i.reference())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => String::new(),
            }
        ),
        duration_ms: elapsed_ms(start),
    }
}

/// What the layer looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Health {
    /// CRDs not yet Established.
    crds_pending: Vec<String>,
    /// The controller's available and wanted replicas; None while the Deployment's status
    /// describes an older generation.
    controller: Option<(i32, i32)>,
    /// The cache's ready, up-to-date and desired Nodes; None as for the controller.
    cache: Option<(i32, i32, i32)>,
    /// What is wrong with KEDA, and its line in the report; None when not asked for.
    keda: Option<(Vec<String>, String)>,
}

impl Health {
    fn ok(&self) -> bool {
        self.crds_pending.is_empty()
            && self.controller.is_some_and(|(available, _)| available >= 1)
            && self.cache.is_some_and(|(ready, updated, desired)| {
                desired > 0 && ready == desired && updated == desired
            })
            && self
                .keda
                .as_ref()
                .is_none_or(|(problems, _)| problems.is_empty())
    }

    fn describe(&self, ns: &str) -> String {
        let mut parts = Vec::new();
        if !self.crds_pending.is_empty() {
            parts.push(format!(
                "CRDs not established: {}",
                self.crds_pending.join(", ")
            ));
        }
        parts.push(match self.controller {
            Some((available, wanted)) => format!(
                "controller Deployment {ns}/{}: {available} of {wanted} replicas available",
                layer::CONTROLLER
            ),
            None => format!(
                "controller Deployment {ns}/{}: not rolled out yet",
                layer::CONTROLLER
            ),
        });
        parts.push(match self.cache {
            Some((_, _, 0)) => format!(
                "model cache DaemonSet {ns}/{}: no Node is labelled nvidia.com/gpu.present=true, so it runs nowhere",
                layer::CACHE
            ),
            Some((ready, updated, desired)) => format!(
                "model cache DaemonSet {ns}/{}: ready on {ready} of {desired} GPU Nodes ({updated} up to date)",
                layer::CACHE
            ),
            None => format!("model cache DaemonSet {ns}/{}: not rolled out yet", layer::CACHE),
        });
        if let Some((_, line)) = &self.keda {
            parts.push(line.clone());
        }
        parts.join("; ")
    }
}

/// The serving CRDs' names (rendering them builds their schemas: done once per wait).
fn crd_names() -> Vec<String> {
    [
        kubegrid_serving::crd().metadata.name,
        kubegrid_serving::prewarm_crd().metadata.name,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether the CRD `name` exists and is Established.
pub(super) async fn established(client: &Client, name: &str) -> Result<bool, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    Ok(crds.get_opt(name).await?.is_some_and(|crd| {
        crd.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    }))
}

/// Reads the layer's state.
async fn health(
    client: &Client,
    ctx: &ServingContext,
    crd_names: &[String],
) -> Result<Health, kube::Error> {
    let ns = ctx.namespace.as_str();
    let mut out = Health::default();
    for name in crd_names {
        if !established(client, name).await? {
            out.crds_pending.push(name.clone());
        }
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(layer::CONTROLLER)
        .await?;
    out.controller = deployment.and_then(|d| {
        let status = d.status?;
        (status.observed_generation >= d.metadata.generation).then(|| {
            (
                status.available_replicas.unwrap_or(0),
                d.spec.and_then(|s| s.replicas).unwrap_or(1),
            )
        })
    });
    let daemon_set = Api::<DaemonSet>::namespaced(client.clone(), ns)
        .get_opt(layer::CACHE)
        .await?;
    out.cache = daemon_set.and_then(|d| {
        let status = d.status?;
        (status.observed_generation >= d.metadata.generation).then(|| {
            (
                status.number_ready,
                status.updated_number_scheduled.unwrap_or(0),
                status.desired_number_scheduled,
            )
        })
    });
    if let Some(keda) = &ctx.keda {
        let problems = super::keda::problems(client, keda).await?;
        let line = super::keda::describe(keda, &problems);
        out.keda = Some((problems, line));
    }
    Ok(out)
}

/// Waits up to `timeout` for the CRDs to be established, the controller to be available and
/// the cache to be ready on every GPU Node, looking every `poll`.
pub async fn ready(
    client: &Client,
    ctx: &ServingContext,
    timeout: Duration,
    poll: Duration,
) -> CheckResult {
    let start = Instant::now();
    let crds = crd_names();
    loop {
        let last = match health(client, ctx, &crds).await {
            Ok(h) if h.ok() => {
                return CheckResult {
                    name: SERVING_READY.into(),
                    ok: true,
                    detail: h.describe(&ctx.namespace),
                    duration_ms: elapsed_ms(start),
                };
            }
            Ok(h) => h.describe(&ctx.namespace),
            Err(e) => format!("cannot read the serving layer: {e}"),
        };
        if start.elapsed() >= timeout {
            return CheckResult {
                name: SERVING_READY.into(),
                ok: false,
                detail: format!(
                    "after {}s: {last}; expected the CRDs established, the controller available, the cache ready on every GPU Node{}; hint: kubectl -n {} get pods,events (the image is {}){}",
                    timeout.as_secs(),
                    if ctx.keda.is_some() {
                        " and KEDA available"
                    } else {
                        ""
                    },
                    ctx.namespace,
                    ctx.image.reference(),
                    match &ctx.keda {
                        Some(k) =>
                            format!("; for KEDA, kubectl -n {} get pods,events", k.namespace),
                        None => String::new(),
                    }
                ),
                duration_ms: elapsed_ms(start),
            };
        }
        tokio::time::sleep(poll).await;
    }
}

/// `status.serving` from an operation's cluster checks: None when the spec has no serving
/// layer or the operation never got as far as applying it.
pub fn status(
    ctx: Option<&ServingContext>,
    checks: &[CheckResult],
) -> Option<kubegrid_api::ServingStatus> {
    let ctx = ctx?;
    let layer = checks.iter().find(|c| c.name == SERVING_LAYER)?;
    let ready = checks.iter().find(|c| c.name == SERVING_READY);
    Some(kubegrid_api::ServingStatus {
        namespace: ctx.namespace.clone(),
        image: ctx.image.reference(),
        deployed: layer.ok,
        ready: ready.is_some_and(|r| r.ok),
        keda: ctx
            .keda
            .as_ref()
            .filter(|_| layer.ok)
            .map(|k| k.version.clone()),
        message: ready.unwrap_or(layer).detail.clone(),
    })
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;
