//! What a host offers for GPUs and sandboxes: NVIDIA devices and NVSwitches on PCI, the
//! kernel modules that claim them, the driver and what `nvidia-smi` reports, Secure Boot,
//! kernel headers, IOMMU groups and KVM. The engine's preflight judges these; Node status
//! shows them.

use serde::{Deserialize, Serialize};

/// GPU and virtualisation facts of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuFacts {
    /// NVIDIA PCI functions of a display class (VGA 0x0300, 3D 0x0302), by address.
    #[serde(default)]
    pub devices: Vec<GpuDevice>,
    /// PCI addresses of NVIDIA NVSwitches (class 0x0680): fabric manager is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvswitches: Vec<String>,
    /// Which kernel modules that claim NVIDIA GPUs are loaded.
    #[serde(default)]
    pub modules: GpuModules,
    /// The loaded NVIDIA kernel module's version, from /proc/driver/nvidia/version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// What `nvidia-smi -q -x` reports, when nvidia-smi is installed and answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SmiReport>,
    /// nvidia-smi is installed but failed: the start of what it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi_error: Option<String>,
    /// Secure Boot, from the EFI variable; unsigned out-of-tree modules do not load under it.
    #[serde(default)]
    pub secure_boot: SecureBoot,
    /// Headers for the running kernel (`/lib/modules/<kernel>/build`), which DKMS builds need.
    #[serde(default)]
    pub kernel_headers: bool,
    /// Entries of /sys/kernel/iommu_groups; 0 when the IOMMU is off.
    #[serde(default)]
    pub iommu_groups: u32,
    /// Whether /dev/kvm can create a VM (Kata Containers needs it).
    #[serde(default)]
    pub kvm: Kvm,
}

/// One NVIDIA GPU on PCI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    /// Bus address ("0000:3b:00.0").
    pub address: String,
    /// PCI device id ("0x2330").
    pub device: String,
    /// Product name where kubegrid's table knows the id, else `NVIDIA 10de:<id>`.
    pub model: String,
    /// The IOMMU group the device is in, when the IOMMU is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
}

/// Loaded kernel modules that claim NVIDIA GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuModules {
    /// NVIDIA's driver.
    #[serde(default)]
    pub nvidia: bool,
    /// The in-tree open-source driver, which must be blacklisted before NVIDIA's loads.
    #[serde(default)]
    pub nouveau: bool,
    /// The newer in-tree driver core for GSP-based GPUs, which also claims them.
    #[serde(default)]
    pub nova_core: bool,
}

/// The parts of `nvidia-smi -q -x` kubegrid reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmiReport {
    /// `driver_version`.
    pub driver_version: String,
    /// `cuda_version`: the newest CUDA the driver supports.
    pub cuda_version: String,
    /// One entry per GPU the driver sees.
    #[serde(default)]
    pub gpus: Vec<SmiGpu>,
}

/// One GPU as nvidia-smi reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmiGpu {
    /// `pci/pci_bus_id` ("00000000:3B:00.0").
    pub pci_bus_id: String,
    /// `product_name`.
    pub product_name: String,
    /// `uuid`.
    pub uuid: String,
    /// `mig_mode/current_mig` ("Enabled", "Disabled"); None where MIG is not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_mode: Option<String>,
    /// `fabric/state` ("Completed", "In Progress", ...); None where there is no fabric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric_state: Option<String>,
}

/// Secure Boot state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureBoot {
    /// On: modules must be signed with a key the firmware or MOK trusts.
    Enabled,
    /// Off, or a BIOS host.
    Disabled,
    /// The EFI variable could not be read.
    #[default]
    Unknown,
}

/// Whether the host can run VMs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kvm {
    /// /dev/kvm created a VM.
    Usable,
    /// There is no /dev/kvm.
    NoDevice,
    /// Not probed.
    #[default]
    Unknown,
    /// /dev/kvm is there but creating a VM failed: why.
    Unusable(String),
}

impl GpuFacts {
    /// NVIDIA GPUs found on PCI.
    pub fn count(&self) -> usize {
        self.devices.len()
    }

    /// Whether the host has NVSwitches, so fabric manager must run.
    pub fn has_nvswitch(&self) -> bool {
        !self.nvswitches.is_empty()
    }

    /// The loaded driver's branch: `550` of `550.127.05`.
    pub fn driver_branch(&self) -> Option<&str> {
        self.driver_version
            .as_deref()
            .and_then(|v| v.split('.').next())
            .filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_is_the_major_version() {
        let mut g = GpuFacts::default();
        assert_eq!(g.driver_branch(), None);
        g.driver_version = Some("550.127.05".into());
        assert_eq!(g.driver_branch(), Some("550"));
    }
}
