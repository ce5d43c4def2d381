//! Which runtime handlers a host's containerd config names. kubegrid installs runc with
//! containerd; it does not install the NVIDIA container toolkit or Kata Containers yet. A
//! handler whose binary is missing would make containerd fail every pod that asks for it, so
//! a listed handler is configured only on the hosts where the facts phase found its binary;
//! the others are reported as skipped.

use crate::context::{ClusterContext, HostContext};

/// The binary containerd's `nvidia` handler runs (`BinaryName`).
pub const NVIDIA_RUNTIME_BINARY: &str = "/usr/bin/nvidia-container-runtime";
/// The shim every `kata-*` handler runs (`runtime_path`).
pub const KATA_SHIM_BINARY: &str = "/opt/kata/bin/containerd-shim-kata-v2";

/// The binary a handler needs on the host; None for runc, which comes with containerd.
pub fn runtime_binary(handler: &str) -> Option<&'static str> {
    match handler {
        "nvidia" => Some(NVIDIA_RUNTIME_BINARY),
        h if h.starts_with("kata-") => Some(KATA_SHIM_BINARY),
        _ => None,
    }
}

/// The paths the facts phase probes so that [`host_runtimes`] can tell which handlers a host
/// can run.
pub fn runtime_probe_paths(cluster: &ClusterContext) -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for binary in cluster.runtimes.iter().filter_map(|r| runtime_binary(r)) {
        if !paths.contains(&binary) {
            paths.push(binary);
        }
    }
    paths
}

/// A listed handler left out of a host's containerd config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRuntime {
    /// The handler, e.g. `nvidia`.
    pub handler: String,
    /// The binary the host lacks.
    pub binary: &'static str,
}

impl std::fmt::Display for SkippedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "runtime handler {} is not configured: {} is not installed on this host (kubegrid does not install it yet)",
            self.handler, self.binary
        )
    }
}

/// The handlers of `cluster` that `host`'s containerd config names (runc always, the others
/// where their binary exists), and those skipped for a missing binary.
pub fn host_runtimes(
    cluster: &ClusterContext,
    host: &HostContext,
) -> (Vec<String>, Vec<SkippedRuntime>) {
    let mut configured = vec!["runc".to_string()];
    let mut skipped = Vec::new();
    for handler in cluster.runtimes.iter().filter(|r| *r != "runc") {
        match runtime_binary(handler) {
            Some(binary) if !host.has_path(binary) => skipped.push(SkippedRuntime {
                handler: handler.clone(),
                binary,
            }),
            _ => configured.push(handler.clone()),
        }
    }
    (configured, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterContext {
        let mut c = ClusterContext::new("c", "1.7").unwrap();
        c.runtimes = vec![
            "runc".into(),
            "nvidia".into(),
            "kata-qemu".into(),
            "kata-fc".into(),
        ];
        c
    }

    #[test]
    fn handlers_are_configured_only_where_their_binary_is() {
        let mut host = HostContext::default();
        let (on, off) = host_runtimes(&cluster(), &host);
        assert_eq!(on, ["runc"]);
        assert_eq!(
            off.iter().map(|s| s.handler.as_str()).collect::<Vec<_>>(),
            ["nvidia", "kata-qemu", "kata-fc"]
        );
        assert!(
            off[0]
                .to_string()
                .contains("/usr/bin/nvidia-container-runtime")
        );
        host.facts.paths.insert(NVIDIA_RUNTIME_BINARY.into(), true);
        host.facts.paths.insert(KATA_SHIM_BINARY.into(), false);
        let (on, off) = host_runtimes(&cluster(), &host);
        assert_eq!(on, ["runc", "nvidia"]);
        assert_eq!(off.len(), 2);
    }

    #[test]
    fn the_probes_name_each_binary_once() {
        assert_eq!(
            runtime_probe_paths(&cluster()),
            [NVIDIA_RUNTIME_BINARY, KATA_SHIM_BINARY]
        );
        assert!(runtime_probe_paths(&ClusterContext::new("c", "1.7").unwrap()).is_empty());
    }
}
