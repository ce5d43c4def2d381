//! `spec.gpu` of the Cluster and of its Nodes: every combination that cannot work is refused
//! before a host is contacted. The rules that one object can decide are also CEL rules on the
//! CRDs (the functions below); the ones that need the Nodes and the Cluster together (a Node
//! with `gpu: nvidia` and no Cluster `spec.gpu`) or that read the free-form `operatorValues`
//! are code-only.

use kube::core::{Message, Rule};

use super::{Checker, Subject};
use crate::{
    DevicePluginKind, DriverSource, MigStrategy, NodeGpu, RuntimeName, gpu::GpuSpec, text::excerpt,
};

/// Longest `driver.branch` the schema accepts (a regex reads it: the CEL cost budget).
pub const MAX_BRANCH_LEN: usize = 8;
/// Longest `toolkit.version` the schema accepts.
pub const MAX_TOOLKIT_VERSION_LEN: usize = 32;

/// What a driver branch looks like, for the rule's message and the code's problem.
const BRANCH: &str = "the driver's major version, digits only, e.g. 550";
/// What a toolkit version looks like.
const TOOLKIT: &str = "a release x.y.z, e.g. 1.17.3";
/// The GPU Operator's chart values that would make it install what kubegrid installs.
const OWNED_BY_KUBEGRID: [(&str, &str); 2] = [
    ("driver", "the NVIDIA driver"),
    ("toolkit", "the NVIDIA container toolkit"),
];

fn rule(text: &str, message: String, field_path: &str) -> Rule {
    Rule::new(text)
        .message(Message::Message(message))
        .field_path(field_path)
}

/// `spec.gpu`: a driver branch unless the driver is preinstalled. On `spec.gpu` rather than
/// on `driver`, whose schema default (`{source: packages}`) the API server checks against the
/// rules of `driver` itself.
pub(crate) fn driver_branch_required_rule() -> Rule {
    rule(
        "has(self.driver) && ((has(self.driver.source) && self.driver.source == 'preinstalled') || has(self.driver.branch))",
        format!("driver.branch is required unless driver.source is preinstalled: {BRANCH}"),
        ".driver.branch",
    )
}

/// `spec.gpu.driver.branch`: digits.
pub(crate) fn driver_branch_rule() -> Rule {
    Rule::new("self.matches('^[0-9]+$')").message(Message::Message(format!("must be {BRANCH}")))
}

/// `spec.gpu.toolkit.version`: x.y.z.
pub(crate) fn toolkit_version_rule() -> Rule {
    Rule::new("self.matches('^[0-9]+[.][0-9]+[.][0-9]+$')")
        .message(Message::Message(format!("must be {TOOLKIT}")))
}

/// `spec.gpu`: a MIG strategy needs a device plugin to apply it.
pub(crate) fn mig_needs_device_plugin_rule() -> Rule {
    rule(
        "!has(self.mig) || !has(self.mig.strategy) || self.mig.strategy == 'none' || !has(self.devicePlugin) || self.devicePlugin != 'none'",
        "a MIG strategy needs a device plugin: set devicePlugin, or mig.strategy none".into(),
        ".mig.strategy",
    )
}

/// `spec.gpu`: `operatorValues` only with the GPU Operator.
pub(crate) fn operator_values_rule() -> Rule {
    rule(
        "!has(self.operatorValues) || (has(self.devicePlugin) && self.devicePlugin == 'gpu-operator')",
        "operatorValues is read only with devicePlugin gpu-operator".into(),
        ".operatorValues",
    )
}

/// Cluster `spec`: GPU Nodes need the `nvidia` runtime handler.
pub(crate) fn gpu_needs_nvidia_runtime_rule() -> Rule {
    rule(
        "!has(self.gpu) || (has(self.containerRuntime.runtimes) && 'nvidia' in self.containerRuntime.runtimes)",
        "must list nvidia when spec.gpu is set: GPU pods run under the nvidia handler".into(),
        ".containerRuntime.runtimes",
    )
}

impl Checker<'_> {
    /// Refuses GPU settings that cannot work, on the Cluster and on its Nodes.
    pub(super) fn gpu(&mut self, at: &Subject) {
        let cluster = &self.manifest.cluster().spec;
        match &cluster.gpu {
            Some(gpu) => {
                self.gpu_spec(at, gpu);
                if !cluster
                    .container_runtime
                    .runtimes
                    .contains(&RuntimeName::Nvidia)
                {
                    let listed: Vec<&str> = cluster
                        .container_runtime
                        .runtimes
                        .iter()
                        .map(|r| r.as_str())
                        .collect();
                    self.report(
                        at,
                        "spec.containerRuntime.runtimes",
                        format!("[{}] while spec.gpu is set", listed.join(", ")),
                        "a list with nvidia; hint: GPU pods run under the nvidia handler (RuntimeClass nvidia); add it to runtimes",
                    );
                }
            }
            None => self.nodes_without_cluster_gpu(),
        }
    }

    fn gpu_spec(&mut self, at: &Subject, gpu: &GpuSpec) {
        let driver = &gpu.driver;
        match (&driver.branch, driver.source) {
            (None, DriverSource::Packages | DriverSource::Runfile) => {
                let source = if driver.source == DriverSource::Packages {
                    "packages"
                } else {
                    "runfile"
                };
                self.report(
                    at,
                    "spec.gpu.driver.branch",
                    format!("no branch with source `{source}`"),
                    format!("{BRANCH}; hint: name the branch kubegrid installs from the bundle, or use source preinstalled for a driver the host already has"),
                );
            }
            (Some(branch), _)
                if branch.is_empty()
                    || branch.len() > MAX_BRANCH_LEN
                    || !branch.chars().all(|c| c.is_ascii_digit()) =>
            {
                self.report(
                    at,
                    "spec.gpu.driver.branch",
                    format!("`{}`", excerpt(branch, MAX_BRANCH_LEN * 2)),
                    format!("{BRANCH}; hint: the bundle pins the release; write the branch only, not `550.127.05`"),
                );
            }
            _ => {}
        }
        if let Some(version) = &gpu.toolkit.version
            && !is_release(version)
        {
            self.report(
                at,
                "spec.gpu.toolkit.version",
                format!("`{}`", excerpt(version, MAX_TOOLKIT_VERSION_LEN)),
                format!("{TOOLKIT}; hint: leave it out to use the bundle's pinned toolkit"),
            );
        }
        if gpu.mig.strategy != MigStrategy::None && gpu.device_plugin == DevicePluginKind::None {
            let strategy = if gpu.mig.strategy == MigStrategy::Single {
                "single"
            } else {
                "mixed"
            };
            self.report(
                at,
                "spec.gpu.mig.strategy",
                format!("`{strategy}` with devicePlugin none"),
                "none, or a devicePlugin (nvidia-device-plugin or gpu-operator); hint: the MIG strategy is how the device plugin advertises MIG devices; without one nothing applies it",
            );
        }
        if let Some(values) = &gpu.operator_values {
            if gpu.device_plugin != DevicePluginKind::GpuOperator {
                self.report(
                    at,
                    "spec.gpu.operatorValues",
                    format!("values with devicePlugin `{}`", plugin_name(gpu.device_plugin)),
                    "devicePlugin gpu-operator, or no operatorValues; hint: the values are for the GPU Operator's chart, which kubegrid renders only with devicePlugin gpu-operator",
                );
            }
            for (key, what) in OWNED_BY_KUBEGRID {
                let enabled = values.pointer(&format!("/{key}/enabled"));
                if enabled.is_some_and(|v| v != &serde_json::Value::Bool(false)) {
                    self.report(
                        at,
                        &format!("spec.gpu.operatorValues.{key}.enabled"),
                        format!("`{}`", excerpt(&enabled.map(ToString::to_string).unwrap_or_default(), 16)),
                        format!("false or unset; hint: kubegrid installs {what} on the hosts itself; a GPU Operator that also manages it fights kubegrid's install. Remove {key}.enabled"),
                    );
                }
            }
        }
    }

    /// Without a Cluster `spec.gpu`, no Node can be declared a GPU Node.
    fn nodes_without_cluster_gpu(&mut self) {
        for (index, node) in self.manifest.nodes().iter().enumerate() {
            if node.spec.gpu == NodeGpu::Nvidia {
                let at = self.node_subject(index, node);
                self.report(
                    &at,
                    "spec.gpu",
                    format!("`nvidia` while Cluster/{} has no spec.gpu", self.manifest.name()),
                    "auto or none; hint: set the Cluster's spec.gpu (the driver kubegrid installs) to make GPU Nodes, or remove gpu: nvidia",
                );
            }
        }
    }
}

/// `1.17.3`: three dot-separated numbers.
fn is_release(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    version.len() <= MAX_TOOLKIT_VERSION_LEN
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The device plugin as the spec spells it.
pub(crate) fn plugin_name(kind: DevicePluginKind) -> &'static str {
    match kind {
        DevicePluginKind::NvidiaDevicePlugin => "nvidia-device-plugin",
        DevicePluginKind::GpuOperator => "gpu-operator",
        DevicePluginKind::None => "none",
    }
}
