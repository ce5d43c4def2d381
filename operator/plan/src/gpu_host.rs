//! The NVIDIA host stack on GPU Nodes: what `when:` predicates about GPUs read, the runfile
//! driver module, and the host validation checks, compiled to agent tasks.

use std::path::PathBuf;

use kubegrid_agent::protocol::{Action, BinaryArgs, CommandArgs};
use serde::Deserialize;

use crate::{
    bundle::Bundle,
    context::{ClusterContext, HostContext},
    error::{Error, Result},
};

/// The nouveau blacklist kubegrid writes; the initramfs is rebuilt whenever it changes.
pub const NOUVEAU_BLACKLIST: &str = "/etc/modprobe.d/kubegrid-blacklist-nouveau.conf";

/// The CDI spec generated on the host for the loaded driver (`nvidia-ctk cdi generate`).
pub const CDI_SPEC: &str = "/etc/cdi/nvidia.yaml";

/// Fabric manager's unit, as NVIDIA's package ships it.
pub const FABRIC_MANAGER_UNIT: &str = "nvidia-fabricmanager.service";

/// nvidia-persistenced's unit: the package's, or kubegrid's for a runfile driver.
pub const PERSISTENCED_UNIT: &str = "nvidia-persistenced.service";

/// Where the driver was chosen to come from (Cluster.spec.gpu.driver.source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverSource {
    /// The bundle's packages for the host's OS family.
    Packages,
    /// NVIDIA's `.run` installer from the bundle, built with DKMS.
    Runfile,
    /// Installed by someone else; kubegrid only checks it.
    Preinstalled,
}

impl DriverSource {
    /// The name the spec and the context spell it with.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverSource::Packages => "packages",
            DriverSource::Runfile => "runfile",
            DriverSource::Preinstalled => "preinstalled",
        }
    }
}

/// Whether `when: {gpu_driver: <source>}` holds: the spec has a GPU section with that source.
pub(crate) fn driver_source_is(cluster: &ClusterContext, source: DriverSource) -> bool {
    cluster
        .gpu
        .as_ref()
        .is_some_and(|g| g.driver_source == source.as_str())
}

/// Whether the host needs fabric manager: a GPU Node with NVSwitches under `fabricManager:
/// auto`, or any GPU Node under `on`. (`off` with NVSwitches present is refused by preflight:
/// without fabric manager CUDA fails on such systems.)
pub fn fabric_manager_required(cluster: &ClusterContext, host: &HostContext) -> bool {
    let Some(gpu) = cluster.gpu.as_ref().filter(|_| host.gpu) else {
        return false;
    };
    match gpu.fabric_manager.as_str() {
        "on" => true,
        "auto" => host.facts.gpu.has_nvswitch(),
        _ => false,
    }
}

/// `nvidia_runfile:` NVIDIA's `.run` installer from the bundle, placed on the host and run
/// with `--silent --dkms` unless that exact driver version is loaded or installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvidiaRunfileSpec {
    /// Name the bundle manifest lists the runfile under (kind binary).
    pub bundle: String,
    /// Directory the installer is kept in on the host.
    pub dir: PathBuf,
}

/// The runfile's two tasks: the installer in place (its sha256 known to the store), then the
/// guarded run. Returns (task name, action, blob sha256 when the task needs one).
pub(crate) fn nvidia_runfile(
    spec: &NvidiaRunfileSpec,
    task: &str,
    cluster: &ClusterContext,
    host: &HostContext,
    bundle: &Bundle,
) -> Result<Vec<(String, Action, Option<String>)>> {
    let gpu = gpu_context(cluster, task)?;
    let version = &gpu.driver_version;
    let file = bundle.binary_of_version(&spec.bundle, &host.facts.arch, version)?;
    let machine = match host.facts.arch.as_str() {
        "arm64" => "aarch64",
        _ => "x86_64",
    };
    let path = spec
        .dir
        .join(format!("NVIDIA-Linux-{machine}-{version}.run"));
    let path_text = path.display().to_string();
    // Loaded (/sys/module/nvidia/version) or built and installed for the running kernel
    // (modinfo): either way that version is already there and the installer is not run.
    let installed = format!(
        "test \"$(cat /sys/module/nvidia/version 2>/dev/null)\" = {version} || test \"$(modinfo -F version nvidia 2>/dev/null)\" = {version}"
    );
    Ok(vec![
        (
            format!("{task} (installer {version})"),
            Action::Binary(BinaryArgs {
                path,
                sha256: file.sha256.clone(),
                mode: 0o755,
            }),
            Some(file.sha256.clone()),
        ),
        (
            format!("{task} (install {version})"),
            Action::Command(CommandArgs {
                argv: vec!["sh".into(), path_text, "--silent".into(), "--dkms".into()],
                creates: None,
                unless: Some(vec!["sh".into(), "-c".into(), installed]),
                env: Default::default(),
                redact: Vec::new(),
                watch: Vec::new(),
            }),
            None,
        ),
    ])
}

fn gpu_context<'a>(cluster: &'a ClusterContext, task: &str) -> Result<&'a crate::gpu::GpuContext> {
    cluster.gpu.as_ref().ok_or_else(|| Error::InvalidContext {
        problem: format!(
            "task `{task}` installs the NVIDIA stack, but the spec has no `gpu` section (spec.gpu)"
        ),
    })
}

/// The GPUs the facts found on the PCI bus: what nvidia-smi and a GPU container must show.
pub(crate) fn pci_gpus(host: &HostContext) -> u32 {
    u32::try_from(host.facts.gpu.count()).unwrap_or(u32::MAX)
}
