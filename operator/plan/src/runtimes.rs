//! Which runtime handlers a host's containerd config names, and where their programs come
//! from (docs/runtimes.md):
//!
//! - `runc` comes with containerd and is always configured.
//! - `gvisor` (Debian's `runsc`) and `crun` are Debian packages in the bundle, which the
//!   `container-runtime` phase installs on Debian-family hosts before it writes containerd's
//!   config. The bundle carries them as .debs only, so elsewhere the handler is left out.
//! - `kata-<shim>`: Kata Containers' static release archive from the bundle, unpacked to
//!   /opt/kata on hosts whose facts say a VM can be created (`facts.gpu.kvm` usable). A kata
//!   pod is a VM, so on any other host the handler is left out rather than configured to fail
//!   every pod that asks for it.
//! - `nvidia`: NVIDIA's container toolkit (`nvidia-container-runtime`), which kubegrid
//!   installs on GPU Nodes ([`HostContext::gpu`]). Another host gets the handler only when the
//!   facts phase found the toolkit installed already.
//!
//! Each left-out handler is reported as skipped, with why.

use kubegrid_agent::facts::{Facts, Kvm};

use crate::context::{ClusterContext, HostContext, OsFamily};

/// The binary containerd's `nvidia` handler runs (`BinaryName`).
pub const NVIDIA_RUNTIME_BINARY: &str = "/usr/bin/nvidia-container-runtime";
/// The shim every `kata-*` handler runs (`runtime_path`).
pub const KATA_SHIM_BINARY: &str = "/opt/kata/bin/containerd-shim-kata-v2";
/// gVisor's OCI runtime, as Debian's `runsc` package installs it.
pub const RUNSC_BINARY: &str = "/usr/bin/runsc";
/// The script containerd's runc shim runs as the `gvisor` handler's OCI runtime
/// (`BinaryName`): `runsc` with the flags kubegrid needs (templates/containerd/runsc-containerd.sh.tera).
pub const RUNSC_WRAPPER: &str = "/usr/local/lib/kubegrid/runsc-containerd";
/// crun, as Debian's `crun` package installs it (the `crun` handler's `BinaryName`).
pub const CRUN_BINARY: &str = "/usr/bin/crun";

/// The binary a handler needs on the host; None for runc, which comes with containerd.
pub fn runtime_binary(handler: &str) -> Option<&'static str> {
    match handler {
        "nvidia" => Some(NVIDIA_RUNTIME_BINARY),
        "gvisor" => Some(RUNSC_BINARY),
        "crun" => Some(CRUN_BINARY),
        h if h.starts_with("kata-") => Some(KATA_SHIM_BINARY),
        _ => None,
    }
}

/// Whether a host whose facts are `facts` can create a VM, which every kata handler needs:
/// only when the agent found /dev/kvm and created a VM with it. A host not probed counts as
/// unable, so kata is never configured on a guess.
pub fn vm_capable(facts: &Facts) -> bool {
    facts.gpu.kvm == Kvm::Usable
}

/// What the facts say about creating a VM, in words for reports and preflight findings.
pub fn describe_kvm(kvm: &Kvm) -> String {
    match kvm {
        Kvm::Usable => "/dev/kvm can create a VM".into(),
        Kvm::NoDevice => "no /dev/kvm".into(),
        Kvm::Unknown => "whether /dev/kvm can create a VM is not known (not probed)".into(),
        Kvm::Unusable(why) => format!("/dev/kvm cannot create a VM ({why})"),
    }
}

/// The paths the facts phase probes so that [`host_runtimes`] can tell which handlers a host
/// can run: the NVIDIA toolkit's runtime, which a host that is not a GPU Node may have from
/// its owner. What kubegrid installs itself needs no probe.
pub fn runtime_probe_paths(cluster: &ClusterContext) -> Vec<&'static str> {
    if cluster.runtimes.iter().any(|r| r == "nvidia") {
        vec![NVIDIA_RUNTIME_BINARY]
    } else {
        Vec::new()
    }
}

/// Why a listed handler is left out of a host's containerd config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A kata handler on a host that cannot create a VM; what the facts say about /dev/kvm.
    NoVm(String),
    /// gvisor or crun on a host that is not Debian-family: the bundle has them as .debs only.
    NotDebian {
        /// The host's os-release ID.
        os: String,
    },
    /// nvidia on a host that is not a GPU Node and has no NVIDIA container toolkit.
    NoNvidiaToolkit,
}

/// A listed handler left out of a host's containerd config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRuntime {
    /// The handler, e.g. `kata-qemu`.
    pub handler: String,
    /// Why.
    pub reason: SkipReason,
}

impl std::fmt::Display for SkippedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "runtime handler {} is not configured: ", self.handler)?;
        match &self.reason {
            SkipReason::NoVm(seen) => write!(
                f,
                "this host cannot run Kata Containers, which needs a VM ({seen}); kata is installed and configured only where /dev/kvm works"
            ),
            SkipReason::NotDebian { os } => write!(
                f,
                "the bundle carries it as a Debian package, and this host runs {}",
                if os.is_empty() { "an unknown OS" } else { os }
            ),
            SkipReason::NoNvidiaToolkit => write!(
                f,
                "this host is not a GPU Node and has no {NVIDIA_RUNTIME_BINARY} (kubegrid installs NVIDIA's container toolkit on GPU Nodes only)"
            ),
        }
    }
}

/// The handlers of `cluster` that `host`'s containerd config names (runc always, the others
/// where kubegrid installs their programs or finds them), and those left out, with why.
pub fn host_runtimes(
    cluster: &ClusterContext,
    host: &HostContext,
) -> (Vec<String>, Vec<SkippedRuntime>) {
    let mut configured = vec!["runc".to_string()];
    let mut skipped = Vec::new();
    for handler in cluster.runtimes.iter().filter(|r| *r != "runc") {
        let reason = match handler.as_str() {
            "gvisor" | "crun" if host.os_family() != Some(OsFamily::Debian) => {
                Some(SkipReason::NotDebian {
                    os: host.facts.os_id.clone(),
                })
            }
            "nvidia" if !host.gpu && !host.has_path(NVIDIA_RUNTIME_BINARY) => {
                Some(SkipReason::NoNvidiaToolkit)
            }
            h if h.starts_with("kata-") && !vm_capable(&host.facts) => {
                Some(SkipReason::NoVm(describe_kvm(&host.facts.gpu.kvm)))
            }
            _ => None,
        };
        match reason {
            Some(reason) => skipped.push(SkippedRuntime {
                handler: handler.clone(),
                reason,
            }),
            None => configured.push(handler.clone()),
        }
    }
    (configured, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterContext {
        let mut c = ClusterContext::new("c", "1.7").unwrap();
        c.runtimes = ["runc", "nvidia", "kata-qemu", "kata-clh", "gvisor", "crun"]
            .map(String::from)
            .to_vec();
        c
    }

    fn debian() -> HostContext {
        let mut host = HostContext::default();
        host.facts.os_id = "debian".into();
        host
    }

    fn handlers(skipped: &[SkippedRuntime]) -> Vec<&str> {
        skipped.iter().map(|s| s.handler.as_str()).collect()
    }

    #[test]
    fn kata_is_configured_only_where_a_vm_can_be_created() {
        for kvm in [
            Kvm::Unknown,
            Kvm::NoDevice,
            Kvm::Unusable("KVM_CREATE_VM: permission denied".into()),
        ] {
            let mut host = debian();
            host.facts.gpu.kvm = kvm.clone();
            let (on, off) = host_runtimes(&cluster(), &host);
            assert_eq!(on, ["runc", "gvisor", "crun"], "{kvm:?}");
            assert_eq!(handlers(&off), ["nvidia", "kata-qemu", "kata-clh"]);
            assert_eq!(off[1].reason, SkipReason::NoVm(describe_kvm(&kvm)));
            assert!(off[1].to_string().contains("needs a VM"), "{}", off[1]);
        }
        let mut host = debian();
        host.facts.gpu.kvm = Kvm::Usable;
        let (on, _) = host_runtimes(&cluster(), &host);
        assert_eq!(on, ["runc", "kata-qemu", "kata-clh", "gvisor", "crun"]);
    }

    #[test]
    fn nvidia_is_configured_on_gpu_nodes_or_where_the_toolkit_is_installed() {
        let mut host = debian();
        let (_, off) = host_runtimes(&cluster(), &host);
        assert_eq!(off[0].reason, SkipReason::NoNvidiaToolkit);
        assert!(off[0].to_string().contains(NVIDIA_RUNTIME_BINARY));
        host.gpu = true;
        assert!(
            host_runtimes(&cluster(), &host)
                .0
                .contains(&"nvidia".into())
        );
        host.gpu = false;
        host.facts.paths.insert(NVIDIA_RUNTIME_BINARY.into(), true);
        assert!(
            host_runtimes(&cluster(), &host)
                .0
                .contains(&"nvidia".into())
        );
    }

    #[test]
    fn debian_packaged_runtimes_are_left_out_elsewhere() {
        let mut host = HostContext::default();
        host.facts.os_id = "rocky".into();
        host.facts.gpu.kvm = Kvm::Usable;
        host.gpu = true;
        let (on, off) = host_runtimes(&cluster(), &host);
        assert_eq!(on, ["runc", "nvidia", "kata-qemu", "kata-clh"]);
        assert_eq!(handlers(&off), ["gvisor", "crun"]);
        assert!(off[0].to_string().contains("runs rocky"), "{}", off[0]);
    }

    #[test]
    fn only_the_nvidia_toolkit_is_probed() {
        assert_eq!(runtime_probe_paths(&cluster()), [NVIDIA_RUNTIME_BINARY]);
        assert!(runtime_probe_paths(&ClusterContext::new("c", "1.7").unwrap()).is_empty());
    }
}
