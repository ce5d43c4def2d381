//! What GPU detection found on a host, as Node status shows it (`status.facts.gpu`), next to
//! the per-model counts in `status.facts.gpus`: the NVIDIA driver and what nvidia-smi says,
//! NVSwitches and fabric manager, the modules that claim the GPUs, and what the driver install
//! and Kata depend on (Secure Boot, kernel headers, IOMMU, KVM).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// GPU-related facts of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeGpuStatus {
    /// The loaded NVIDIA kernel module's version (`550.127.05`), from
    /// /proc/driver/nvidia/version; absent when no NVIDIA driver is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The newest CUDA the driver supports (`12.4`), from nvidia-smi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    /// MIG mode from nvidia-smi: `Enabled` or `Disabled` when every GPU agrees, `Mixed` when
    /// they differ; absent where MIG is not supported or nvidia-smi did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_mode: Option<String>,
    /// NVIDIA NVSwitches on PCI; where there are any, fabric manager must run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nvswitches: u32,
    /// The GPUs' NVLink fabric state from nvidia-smi: `Completed` when every GPU's is, else
    /// the states with their GPU counts (`In Progress: 2 of 8 GPUs`); absent where the GPUs
    /// have no fabric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric_state: Option<String>,
    /// nvidia-smi is installed but failed: the start of what it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi_error: Option<String>,
    /// NVIDIA's kernel module is loaded.
    #[serde(default)]
    pub nvidia_loaded: bool,
    /// The in-tree nouveau driver is loaded; it must be blacklisted (and the host rebooted)
    /// before NVIDIA's driver can load.
    #[serde(default)]
    pub nouveau_loaded: bool,
    /// The in-tree nova_core driver is loaded; it also claims NVIDIA GPUs.
    #[serde(default)]
    pub nova_core_loaded: bool,
    /// Secure Boot: unsigned DKMS modules do not load while it is `Enabled`.
    #[serde(default)]
    pub secure_boot: SecureBootState,
    /// Headers for the running kernel are installed, which a DKMS driver build needs.
    #[serde(default)]
    pub kernel_headers: bool,
    /// IOMMU groups; 0 when the IOMMU is off.
    #[serde(default)]
    pub iommu_groups: u32,
    /// Whether /dev/kvm can create a VM (Kata Containers needs it).
    #[serde(default)]
    pub kvm: KvmState,
    /// Why KVM is `Unusable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm_message: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Secure Boot as detected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SecureBootState {
    /// On.
    Enabled,
    /// Off, or a BIOS host.
    Disabled,
    /// The firmware's variable could not be read.
    #[default]
    Unknown,
}

/// Whether the host can run VMs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KvmState {
    /// /dev/kvm created a VM.
    Usable,
    /// There is no /dev/kvm.
    NoDevice,
    /// /dev/kvm is there but creating a VM failed (`kvmMessage` says why).
    Unusable,
    /// Not probed.
    #[default]
    Unknown,
}

/// The MIG summary of the GPUs' MIG modes (`Enabled`, `Disabled`; `None` = not supported):
/// the one mode when all that report one agree, `Mixed` when they differ, `None` when none
/// reports one.
pub fn mig_summary<'a>(modes: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let mut seen: Vec<&str> = modes.into_iter().flatten().collect();
    seen.sort_unstable();
    seen.dedup();
    match seen.as_slice() {
        [] => None,
        [one] => Some((*one).to_string()),
        _ => Some("Mixed".into()),
    }
}

/// The fabric summary of the GPUs' fabric states (`None` = the GPU has no fabric):
/// `Completed` when every GPU's is; otherwise each state with its count, e.g.
/// `Completed: 6 of 8 GPUs, In Progress: 2 of 8 GPUs`; `None` when no GPU has a fabric.
pub fn fabric_summary<'a>(states: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let states: Vec<Option<&str>> = states.into_iter().collect();
    let total = states.len();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for state in states.iter().flatten() {
        *counts.entry(state).or_default() += 1;
    }
    if counts.is_empty() {
        return None;
    }
    if counts.len() == 1 && counts.get("Completed") == Some(&total) {
        return Some("Completed".into());
    }
    let none = total - counts.values().sum::<usize>();
    let mut parts: Vec<String> = counts
        .iter()
        .map(|(state, n)| format!("{state}: {n} of {total} GPUs"))
        .collect();
    if none > 0 {
        parts.push(format!("none: {none} of {total} GPUs"));
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_modes_are_summarised() {
        assert_eq!(mig_summary([None, None]), None);
        assert_eq!(
            mig_summary([Some("Disabled"), Some("Disabled")]).as_deref(),
            Some("Disabled")
        );
        assert_eq!(
            mig_summary([Some("Enabled"), Some("Disabled")]).as_deref(),
            Some("Mixed")
        );
    }

    #[test]
    fn fabric_states_are_summarised_with_counts() {
        assert_eq!(fabric_summary([None]), None);
        assert_eq!(
            fabric_summary([Some("Completed"); 8]).as_deref(),
            Some("Completed")
        );
        let mut states = vec![Some("Completed"); 6];
        states.extend([Some("In Progress"), None]);
        assert_eq!(
            fabric_summary(states).as_deref(),
            Some("Completed: 6 of 8 GPUs, In Progress: 1 of 8 GPUs, none: 1 of 8 GPUs")
        );
    }

    #[test]
    fn status_fields_are_camel_case_and_defaults_are_written() {
        let status = NodeGpuStatus {
            driver_version: Some("550.127.05".into()),
            nvswitches: 4,
            kvm: KvmState::NoDevice,
            ..NodeGpuStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "driverVersion": "550.127.05",
                "nvswitches": 4,
                "nvidiaLoaded": false,
                "nouveauLoaded": false,
                "novaCoreLoaded": false,
                "secureBoot": "Unknown",
                "kernelHeaders": false,
                "iommuGroups": 0,
                "kvm": "NoDevice",
            })
        );
    }
}
