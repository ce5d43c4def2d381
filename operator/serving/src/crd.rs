//! The serving layer's CRDs: LLMService and ModelPrewarm.

pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{
    error::{Error, Result},
    prewarm::ModelPrewarm,
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

/// The ModelPrewarm CRD: the model's schema and CEL rules as in LLMService, a status
/// subresource the node caches write, printer columns.
pub fn prewarm_crd() -> CustomResourceDefinition {
    ModelPrewarm::crd()
}

/// The ModelPrewarm CRD as one YAML document.
pub fn prewarm_crd_yaml() -> Result<String> {
    serde_yaml::to_string(&prewarm_crd()).map_err(Error::RenderCrd)
}
