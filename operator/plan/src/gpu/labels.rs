//! Node labels from a host's GPU facts. The names follow NVIDIA's: `nvidia.com/gpu.present` is
//! the label the GPU Operator's Node Feature Discovery rule sets, `nvidia.com/gpu.count` and
//! `nvidia.com/gpu.product` are GPU Feature Discovery's (GFD), with the product sanitised the
//! way GFD does it, so a GFD that runs later (under the GPU Operator) writes the same values.
//! `kubelet_may_set_label` allows all of them in the kubelet's `--node-labels`.

use std::collections::BTreeMap;

use kubegrid_agent::facts::{GpuFacts, Kvm};

/// `true` on Nodes with NVIDIA GPUs; the device plugin, the DCGM exporter and the `nvidia`
/// RuntimeClass select Nodes by it.
pub const GPU_PRESENT_LABEL: &str = "nvidia.com/gpu.present";
/// The number of NVIDIA GPUs on the Node (PCI functions).
pub const GPU_COUNT_LABEL: &str = "nvidia.com/gpu.count";
/// The GPU model, e.g. `NVIDIA-H100-80GB-HBM3`.
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// The loaded NVIDIA driver's version; kubegrid's own, GFD has no single label for it.
pub const GPU_DRIVER_LABEL: &str = "kubegrid.io/gpu-driver";
/// `true` on Nodes that can run Kata's VMs; Kata's RuntimeClasses select Nodes by it
/// (kata-deploy's label).
pub const KATA_RUNTIME_LABEL: &str = "katacontainers.io/kata-runtime";

/// `true` on Nodes whose containerd has the `gvisor` handler (Debian-family hosts: the bundle
/// has runsc as a .deb only); the `gvisor` RuntimeClass selects Nodes by it.
pub const GVISOR_RUNTIME_LABEL: &str = "kubegrid.io/runtime-gvisor";
/// `true` on Nodes whose containerd has the `crun` handler; the `crun` RuntimeClass selects
/// Nodes by it.
pub const CRUN_RUNTIME_LABEL: &str = "kubegrid.io/runtime-crun";

/// The longest label value Kubernetes accepts.
const LABEL_VALUE_MAX: usize = 63;

/// GPU labels for a Node: none without NVIDIA GPUs; otherwise `nvidia.com/gpu.present=true`,
/// the count, the product (nvidia-smi's name where it answered, as GFD reads it from NVML,
/// else the PCI table's; the first GPU's, as GFD assumes one model per Node) and the loaded
/// driver's version when known.
pub fn gpu_node_labels(facts: &GpuFacts) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if facts.count() == 0 {
        return labels;
    }
    labels.insert(GPU_PRESENT_LABEL.to_string(), "true".to_string());
    labels.insert(GPU_COUNT_LABEL.to_string(), facts.count().to_string());
    let product = facts
        .smi
        .as_ref()
        .and_then(|smi| smi.gpus.first())
        .map(|gpu| gpu.product_name.as_str())
        .filter(|name| !name.trim().is_empty())
        .or_else(|| facts.devices.first().map(|d| d.model.as_str()));
    if let Some(product) = product.map(label_value).filter(|p| !p.is_empty()) {
        labels.insert(GPU_PRODUCT_LABEL.to_string(), product);
    }
    let driver = facts
        .driver_version
        .as_deref()
        .or_else(|| facts.smi.as_ref().map(|smi| smi.driver_version.as_str()))
        .map(label_value)
        .filter(|v| !v.is_empty());
    if let Some(driver) = driver {
        labels.insert(GPU_DRIVER_LABEL.to_string(), driver);
    }
    labels
}

/// `katacontainers.io/kata-runtime=true` when the host's /dev/kvm created a VM; none
/// otherwise, so Kata's RuntimeClasses never schedule a pod where its VM cannot start.
pub fn kata_node_labels(facts: &GpuFacts) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if facts.kvm == Kvm::Usable {
        labels.insert(KATA_RUNTIME_LABEL.to_string(), "true".to_string());
    }
    labels
}

/// The labels of the handlers a host's containerd was configured with (`host_runtimes`) that
/// only some hosts get: gvisor and crun, which kubegrid installs on Debian-family hosts only.
pub fn runtime_node_labels(configured: &[String]) -> BTreeMap<String, String> {
    configured
        .iter()
        .filter_map(|h| match h.as_str() {
            "gvisor" => Some(GVISOR_RUNTIME_LABEL),
            "crun" => Some(CRUN_RUNTIME_LABEL),
            _ => None,
        })
        .map(|key| (key.to_string(), "true".to_string()))
        .collect()
}

/// A string as a label value, the way GFD sanitises names: characters other than letters,
/// digits, `-`, `_`, `.` and blanks dropped, runs of blanks turned into one `-`. Then what
/// Kubernetes needs on top: at most 63 characters, starting and ending with a letter or digit.
pub fn label_value(input: &str) -> String {
    let kept: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || c.is_whitespace())
        .collect();
    let joined = kept.split_whitespace().collect::<Vec<_>>().join("-");
    let cut: String = joined.chars().take(LABEL_VALUE_MAX).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubegrid_agent::facts::{GpuDevice, SmiGpu, SmiReport};

    fn device(model: &str) -> GpuDevice {
        GpuDevice {
            address: "0000:3b:00.0".into(),
            device: "0x2330".into(),
            model: model.into(),
            iommu_group: None,
        }
    }

    #[test]
    fn sanitising_matches_gpu_feature_discovery() {
        // GFD's own test cases (internal/lm/resource_test.go).
        for (input, expected) in [
            ("a space separated string", "a-space-separated-string"),
            ("some(thing)else", "somethingelse"),
            ("some ( thing )else", "some-thing-else"),
            ("NVIDIA-TITAN-X-(Pascal)", "NVIDIA-TITAN-X-Pascal"),
            (
                " input  with multiple   spaces   ",
                "input-with-multiple-spaces",
            ),
            ("some [ / thing / ]else", "some-thing-else"),
            ("some-thing.else_new", "some-thing.else_new"),
            ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ] {
            assert_eq!(label_value(input), expected, "{input}");
        }
    }

    #[test]
    fn label_values_stay_within_kubernetes_rules() {
        let long = label_value(&"A".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(label_value("(H100)-"), "H100");
        assert_eq!(label_value("NVIDIA 10de:2330"), "NVIDIA-10de2330");
    }

    #[test]
    fn a_host_without_gpus_gets_no_gpu_labels() {
        assert!(gpu_node_labels(&GpuFacts::default()).is_empty());
    }

    #[test]
    fn the_smi_name_wins_over_the_pci_table() {
        let facts = GpuFacts {
            devices: vec![device("H100 SXM5 80GB"), device("H100 SXM5 80GB")],
            driver_version: Some("550.127.05".into()),
            smi: Some(SmiReport {
                driver_version: "550.127.05".into(),
                cuda_version: "12.4".into(),
                gpus: vec![SmiGpu {
                    product_name: "NVIDIA H100 80GB HBM3".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let labels = gpu_node_labels(&facts);
        let expected: BTreeMap<String, String> = [
            (GPU_PRESENT_LABEL, "true"),
            (GPU_COUNT_LABEL, "2"),
            (GPU_PRODUCT_LABEL, "NVIDIA-H100-80GB-HBM3"),
            (GPU_DRIVER_LABEL, "550.127.05"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn without_a_driver_the_pci_model_is_the_product_and_no_driver_label() {
        let facts = GpuFacts {
            devices: vec![device("L4")],
            ..Default::default()
        };
        let labels = gpu_node_labels(&facts);
        assert_eq!(labels[GPU_PRODUCT_LABEL], "L4");
        assert_eq!(labels[GPU_COUNT_LABEL], "1");
        assert!(!labels.contains_key(GPU_DRIVER_LABEL));
    }

    #[test]
    fn kata_label_only_where_a_vm_can_be_created() {
        let mut facts = GpuFacts {
            kvm: Kvm::Usable,
            ..Default::default()
        };
        assert_eq!(kata_node_labels(&facts)[KATA_RUNTIME_LABEL], "true");
        for kvm in [
            Kvm::NoDevice,
            Kvm::Unknown,
            Kvm::Unusable("KVM_CREATE_VM: EPERM".into()),
        ] {
            facts.kvm = kvm;
            assert!(kata_node_labels(&facts).is_empty(), "{:?}", facts.kvm);
        }
    }

    #[test]
    fn gvisor_and_crun_labels_only_where_their_handler_was_configured() {
        let all: Vec<String> = ["runc", "gvisor", "crun", "nvidia", "kata-qemu"]
            .map(String::from)
            .to_vec();
        let labels = runtime_node_labels(&all);
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            [CRUN_RUNTIME_LABEL, GVISOR_RUNTIME_LABEL]
        );
        assert!(labels.values().all(|v| v == "true"));
        assert!(runtime_node_labels(&["runc".to_string()]).is_empty());
    }
}
