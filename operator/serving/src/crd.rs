//! The LLMService CRD, as the chart will install it.

pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{
    error::{Error, Result},
    service::LLMService,
};

/// The LLMService CRD: schema with CEL rules, status and scale subresources (the scale
/// subresource reports `.status.selector`, which HPA and KEDA need), printer columns.
pub fn crd() -> CustomResourceDefinition {
    LLMService::crd()
}

/// The CRD as one YAML document, as `kubectl apply -f` takes it.
pub fn crd_yaml() -> Result<String> {
    serde_yaml::to_string(&crd()).map_err(Error::RenderCrd)
}
