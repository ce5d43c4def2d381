//! The cluster-wide GPU inputs (`Cluster.spec.gpu` as the compiler sees it) and the objects
//! kubegrid puts into the cluster for GPU Nodes and sandboxed runtimes, after the CNI:
//!
//! - RuntimeClasses, one per enabled handler but runc ([`runtime_classes`]);
//! - the NVIDIA device plugin DaemonSet ([`device_plugin`]) and the DCGM exporter
//!   ([`dcgm_exporter`]), both pinned by the digest the bundle recorded ([`GpuImages`]);
//! - or, with `devicePlugin: gpu-operator`, the GPU Operator's chart values with the driver
//!   and the toolkit turned off, because kubegrid installs both ([`gpu_operator_values`]);
//! - Node labels from the facts ([`gpu_node_labels`], [`kata_node_labels`]).
//!
//! [`cluster_objects`] picks which of these a cluster gets. The templates live in
//! templates/gpu-objects/ and have their own context, so they are not in [`crate::TEMPLATES`].

mod images;
mod labels;
mod objects;

use serde::Serialize;

use crate::error::{Error, Result};

pub use images::{DCGM_EXPORTER_IMAGE, DEVICE_PLUGIN_IMAGE, GpuImages, ImageRef};
pub use labels::{
    CRUN_RUNTIME_LABEL, GPU_COUNT_LABEL, GPU_DRIVER_LABEL, GPU_PRESENT_LABEL, GPU_PRODUCT_LABEL,
    GVISOR_RUNTIME_LABEL, KATA_RUNTIME_LABEL, gpu_node_labels, kata_node_labels, label_value,
    runtime_node_labels,
};
pub use objects::{
    GPU_OBJECT_TEMPLATES, GPU_OBJECTS_NAMESPACE, GPU_OPERATOR_CHART, GPU_OPERATOR_CHART_REPO,
    GPU_OPERATOR_CHART_VERSION, GpuObjects, cluster_objects, dcgm_exporter, device_plugin,
    gpu_operator_values, runtime_classes, runtime_overhead,
};

/// Accepted `driver_source` values.
pub const DRIVER_SOURCES: &[&str] = &["packages", "runfile", "preinstalled"];
/// Accepted `fabric_manager` values.
pub const FABRIC_MANAGER_MODES: &[&str] = &["auto", "on", "off"];
/// Accepted `device_plugin` values.
pub const DEVICE_PLUGINS: &[&str] = &["nvidia-device-plugin", "gpu-operator", "none"];
/// Accepted `mig_strategy` values: the device plugin's and GPU Feature Discovery's
/// `MIG_STRATEGY`.
pub const MIG_STRATEGIES: &[&str] = &["none", "single", "mixed"];

/// `Cluster.spec.gpu`, with the bundle's pins filled in; None in [`crate::ClusterContext`]
/// when the cluster installs no GPU stack. The engine fills it from the spec types, so this
/// crate stays free of them; the strings are the spec's own spellings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuContext {
    /// Where the driver comes from: "packages", "runfile" or "preinstalled".
    pub driver_source: String,
    /// The driver branch asked for ("550"); None: the bundle's.
    pub driver_branch: Option<String>,
    /// The driver version the bundle pins ("550.127.05").
    pub driver_version: String,
    /// The NVIDIA container toolkit version ("1.17.8").
    pub toolkit_version: String,
    /// Fabric manager: "auto" (where NVSwitches are), "on" or "off".
    pub fabric_manager: String,
    /// Who exposes `nvidia.com/gpu`: "nvidia-device-plugin", "gpu-operator" or "none".
    pub device_plugin: String,
    /// How MIG devices are exposed: "none", "single" or "mixed".
    pub mig_strategy: String,
    /// Whether the GPU validation checks run.
    pub validation: bool,
    /// Extra GPU Operator chart values, merged under kubegrid's (see [`gpu_operator_values`]).
    pub operator_values: Option<serde_json::Value>,
}

impl GpuContext {
    /// Checks the values templates branch on, so a misspelt one is an error rather than a
    /// manifest that silently does something else.
    pub fn validate(&self) -> Result<()> {
        let fields: [(&str, &str, &[&str]); 4] = [
            ("driver source", &self.driver_source, DRIVER_SOURCES),
            (
                "fabric manager mode",
                &self.fabric_manager,
                FABRIC_MANAGER_MODES,
            ),
            ("device plugin", &self.device_plugin, DEVICE_PLUGINS),
            ("MIG strategy", &self.mig_strategy, MIG_STRATEGIES),
        ];
        for (what, value, known) in fields {
            if !known.contains(&value) {
                return Err(Error::InvalidContext {
                    problem: format!("GPU {what} `{value}` is not one of {}", known.join(", ")),
                });
            }
        }
        if let Some(values) = &self.operator_values
            && !values.is_object()
        {
            return Err(Error::InvalidContext {
                problem: "GPU Operator values must be a map of chart values".into(),
            });
        }
        Ok(())
    }
}
