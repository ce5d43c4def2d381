//! kubegrid-plan's tests: one binary, a module per area.

mod bundle;
mod common;
mod compile;
mod gpu_host;
mod gpu_objects;
mod k8s_fixtures;
mod k8s_manifests;
mod k8s_templates;
mod k8s_validate;
mod nvidia_ctk;
mod playbook;
mod reboot;
mod registry;
mod risky;
mod templates;
mod versions;
