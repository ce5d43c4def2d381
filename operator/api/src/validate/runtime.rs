//! The default runtime handler: only one that kubegrid installs itself. kubegrid installs
//! containerd and runc; it does not install the NVIDIA container toolkit or Kata Containers
//! yet, so a default of `nvidia` or `kata-*` would leave every pod without a RuntimeClass
//! failing on hosts that lack them. Such handlers may still be listed in `runtimes`: they are
//! configured on the hosts where their binary is found (see `kubegrid_plan`'s templates).

use kube::core::{Message, Rule};

use super::{Checker, Subject};
use crate::cluster::RuntimeName;

/// Why `nvidia` and `kata-*` cannot be the default, for the CEL rule and the code's problem.
const WHY: &str = "kubegrid does not install the NVIDIA container runtime or Kata Containers yet, so pods without a RuntimeClass would fail on hosts that lack them";

/// Whether kubegrid installs `runtime` on every host itself, so that it may be the default.
pub fn installed_by_kubegrid(runtime: RuntimeName) -> bool {
    matches!(runtime, RuntimeName::Runc)
}

/// `spec.containerRuntime`: `defaultRuntime` is one that kubegrid installs.
pub(crate) fn default_runtime_rule() -> Rule {
    Rule::new(
        "!has(self.defaultRuntime) || !(self.defaultRuntime == 'nvidia' || self.defaultRuntime.startsWith('kata-'))",
    )
    .message(Message::Message(format!(
        "defaultRuntime must be runc: {WHY}"
    )))
    .field_path(".defaultRuntime")
}

impl Checker<'_> {
    /// Refuses a default runtime that kubegrid does not install.
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
                format!("`{runtime}`, which kubegrid does not install yet ({WHY})"),
                format!(
                    "runc\n  hint: keep `{runtime}` in runtimes and let pods ask for it with a RuntimeClass whose handler is {runtime}; it is configured on the hosts where it is installed"
                ),
            );
        }
    }
}
