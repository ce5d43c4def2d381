//! GPU detection on fixture host trees (agent/tests/fixtures/gpu, see its README): the PCI
//! scan, product names, modules, driver, nvidia-smi (run for real: the fixture's is a script),
//! Secure Boot, kernel headers, IOMMU groups and KVM, all through `facts::gather`.

use std::path::PathBuf;

use kubegrid_agent::{
    facts::{GpuFacts, GpuModules, Kvm, SecureBoot, gather},
    protocol::FactsArgs,
};

fn facts(case: &str) -> GpuFacts {
    let root: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/gpu", case]
        .iter()
        .collect();
    assert!(root.is_dir(), "fixture {case} is missing");
    let store = tempfile::tempdir().unwrap();
    gather(&root, &FactsArgs::default(), store.path()).gpu
}

fn models(g: &GpuFacts) -> Vec<&str> {
    g.devices.iter().map(|d| d.model.as_str()).collect()
}

#[test]
fn hgx_h100_with_nvswitches_fabric_completed_and_mig_off() {
    let g = facts("h100-sxm-nvswitch");
    assert_eq!(g.count(), 8);
    assert_eq!(models(&g), vec!["H100 SXM5 80GB"; 8]);
    assert_eq!(g.devices[0].address, "0000:18:00.0");
    assert_eq!(g.devices[0].device, "0x2330");
    assert_eq!(g.devices[0].iommu_group, Some(20));
    assert_eq!(
        g.nvswitches,
        vec![
            "0000:05:00.0",
            "0000:06:00.0",
            "0000:07:00.0",
            "0000:08:00.0"
        ]
    );
    assert!(g.has_nvswitch());
    assert_eq!(
        g.modules,
        GpuModules {
            nvidia: true,
            nouveau: false,
            nova_core: false
        }
    );
    assert_eq!(g.driver_version.as_deref(), Some("550.127.05"));
    assert_eq!(g.driver_branch(), Some("550"));
    let smi = g.smi.as_ref().expect("nvidia-smi answered");
    assert_eq!(g.smi_error, None);
    assert_eq!(
        (smi.driver_version.as_str(), smi.cuda_version.as_str()),
        ("550.127.05", "12.4")
    );
    assert_eq!(smi.gpus.len(), 8);
    for gpu in &smi.gpus {
        assert_eq!(gpu.product_name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.mig_mode.as_deref(), Some("Disabled"));
        assert_eq!(gpu.fabric_state.as_deref(), Some("Completed"));
        assert!(gpu.uuid.starts_with("GPU-"), "{}", gpu.uuid);
    }
    assert_eq!(smi.gpus[7].pci_bus_id, "00000000:DB:00.0");
    assert_eq!(g.secure_boot, SecureBoot::Disabled);
    assert!(g.kernel_headers);
    assert_eq!(g.iommu_groups, 28);
    assert_eq!(g.kvm, Kvm::NoDevice);
}

#[test]
fn h100_pcie_with_the_open_module_and_a_dev_kvm_that_is_no_kvm() {
    let g = facts("h100-pcie");
    assert_eq!(models(&g), vec!["H100 PCIe", "H100 PCIe"]);
    assert!(!g.has_nvswitch());
    assert_eq!(g.driver_version.as_deref(), Some("570.86.15"));
    let smi = g.smi.as_ref().expect("nvidia-smi answered");
    assert_eq!(smi.cuda_version, "12.8");
    assert!(smi.gpus.iter().all(|gpu| gpu.fabric_state.is_none()));
    assert_eq!(g.secure_boot, SecureBoot::Disabled, "a BIOS host");
    assert!(g.kernel_headers);
    match &g.kvm {
        Kvm::Unusable(why) => assert!(why.contains("not a KVM device"), "{why}"),
        other => panic!("expected Unusable, got {other:?}"),
    }
}

#[test]
fn l4_on_a_vm_without_iommu_or_mig() {
    let g = facts("l4");
    assert_eq!(models(&g), vec!["L4"]);
    assert_eq!(g.devices[0].iommu_group, None);
    assert_eq!(g.iommu_groups, 0);
    let smi = g.smi.as_ref().expect("nvidia-smi answered");
    assert_eq!(smi.gpus.len(), 1);
    assert_eq!(smi.gpus[0].product_name, "NVIDIA L4");
    assert_eq!(smi.gpus[0].mig_mode, None, "N/A: no MIG on an L4");
    assert_eq!(smi.gpus[0].pci_bus_id, "00000000:00:03.0");
}

#[test]
fn no_gpu_and_efi_without_a_secure_boot_variable() {
    let g = facts("no-gpu");
    assert_eq!(g.count(), 0, "an Intel VGA controller is no NVIDIA GPU");
    assert!(g.nvswitches.is_empty());
    assert_eq!(g.modules, GpuModules::default());
    assert_eq!((g.driver_version.as_ref(), g.smi.as_ref()), (None, None));
    assert_eq!(g.smi_error, None, "no nvidia-smi is no error");
    assert_eq!(g.secure_boot, SecureBoot::Unknown);
    assert_eq!(g.iommu_groups, 12);
}

#[test]
fn nouveau_bound_to_a_vga_class_card_without_nvidias_driver() {
    let g = facts("nouveau");
    assert_eq!(
        models(&g),
        vec!["RTX A4000"],
        "the HDMI audio function is no GPU"
    );
    assert_eq!(g.devices[0].iommu_group, Some(2));
    assert!(g.modules.nouveau && !g.modules.nvidia && !g.modules.nova_core);
    assert_eq!(g.driver_version, None);
    assert_eq!((g.smi.as_ref(), g.smi_error.as_ref()), (None, None));
}

#[test]
fn secure_boot_on_without_kernel_headers_is_the_dkms_case() {
    let g = facts("secure-boot-dkms");
    assert_eq!(models(&g), vec!["A100 PCIe 80GB", "NVIDIA 10de:2302"]);
    assert_eq!(g.secure_boot, SecureBoot::Enabled);
    assert!(!g.kernel_headers);
    assert!(g.modules.nova_core && !g.modules.nvidia && !g.modules.nouveau);
    assert_eq!(g.driver_version, None);
    assert_eq!(g.iommu_groups, 8);
}

#[test]
fn gpu_facts_travel_in_the_facts_json() {
    let g = facts("h100-sxm-nvswitch");
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(json["devices"][0]["model"], "H100 SXM5 80GB");
    assert_eq!(json["secureBoot"], "disabled");
    assert_eq!(json["kvm"], "no_device");
    assert_eq!(json["smi"]["gpus"][0]["fabricState"], "Completed");
    let back: GpuFacts = serde_json::from_value(json).unwrap();
    assert_eq!(back, g);
}
