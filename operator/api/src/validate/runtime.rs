//! The default runtime handler: only one that every host runs. kubegrid installs runc with
//! containerd everywhere, but the others only on some hosts (docs/runtimes.md): nvidia on GPU
//! Nodes, kata where a VM can be created, gVisor and crun on Debian-family hosts. A default
//! of one of those would leave every pod without a RuntimeClass failing on the other hosts.
//! They may still be listed in `runtimes`: pods ask for them with a RuntimeClass.

use kube::core::{Message, Rule};

use super::{Checker, Subject};
use crate::cluster::RuntimeName;

/// Why only runc can be the default, for the CEL rule and the code's problem.
const WHY: &str = "kubegrid installs the other runtimes only on some hosts (nvidia on GPU Nodes, kata where a VM can be created, gvisor and crun on Debian-family hosts), so pods without a RuntimeClass would fail on the rest";

/// Whether kubegrid installs `runtime` on every host itself, so that it may be the default.
pub fn installed_by_kubegrid(runtime: RuntimeName) -> bool {
    matches!(runtime, RuntimeName::Runc)
}

/// `spec.containerRuntime`: `defaultRuntime` is one that kubegrid installs.
pub(crate) fn default_runtime_rule() -> Rule {
    Rule::new("!has(self.defaultRuntime) || self.defaultRuntime == 'runc'")
        .message(Message::Message(format!(
            "defaultRuntime must be runc: {WHY}"
        )))
        .field_path(".defaultRuntime")
}

impl Checker<'_> {
    /// Refuses a default runtime that not every host runs.
    pub(super) fn default_runtime(&mut self, at: &Subject) {
        let runtime = self
            .manifest
            .cluster()
            .spec
            .container_runtime
            .default_runtime;
        if !installed_by_kubegrid(runtime) {
            self.report(
                at,
                "spec.containerRuntime.defaultRuntime",
                format!("`{runtime}`, which not every host runs ({WHY})"),
                format!(
                    "runc; hint: keep `{runtime}` in runtimes and let pods ask for it with a RuntimeClass whose handler is {runtime}; it is configured on the hosts that run it"
                ),
            );
        }
    }
}
