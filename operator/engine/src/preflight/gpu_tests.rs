use kubegrid_agent::facts::{Facts, GpuDevice, SecureBoot};
use kubegrid_plan::GpuContext;

use super::super::{Finding, Subject, run};

fn gpu(source: &str, branch: Option<&str>, fabric_manager: &str) -> GpuContext {
    GpuContext {
        driver_source: source.into(),
        driver_branch: branch.map(str::to_string),
        driver_version: "550.127.05".into(),
        toolkit_version: "1.17.8".into(),
        fabric_manager: fabric_manager.into(),
        device_plugin: "nvidia-device-plugin".into(),
        mig_strategy: "none".into(),
        validation: true,
        operator_values: None,
    }
}

/// A GPU host as the H100 SXM fixtures describe it: headers present, Secure Boot off.
fn h100(name: &str) -> Facts {
    let mut f = Facts {
        hostname: name.into(),
        os_id: "debian".into(),
        os_version: "12".into(),
        kernel: "6.1.0-28-amd64".into(),
        ..Facts::default()
    };
    f.gpu.devices = (0..8)
        .map(|i| GpuDevice {
            address: format!("0000:{:02x}:00.0", 0x18 + i),
            device: "0x2330".into(),
            model: "H100 SXM5 80GB".into(),
            iommu_group: None,
        })
        .collect();
    f.gpu.kernel_headers = true;
    f.gpu.secure_boot = SecureBoot::Disabled;
    f
}

fn findings(facts: &Facts, gpu: &GpuContext, node: bool, required: bool) -> Vec<Finding> {
    let roles = vec!["worker".to_string()];
    let subject = Subject {
        name: &facts.hostname,
        roles: &roles,
        declared_arch: None,
        facts,
        clock_offset_ms: 0,
        address: "10.0.0.1",
        kubernetes: None,
        containerd_source: kubegrid_plan::ContainerdSource::Archive,
        containerd_line: (2, 1),
        etcd_version: None,
        gpu: Some(gpu),
        gpu_node: node,
        gpu_required: required,
        runtimes: &[],
    };
    run(&[subject], &[])
        .into_iter()
        .filter(|f| f.check.starts_with("gpu-"))
        .collect()
}

fn checks(found: &[Finding]) -> Vec<&'static str> {
    found.iter().map(|f| f.check).collect()
}

#[test]
fn a_ready_gpu_node_passes() {
    let g = gpu("packages", Some("550"), "auto");
    assert!(findings(&h100("gpu-1"), &g, true, true).is_empty());
}

#[test]
fn secure_boot_refuses_a_dkms_driver_but_not_a_preinstalled_one() {
    let mut f = h100("gpu-1");
    f.gpu.secure_boot = SecureBoot::Enabled;
    for source in ["packages", "runfile"] {
        let found = findings(&f, &gpu(source, Some("550"), "auto"), true, false);
        assert_eq!(checks(&found), ["gpu-secure-boot"], "{found:#?}");
        assert!(found[0].seen.contains("Secure Boot enabled"), "{found:#?}");
        assert!(found[0].seen.contains(source), "{found:#?}");
        assert!(found[0].hint.contains("preinstalled"), "{found:#?}");
    }
    f.gpu.driver_version = Some("550.127.05".into());
    let found = findings(&f, &gpu("preinstalled", None, "auto"), true, false);
    assert!(found.is_empty(), "{found:#?}");
    // A branch already loaded is not rebuilt, so Secure Boot does not matter then.
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), true, false);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn missing_headers_are_named_with_the_running_kernel() {
    let mut f = h100("gpu-1");
    f.gpu.kernel_headers = false;
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), true, false);
    assert_eq!(checks(&found), ["gpu-kernel-headers"], "{found:#?}");
    assert!(found[0].seen.contains("/lib/modules/6.1.0-28-amd64/build"));
    assert!(found[0].hint.contains("linux-headers-6.1.0-28-amd64"));
    assert_eq!(found[0].host, "gpu-1");
    // A Node that is not a GPU Node needs no headers.
    assert!(findings(&f, &gpu("packages", Some("550"), "auto"), false, false).is_empty());
}

#[test]
fn nvswitches_need_fabric_manager() {
    let mut f = h100("gpu-1");
    f.gpu.nvswitches = vec!["0000:05:00.0".into(), "0000:06:00.0".into()];
    let found = findings(&f, &gpu("packages", Some("550"), "off"), true, false);
    assert_eq!(checks(&found), ["gpu-fabric-manager"], "{found:#?}");
    assert!(
        found[0]
            .seen
            .contains("2 NVSwitch(es) (0000:05:00.0, 0000:06:00.0)")
    );
    assert!(found[0].hint.contains("802"));
    for mode in ["auto", "on"] {
        assert!(findings(&f, &gpu("packages", Some("550"), mode), true, false).is_empty());
    }
}

#[test]
fn another_loaded_branch_is_refused_unless_preinstalled() {
    let mut f = h100("gpu-1");
    f.gpu.driver_version = Some("535.216.01".into());
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), true, false);
    assert_eq!(checks(&found), ["gpu-driver-branch"], "{found:#?}");
    assert_eq!(found[0].seen, "NVIDIA driver 535.216.01 loaded");
    assert_eq!(found[0].expected, "branch 550 (spec.gpu.driver.branch)");
    assert!(findings(&f, &gpu("preinstalled", Some("550"), "auto"), true, false).is_empty());
    f.gpu.driver_version = Some("550.54.15".into());
    assert!(findings(&f, &gpu("packages", Some("550"), "auto"), true, false).is_empty());
}

#[test]
fn a_preinstalled_driver_must_be_loaded() {
    let found = findings(
        &h100("gpu-1"),
        &gpu("preinstalled", None, "auto"),
        true,
        false,
    );
    assert_eq!(checks(&found), ["gpu-driver-branch"], "{found:#?}");
    assert!(found[0].seen.contains("no NVIDIA driver loaded"));
}

#[test]
fn a_node_that_must_have_a_gpu_and_has_none_is_refused() {
    let f = Facts {
        hostname: "gpu-2".into(),
        ..Facts::default()
    };
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), true, true);
    assert!(checks(&found).contains(&"gpu-present"), "{found:#?}");
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), false, false);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_driver_source_must_serve_the_host() {
    let mut f = h100("gpu-1");
    f.os_id = "rocky".into();
    f.os_version = "9.4".into();
    f.os_like = vec!["rhel".into(), "centos".into(), "fedora".into()];
    let found = findings(&f, &gpu("packages", Some("550"), "auto"), true, false);
    assert_eq!(checks(&found), ["gpu-driver-source"], "{found:#?}");
    assert!(found[0].seen.contains("rocky 9.4"), "{found:#?}");
    assert!(findings(&f, &gpu("runfile", Some("550"), "auto"), true, false).is_empty());
    let mut f = h100("gpu-1");
    f.gpu.nvswitches = vec!["0000:05:00.0".into()];
    let found = findings(&f, &gpu("runfile", Some("550"), "auto"), true, false);
    assert_eq!(checks(&found), ["gpu-driver-source"], "{found:#?}");
    assert!(found[0].hint.contains("packages"), "{found:#?}");
    assert!(findings(&f, &gpu("packages", Some("550"), "auto"), true, false).is_empty());
}
