//! `spec.gpu` of a Cluster and of a Node: which NVIDIA stack kubegrid installs on GPU Nodes,
//! and which Nodes are GPU Nodes.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The NVIDIA stack kubegrid installs on the Cluster's GPU Nodes. Without it kubegrid
/// installs no GPU software.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::validate::gpu::driver_branch_required_rule(),
    validation = crate::validate::gpu::mig_needs_device_plugin_rule(),
    validation = crate::validate::gpu::operator_values_rule()
)]
pub struct GpuSpec {
    /// The kernel driver.
    #[serde(default)]
    pub driver: GpuDriverSpec,
    /// The NVIDIA container toolkit.
    #[serde(default)]
    pub toolkit: ToolkitSpec,
    /// Fabric manager: `auto` (the default) runs it where NVSwitches are found, `on` on every
    /// GPU Node, `off` nowhere.
    #[serde(default)]
    pub fabric_manager: FabricManagerMode,
    /// What advertises `nvidia.com/gpu` to Kubernetes.
    #[serde(default)]
    pub device_plugin: DevicePluginKind,
    /// Multi-Instance GPU.
    #[serde(default)]
    pub mig: MigSpec,
    /// Run the GPU validation after an install (default true).
    #[serde(default = "default_true")]
    pub validation: bool,
    /// Extra values for the GPU Operator's chart (`devicePlugin: gpu-operator`); its driver and
    /// toolkit stay off, because kubegrid owns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::gpu::free_form")]
    pub operator_values: Option<serde_json::Value>,
}

fn default_true() -> bool {
    true
}

/// A free-form object in the CRD schema.
pub(crate) fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Where the NVIDIA kernel driver comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuDriverSpec {
    /// `packages` (the default): the bundle's distribution packages; `runfile`: NVIDIA's
    /// installer; `preinstalled`: the host's own driver, left alone.
    #[serde(default)]
    pub source: DriverSource,
    /// Driver branch, e.g. `550`; the bundle pins the release. Required unless `preinstalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::validate::gpu::MAX_BRANCH_LEN))]
    #[x_kube(validation = crate::validate::gpu::driver_branch_rule())]
    pub branch: Option<String>,
}

/// Where the driver comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriverSource {
    /// The bundle's .deb or .rpm packages (DKMS).
    #[default]
    Packages,
    /// NVIDIA's `.run` installer from the bundle.
    Runfile,
    /// Installed by the host's owner; kubegrid only checks it.
    Preinstalled,
}

/// The NVIDIA container toolkit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolkitSpec {
    /// Release, e.g. `1.17.3`; the bundle's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::validate::gpu::MAX_TOOLKIT_VERSION_LEN))]
    #[x_kube(validation = crate::validate::gpu::toolkit_version_rule())]
    pub version: Option<String>,
}

/// Where fabric manager runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FabricManagerMode {
    /// On GPU Nodes with NVSwitches.
    #[default]
    Auto,
    /// On every GPU Node.
    On,
    /// Nowhere.
    Off,
}

/// What advertises GPUs to Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DevicePluginKind {
    /// NVIDIA's device plugin DaemonSet, rendered by kubegrid from the bundle.
    #[default]
    NvidiaDevicePlugin,
    /// Values for NVIDIA's GPU Operator chart, with its driver and toolkit off.
    GpuOperator,
    /// Nothing.
    None,
}

/// Multi-Instance GPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigSpec {
    /// How the device plugin exposes MIG devices.
    #[serde(default)]
    pub strategy: MigStrategy,
}

/// The device plugin's MIG strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MigStrategy {
    /// No MIG devices.
    #[default]
    None,
    /// Every GPU of a Node split the same way, exposed as `nvidia.com/gpu`.
    Single,
    /// Each MIG profile as its own resource.
    Mixed,
}

/// Whether a Node is a GPU Node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeGpu {
    /// A GPU Node when NVIDIA GPUs are found on its PCI bus.
    #[default]
    Auto,
    /// A GPU Node: finding no GPU fails preflight.
    Nvidia,
    /// Never a GPU Node.
    None,
}

impl NodeGpu {
    /// Whether this is the default, so the field is left out when writing.
    pub fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}
