//! kubegrid's serving API: the `LLMService` resource (`serving.kubegrid.io/v1alpha1`), which
//! asks for a model to be served by vLLM on a cluster's GPU nodes, and the checks its fields
//! get.
//!
//! This crate holds the types, the model-source grammar ([`ModelUri`]), the CRD with its CEL
//! rules and scale subresource ([`crd`]), and [`LlmServiceSpec::validate`], the same checks
//! in code; the objects an LLMService becomes ([`render`]); and the [`controller`] that
//! applies them, scales replicas (draining each before removal) and reports status.
//!
//! ```
//! let spec: kubegrid_serving::LlmServiceSpec = serde_yaml::from_str(
//!     "model: {uri: 'hf://meta-llama/Llama-3.1-8B-Instruct@main'}\n\
//!      engine: {image: 'vllm/vllm-openai:v0.11.0'}\n",
//! )
//! .unwrap();
//! assert!(spec.validate().is_empty());
//! ```

pub mod controller;
mod crd;
pub mod drain;
mod error;
pub mod layer;
mod model;
pub mod names;
mod prewarm;
pub mod render;
mod rules;
mod service;
mod validate;
pub mod verify;
pub mod vllm;

pub use crd::{crd, crd_yaml, prewarm_crd, prewarm_crd_yaml};
pub use error::{Error, FieldError, Result};
pub use model::{ModelFile, ModelSource, ModelUri, is_relative_path};
pub use prewarm::{ModelPrewarm, ModelPrewarmSpec, ModelPrewarmStatus};
pub use service::{
    DEFAULT_DRAIN_SECONDS, DEFAULT_METRIC, DEFAULT_PORT, DEFAULT_RUNTIME_CLASS, EngineSpec,
    Fallback, KedaScaling, LLMService, LlmServiceSpec, LlmServiceStatus, NodeCache,
    PrometheusTrigger, Resources, Scaling, ScalingMode, Trigger,
};
