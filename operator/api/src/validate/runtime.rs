//! The default runtime handler: one that every host that runs pods has. kubegrid installs
//! runc, crun and gVisor itself, so they may be the default. `nvidia` may be the default only
//! where kubegrid installs the NVIDIA stack (`spec.gpu`) on every worker Node (`gpu: nvidia`),
//! since pods without a RuntimeClass would otherwise fail on the Nodes without it. Kata
//! Containers run only on Nodes that can create VMs, so `kata-*` is never the default; pods ask
//! for it with a RuntimeClass, which selects the capable Nodes.

use kube::core::{Message, Rule};

use super::{Checker, Subject};
use crate::{NodeGpu, Role, cluster::RuntimeName, manifest::name_of};

/// Why `kata-*` cannot be the default, for the CEL rule and the code's problem.
const WHY_KATA: &str = "Kata Containers run only on Nodes that can create VMs, so pods without a RuntimeClass would fail on the others";

/// Whether kubegrid installs `runtime` on every host itself, so that it may be the default
/// without conditions (`nvidia` may be, on conditions: see the module doc).
pub fn installed_by_kubegrid(runtime: RuntimeName) -> bool {
    matches!(
        runtime,
        RuntimeName::Runc | RuntimeName::Crun | RuntimeName::Gvisor
    )
}

/// `spec.containerRuntime`: `defaultRuntime` is no Kata handler. (`nvidia` is ruled on at the
/// Cluster spec, which sees `spec.gpu`: see `validate::gpu`.)
pub(crate) fn default_runtime_rule() -> Rule {
    Rule::new("!has(self.defaultRuntime) || !self.defaultRuntime.startsWith('kata-')")
        .message(Message::Message(format!(
            "defaultRuntime must not be a kata handler: {WHY_KATA}"
        )))
        .field_path(".defaultRuntime")
}

impl Checker<'_> {
    /// Refuses a default runtime that some host that runs pods would lack.
    pub(super) fn default_runtime(&mut self, at: &Subject) {
        const FIELD: &str = "spec.containerRuntime.defaultRuntime";
        let spec = &self.manifest.cluster().spec;
        let runtime = spec.container_runtime.default_runtime;
        if installed_by_kubegrid(runtime) {
            return;
        }
        let kept = format!(
            "runc, crun or gvisor\n  hint: keep `{runtime}` in runtimes and let pods ask for it with a RuntimeClass whose handler is {runtime}"
        );
        if runtime != RuntimeName::Nvidia {
            self.report(at, FIELD, format!("`{runtime}` ({WHY_KATA})"), kept);
            return;
        }
        if spec.gpu.is_none() {
            self.report(
                at,
                FIELD,
                "`nvidia` while spec.gpu is not set, so kubegrid installs no NVIDIA container toolkit",
                kept,
            );
            return;
        }
        let workers: Vec<_> = self
            .manifest
            .nodes()
            .iter()
            .filter(|n| n.spec.roles.contains(&Role::Worker))
            .collect();
        let not_gpu: Vec<&str> = workers
            .iter()
            .filter(|n| n.spec.gpu != NodeGpu::Nvidia)
            .map(|n| name_of(&n.metadata.name))
            .collect();
        if workers.is_empty() || !not_gpu.is_empty() {
            let which = if workers.is_empty() {
                "no worker Node".to_string()
            } else {
                format!("worker Nodes without gpu: nvidia ({})", not_gpu.join(", "))
            };
            self.report(
                at,
                FIELD,
                format!("`nvidia` with {which}"),
                format!("nvidia only when every worker Node has gpu: nvidia; else {kept}"),
            );
        }
    }
}
