//! GPU checks: what would make the NVIDIA stack fail on a GPU Node, found before anything is
//! installed. A DKMS driver does not load under Secure Boot and does not build without the
//! running kernel's headers; an NVSwitch system without fabric manager fails every CUDA call
//! (error 802); a driver of another branch already loaded would be replaced under running
//! workloads. Each finding names what was seen, what the spec asks for and a way out.

use kubegrid_agent::facts::SecureBoot;

use super::{Check, Finding, Subject, host::each};

/// The GPU checks, in report order.
pub(super) fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(GpuPresent),
        Box::new(DriverSource),
        Box::new(SecureBootDkms),
        Box::new(KernelHeaders),
        Box::new(FabricManager),
        Box::new(DriverBranch),
    ]
}

/// Where the spec's driver comes from, for a GPU Node; None elsewhere.
fn driver_source<'a>(h: &'a Subject<'_>) -> Option<&'a str> {
    h.gpu
        .filter(|_| h.gpu_node)
        .map(|g| g.driver_source.as_str())
}

/// Whether kubegrid builds the driver with DKMS on this host: the bundle's packages and
/// NVIDIA's runfile (run with `--dkms`) both do, unless that branch is already loaded.
fn builds_with_dkms(h: &Subject<'_>) -> bool {
    matches!(driver_source(h), Some("packages" | "runfile")) && !branch_loaded(h)
}

/// Whether the loaded driver is of the spec's branch already.
fn branch_loaded(h: &Subject<'_>) -> bool {
    let want = h.gpu.and_then(|g| g.driver_branch.as_deref());
    want.is_some() && h.facts.gpu.driver_branch() == want
}

struct GpuPresent;
impl Check for GpuPresent {
    fn name(&self) -> &'static str {
        "gpu-present"
    }
    fn describe(&self) -> &'static str {
        "a Node with `gpu: nvidia` has an NVIDIA GPU on its PCI bus"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            (h.gpu_required && h.facts.gpu.count() == 0).then(|| {
                (
                    "no NVIDIA GPU on the PCI bus (vendor 0x10de, display class)".into(),
                    "at least one NVIDIA GPU, since the Node's spec.gpu is `nvidia`".into(),
                    "check `lspci -nn | grep -i nvidia` on the host (a VM needs the GPU passed through), or set the Node's spec.gpu to `auto`".into(),
                )
            })
        })
    }
}

struct DriverSource;
impl Check for DriverSource {
    fn name(&self) -> &'static str {
        "gpu-driver-source"
    }
    fn describe(&self) -> &'static str {
        "the driver source can serve the host: bundle packages are Debian-family debs, and the runfile brings no fabric manager for NVSwitch systems"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let f = h.facts;
            let debian = f.os_id == "debian"
                || f.os_id == "ubuntu"
                || f.os_like.iter().any(|l| l == "debian");
            match driver_source(h)? {
                "packages" if !debian => Some((
                    format!("{} {} with spec.gpu.driver.source packages", f.os_id, f.os_version),
                    "a Debian or Ubuntu host for the bundle's driver packages (debs from NVIDIA's CUDA repository)".into(),
                    "the bundle carries no rpm driver packages; use spec.gpu.driver.source runfile or preinstalled on RHEL-family hosts".into(),
                )),
                "runfile" if h.facts.gpu.has_nvswitch()
                    && h.gpu.is_some_and(|g| g.fabric_manager != "off") =>
                {
                    Some((
                        format!(
                            "{} NVSwitch(es) with spec.gpu.driver.source runfile",
                            f.gpu.nvswitches.len()
                        ),
                        "a driver source that brings fabric manager in the driver's exact version".into(),
                        "the bundle has fabric manager only as Debian packages; use spec.gpu.driver.source packages on NVSwitch systems, or preinstalled with fabric manager installed".into(),
                    ))
                }
                _ => None,
            }
        })
    }
}

struct SecureBootDkms;
impl Check for SecureBootDkms {
    fn name(&self) -> &'static str {
        "gpu-secure-boot"
    }
    fn describe(&self) -> &'static str {
        "Secure Boot is off where kubegrid builds the NVIDIA driver with DKMS (unsigned modules do not load under it)"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            (builds_with_dkms(h) && h.facts.gpu.secure_boot == SecureBoot::Enabled).then(|| {
                (
                    format!(
                        "Secure Boot enabled, with spec.gpu.driver.source {}",
                        driver_source(h).unwrap_or_default()
                    ),
                    "Secure Boot off, or a driver you sign yourself".into(),
                    "the DKMS-built nvidia module is unsigned and the kernel would refuse it; turn Secure Boot off in the firmware, or install a driver signed with a key enrolled in MOK and set spec.gpu.driver.source to preinstalled (`--skip-check gpu-secure-boot` only if your DKMS signs with an enrolled MOK key)".into(),
                )
            })
        })
    }
}

struct KernelHeaders;
impl Check for KernelHeaders {
    fn name(&self) -> &'static str {
        "gpu-kernel-headers"
    }
    fn describe(&self) -> &'static str {
        "the running kernel's headers are installed where kubegrid builds the NVIDIA driver with DKMS"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            (builds_with_dkms(h) && !h.facts.gpu.kernel_headers).then(|| {
                let k = &h.facts.kernel;
                (
                    format!("no /lib/modules/{k}/build (kernel headers)"),
                    format!("headers for the running kernel {k}, which DKMS builds the nvidia module against"),
                    format!(
                        "install linux-headers-{k} (Debian, Ubuntu) or kernel-devel-{k} (RHEL family), or boot the kernel whose headers are installed"
                    ),
                )
            })
        })
    }
}

struct FabricManager;
impl Check for FabricManager {
    fn name(&self) -> &'static str {
        "gpu-fabric-manager"
    }
    fn describe(&self) -> &'static str {
        "fabric manager is not turned off on a GPU Node with NVSwitches"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let off = h.gpu.is_some_and(|g| g.fabric_manager == "off");
            (h.gpu_node && off && h.facts.gpu.has_nvswitch()).then(|| {
                (
                    format!(
                        "{} NVSwitch(es) ({}) with spec.gpu.fabricManager off",
                        h.facts.gpu.nvswitches.len(),
                        h.facts.gpu.nvswitches.join(", ")
                    ),
                    "fabric manager running on NVSwitch systems".into(),
                    "without fabric manager the GPUs' fabric never completes and CUDA fails with error 802; set spec.gpu.fabricManager to auto".into(),
                )
            })
        })
    }
}

struct DriverBranch;
impl Check for DriverBranch {
    fn name(&self) -> &'static str {
        "gpu-driver-branch"
    }
    fn describe(&self) -> &'static str {
        "no NVIDIA driver of another branch is loaded (unless the driver is preinstalled), and a preinstalled driver is loaded"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let source = driver_source(h)?;
            let loaded = h.facts.gpu.driver_version.as_deref();
            if source == "preinstalled" {
                return loaded.is_none().then(|| {
                    (
                        "no NVIDIA driver loaded (/proc/driver/nvidia/version is missing)".into(),
                        "the host's own NVIDIA driver loaded, since spec.gpu.driver.source is preinstalled".into(),
                        "install and load the driver (check `nvidia-smi`), or set spec.gpu.driver.source to packages or runfile so kubegrid installs it".into(),
                    )
                });
            }
            let want = h.gpu.and_then(|g| g.driver_branch.as_deref())?;
            let loaded = loaded?;
            (h.facts.gpu.driver_branch() != Some(want)).then(|| {
                (
                    format!("NVIDIA driver {loaded} loaded"),
                    format!("branch {want} (spec.gpu.driver.branch)"),
                    format!(
                        "kubegrid does not replace a driver under running workloads: remove the {loaded} driver first, set spec.gpu.driver.branch to match it, or set spec.gpu.driver.source to preinstalled to keep it"
                    ),
                )
            })
        })
    }
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod tests;
