//! KEDA's part of the serving layer's health (`spec.serving.keda`): its CRDs established,
//! every Deployment of its rendered chart available, and its external metrics APIService
//! Available, since the HPAs KEDA makes read that API and a missing one scales nothing.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use kubegrid_plan::KedaContext;
use serde_json::Value;

/// What is not yet right with KEDA; empty when it is healthy.
pub(super) async fn problems(
    client: &Client,
    keda: &KedaContext,
) -> Result<Vec<String>, kube::Error> {
    let mut out = Vec::new();
    for name in keda.crds() {
        if !super::serving::established(client, &name).await? {
            out.push(format!("CRD {name} not established"));
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &keda.namespace);
    for name in keda.deployments() {
        let at = format!("Deployment {}/{name}", keda.namespace);
        match deployments.get_opt(&name).await? {
            None => out.push(format!("{at} missing")),
            Some(d) => {
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let current = d
                    .status
                    .as_ref()
                    .filter(|s| s.observed_generation >= d.metadata.generation);
                match current {
                    None => out.push(format!("{at} not rolled out yet")),
                    Some(s) if s.available_replicas.unwrap_or(0) < wanted => out.push(format!(
                        "{at}: {} of {wanted} replicas available",
                        s.available_replicas.unwrap_or(0)
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
        "apiservices",
    );
    let services: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    for name in keda.api_services() {
        let available = services.get_opt(&name).await?.is_some_and(|s| {
            s.data["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(available_condition))
        });
        if !available {
            out.push(format!("APIService {name} not Available"));
        }
    }
    Ok(out)
}

fn available_condition(c: &Value) -> bool {
    c["type"] == "Available" && c["status"] == "True"
}

/// One line on KEDA for the health report.
pub(super) fn describe(keda: &KedaContext, problems: &[String]) -> String {
    if problems.is_empty() {
        let mut parts = vec![format!(
            "{} Deployments available",
            keda.deployments().len()
        )];
        parts.extend(
            keda.api_services()
                .iter()
                .map(|s| format!("APIService {s} Available")),
        );
        format!(
            "KEDA {} in namespace {}: {}",
            keda.version,
            keda.namespace,
            parts.join(", ")
        )
    } else {
        format!("KEDA {}: {}", keda.version, problems.join(", "))
    }
}
