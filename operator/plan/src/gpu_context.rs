//! The cluster's GPU settings as templates and predicates see them (`ClusterContext.gpu`).
//!
//! Issue 18's shared design places this type in `gpu.rs`, next to the cluster-object
//! templates; this file carries the same fields under the same names so the host install
//! (predicates, driver and toolkit tasks) builds on its own. When both exist, one definition
//! stays and the other goes: the field names are the contract.

use serde::Serialize;

/// `Cluster.spec.gpu` resolved against the bundle: what kubegrid installs on GPU Nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuContext {
    /// Where the driver comes from: "packages", "runfile" or "preinstalled".
    pub driver_source: String,
    /// The driver branch the spec asks for ("550"); None takes the bundle's.
    pub driver_branch: Option<String>,
    /// The exact driver version the bundle pins ("550.90.07"); fabric manager is installed in
    /// exactly this version.
    pub driver_version: String,
    /// The NVIDIA container toolkit version ("1.17.8").
    pub toolkit_version: String,
    /// "auto" (on where NVSwitches are detected), "on" or "off".
    pub fabric_manager: String,
    /// "nvidia-device-plugin", "gpu-operator" or "none".
    pub device_plugin: String,
    /// MIG strategy: "none", "single" or "mixed".
    pub mig_strategy: String,
    /// Whether the GPU validation runs.
    pub validation: bool,
    /// Extra GPU Operator chart values.
    pub operator_values: Option<serde_json::Value>,
}
