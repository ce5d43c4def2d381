//! The NVIDIA host stack on GPU Nodes: its templates (golden), the `when:` predicates and the
//! `hosts: gpu` selector, and what the install playbook compiles to per driver source.

use std::fs;

use kubegrid_agent::facts::{GpuDevice, GpuFacts};
use kubegrid_agent::protocol::{Action, CheckKind, Task};
use kubegrid_plan::{
    Bundle, CDI_SPEC, ClusterContext, GpuContext, HostContext, NOUVEAU_BLACKLIST, PhasePlan,
    Playbook, When, compile, fabric_manager_required, render, sha256_file,
};

use crate::common::{assert_golden, golden_path, lab_host, runc_cluster, write_bundle};

const DRIVER: &str = "550.90.07";
const DEBS: &[&str] = &[
    "update-glx",
    "glx-alternative-mesa",
    "glx-diversions",
    "glx-alternative-nvidia",
    "nvidia-installer-cleanup",
    "nvidia-support",
    "nvidia-kernel-common",
    "nvidia-alternative",
    "libnvidia-ptxjitcompiler1",
    "libnvidia-pkcs11-openssl3",
    "libcuda1",
    "firmware-nvidia-gsp",
    "nvidia-modprobe",
    "nvidia-kernel-support",
    "nvidia-kernel-dkms",
    "libnvidia-cfg1",
    "nvidia-persistenced",
    "libnvidia-ml1",
    "nvidia-smi",
    "nvidia-legacy-check",
    "nvidia-fabricmanager-550",
];
const TOOLKIT: &[&str] = &[
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
];

fn gpu_cluster(source: &str, fabric_manager: &str) -> ClusterContext {
    let mut cluster = runc_cluster("2.1");
    cluster.gpu = Some(GpuContext {
        driver_source: source.into(),
        driver_branch: Some("550".into()),
        driver_version: DRIVER.into(),
        toolkit_version: "1.17.8".into(),
        fabric_manager: fabric_manager.into(),
        device_plugin: "nvidia-device-plugin".into(),
        mig_strategy: "none".into(),
        validation: true,
        operator_values: None,
    });
    cluster
}

/// A GPU Node with `gpus` H100s and, when `nvswitch`, four NVSwitches.
fn gpu_host(gpus: usize, nvswitch: bool) -> HostContext {
    let mut host = lab_host();
    host.gpu = true;
    host.facts.gpu = GpuFacts {
        devices: (0..gpus)
            .map(|i| GpuDevice {
                address: format!("0000:{:02x}:00.0", 0x18 + i),
                device: "0x2330".into(),
                model: "H100 SXM5 80GB".into(),
                iommu_group: None,
            })
            .collect(),
        nvswitches: if nvswitch {
            (0..4)
                .map(|i| format!("0000:{:02x}:00.0", 0x80 + i))
                .collect()
        } else {
            Vec::new()
        },
        ..GpuFacts::default()
    };
    host
}

fn when(yaml: &str) -> When {
    serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(yaml))
        .unwrap()
}

#[test]
fn gpu_templates_match_golden() {
    let cluster = gpu_cluster("runfile", "auto");
    let host = gpu_host(8, true);
    for template in [
        "gpu/blacklist-nouveau.conf.tera",
        "gpu/nvidia-persistenced.service.tera",
        "gpu/kubegrid-nvidia-cdi.service.tera",
    ] {
        let text = render(template, &cluster, &host, None).unwrap();
        assert_golden(&golden_path(template, "gpu"), &text);
    }
    let blacklist = render("gpu/blacklist-nouveau.conf.tera", &cluster, &host, None).unwrap();
    let lines: Vec<&str> = blacklist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(lines, ["blacklist nouveau", "options nouveau modeset=0"]);
    let cdi = render(
        "gpu/kubegrid-nvidia-cdi.service.tera",
        &cluster,
        &host,
        None,
    )
    .unwrap();
    assert!(
        cdi.contains(&format!(
            "ExecStart=/usr/bin/nvidia-ctk cdi generate --output={CDI_SPEC}\n"
        )),
        "{cdi}"
    );
}

#[test]
fn gpu_predicates_follow_the_spec_and_the_facts() {
    let plain = lab_host();
    let node = gpu_host(8, true);
    let pcie = gpu_host(2, false);
    let auto = gpu_cluster("packages", "auto");
    let holds = |c: &ClusterContext, h: &HostContext, yaml: &str| when(yaml).eval(c, h);
    assert!(holds(&auto, &node, "{gpu: true}"));
    assert!(holds(&auto, &plain, "{gpu: false}"));
    assert!(holds(&auto, &node, "{gpu_driver: packages}"));
    assert!(!holds(&auto, &node, "{gpu_driver: runfile}"));
    assert!(!holds(
        &runc_cluster("2.1"),
        &node,
        "{gpu_driver: packages}"
    ));
    assert!(holds(
        &gpu_cluster("preinstalled", "auto"),
        &node,
        "{gpu_driver: preinstalled}"
    ));
    // fabric manager: auto follows the NVSwitches, on forces it on GPU Nodes, off never.
    assert!(holds(&auto, &node, "{nvswitch: true}"));
    assert!(holds(&auto, &pcie, "{nvswitch: false}"));
    assert!(holds(&auto, &plain, "{nvswitch: false}"));
    assert!(holds(
        &gpu_cluster("packages", "on"),
        &pcie,
        "{nvswitch: true}"
    ));
    assert!(holds(
        &gpu_cluster("packages", "on"),
        &plain,
        "{nvswitch: false}"
    ));
    assert!(holds(
        &gpu_cluster("packages", "off"),
        &node,
        "{nvswitch: false}"
    ));
    assert!(!fabric_manager_required(&runc_cluster("2.1"), &node));
    let mut nouveau = node.clone();
    assert!(holds(&auto, &nouveau, "{nouveau_loaded: false}"));
    nouveau.facts.gpu.modules.nouveau = true;
    assert!(holds(&auto, &nouveau, "{nouveau_loaded: true}"));
}

/// The fake bundle plus the driver's debs, the toolkit's and the runfile, for amd64.
fn gpu_bundle(dir: &std::path::Path) -> Bundle {
    write_bundle(dir);
    let mut manifest = fs::read_to_string(dir.join("manifest.yaml")).unwrap();
    let mut add = |path: String, kind: &str, name: &str, version: &str| {
        let file = dir.join(&path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, format!("{path} content\n")).unwrap();
        let sha = sha256_file(&file).unwrap();
        let size = fs::metadata(&file).unwrap().len();
        manifest.push_str(&format!(
            "  - path: {path}\n    sha256: {sha}\n    size: {size}\n    arch: amd64\n    kind: {kind}\n    name: {name}\n    version: \"{version}\"\n"
        ));
    };
    for name in DEBS {
        add(
            format!("debs/amd64/{name}.deb"),
            "deb",
            name,
            &format!("{DRIVER}-1"),
        );
    }
    for name in TOOLKIT {
        add(format!("debs/amd64/{name}.deb"), "deb", name, "1.17.8-1");
    }
    add(
        "bin/amd64/nvidia-driver-runfile".into(),
        "binary",
        "nvidia-driver-runfile",
        DRIVER,
    );
    fs::write(dir.join("manifest.yaml"), manifest).unwrap();
    Bundle::open(dir).unwrap()
}

/// The install playbook's phases up to the registry, compiled for `host`.
fn compiled(cluster: &ClusterContext, host: &HostContext, bundle: &Bundle) -> Vec<PhasePlan> {
    let mut playbook = Playbook::builtin("install").unwrap();
    let registry = playbook
        .phases
        .iter()
        .position(|p| p.name == "registry")
        .unwrap();
    playbook.phases.truncate(registry);
    compile(&playbook, cluster, host, bundle).unwrap()
}

fn phase<'a>(phases: &'a [PhasePlan], name: &str) -> &'a PhasePlan {
    phases
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phase {name} in {:?}", names(phases)))
}

fn names(phases: &[PhasePlan]) -> Vec<&str> {
    phases.iter().map(|p| p.name.as_str()).collect()
}

fn task_names(phase: &PhasePlan) -> Vec<&str> {
    phase.tasks.iter().map(|t| t.name.as_str()).collect()
}

fn task<'a>(phase: &'a PhasePlan, name: &str) -> &'a Task {
    phase
        .tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {name} in {:?}", task_names(phase)))
}

#[test]
fn only_gpu_nodes_run_the_gpu_phases() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("packages", "auto");
    let plain = compiled(&cluster, &lab_host(), &bundle);
    assert_eq!(names(&plain), ["os-prepare", "container-runtime"]);
    let gpu = compiled(&cluster, &gpu_host(2, false), &bundle);
    assert_eq!(
        names(&gpu),
        [
            "os-prepare",
            "container-runtime",
            "gpu-prepare",
            "gpu-reboot",
            "gpu-driver",
            "gpu-fabric-manager",
            "gpu-toolkit"
        ]
    );
}

#[test]
fn the_blacklist_rebuilds_the_initramfs_only_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("packages", "auto");
    let mut host = gpu_host(1, false);
    let debian = compiled(&cluster, &host, &bundle);
    let prepare = phase(&debian, "gpu-prepare");
    assert_eq!(
        task_names(prepare),
        ["nouveau blacklist", "initramfs (Debian family)"]
    );
    let Action::File(file) = &task(prepare, "nouveau blacklist").action else {
        panic!("the blacklist is a file")
    };
    assert_eq!(file.path, std::path::Path::new(NOUVEAU_BLACKLIST));
    let Action::Command(cmd) = &task(prepare, "initramfs (Debian family)").action else {
        panic!("the initramfs update is a command")
    };
    assert_eq!(cmd.argv, ["update-initramfs", "-u"]);
    assert_eq!(cmd.watch, [std::path::PathBuf::from(NOUVEAU_BLACKLIST)]);
    host.facts.os_id = "rocky".into();
    host.facts.os_like = vec!["rhel".into()];
    let rhel = compiled(&cluster, &host, &bundle);
    let Action::Command(cmd) = &task(phase(&rhel, "gpu-prepare"), "initramfs (RHEL family)").action
    else {
        panic!("the initramfs update is a command")
    };
    assert_eq!(cmd.argv, ["dracut", "-f"]);
    assert_eq!(cmd.watch, [std::path::PathBuf::from(NOUVEAU_BLACKLIST)]);
}

#[test]
fn packages_install_the_driver_and_fabric_manager_of_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("packages", "auto");
    let phases = compiled(&cluster, &gpu_host(8, true), &bundle);
    let driver = phase(&phases, "gpu-driver");
    assert_eq!(
        task_names(driver),
        [
            "driver packages",
            "nvidia-persistenced service (package's unit)",
            "nvidia-smi lists every GPU"
        ]
    );
    let Action::Packages(p) = &task(driver, "driver packages").action else {
        panic!("packages")
    };
    assert!(
        p.packages
            .iter()
            .all(|p| p.version == format!("{DRIVER}-1"))
    );
    assert!(p.packages.iter().any(|p| p.name == "nvidia-persistenced"));
    let Action::Check(check) = &task(driver, "nvidia-smi lists every GPU").action else {
        panic!("check")
    };
    assert_eq!(check.check, CheckKind::NvidiaSmiGpus { gpus: 8 });
    let fm = phase(&phases, "gpu-fabric-manager");
    assert_eq!(
        task_names(fm),
        [
            "fabric manager package",
            "fabric manager service",
            "fabric manager is active",
            "every GPU's fabric is trained"
        ]
    );
    let Action::Packages(p) = &task(fm, "fabric manager package").action else {
        panic!("packages")
    };
    assert_eq!(p.packages.len(), 1);
    assert_eq!(
        p.packages[0].version,
        format!("{DRIVER}-1"),
        "fabric manager in exactly the driver's version"
    );
    // Every bundle file the tasks use is announced.
    for t in &driver.tasks {
        if let Action::Packages(p) = &t.action {
            assert!(p.packages.iter().all(|p| driver.blobs.contains(&p.sha256)));
        }
    }
    // No NVSwitch: the phase is there (barriers line up) but empty.
    let pcie = compiled(&cluster, &gpu_host(2, false), &bundle);
    assert!(phase(&pcie, "gpu-fabric-manager").tasks.is_empty());
}

#[test]
fn the_runfile_is_placed_and_run_unless_its_version_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("runfile", "auto");
    let phases = compiled(&cluster, &gpu_host(1, false), &bundle);
    let driver = phase(&phases, "gpu-driver");
    assert_eq!(
        task_names(driver),
        [
            "driver runfile (installer 550.90.07)",
            "driver runfile (install 550.90.07)",
            "nvidia-persistenced service",
            "nvidia-smi lists every GPU"
        ]
    );
    let Action::Binary(bin) = &driver.tasks[0].action else {
        panic!("the installer is a binary")
    };
    let run = "/var/lib/kubegrid/nvidia/NVIDIA-Linux-x86_64-550.90.07.run";
    assert_eq!(bin.path, std::path::Path::new(run));
    assert_eq!(driver.blobs, std::slice::from_ref(&bin.sha256));
    let Action::Command(cmd) = &driver.tasks[1].action else {
        panic!("the install is a command")
    };
    assert_eq!(cmd.argv, ["sh", run, "--silent", "--dkms"]);
    let unless = cmd.unless.as_ref().unwrap().join(" ");
    assert!(
        unless.contains("/sys/module/nvidia/version 2>/dev/null)\" = 550.90.07")
            && unless.contains("modinfo -F version nvidia 2>/dev/null)\" = 550.90.07"),
        "{unless}"
    );
    let Action::SystemdUnit(unit) = &task(driver, "nvidia-persistenced service").action else {
        panic!("unit")
    };
    assert!(unit.content.is_some(), "the runfile ships no unit");
}

#[test]
fn preinstalled_drivers_are_only_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("preinstalled", "auto");
    let phases = compiled(&cluster, &gpu_host(4, false), &bundle);
    assert_eq!(
        task_names(phase(&phases, "gpu-driver")),
        ["nvidia-smi lists every GPU"]
    );
}

#[test]
fn the_toolkit_phase_generates_the_cdi_spec_and_checks_through_containerd() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let cluster = gpu_cluster("packages", "auto");
    let phases = compiled(&cluster, &gpu_host(2, false), &bundle);
    let toolkit = phase(&phases, "gpu-toolkit");
    assert_eq!(
        task_names(toolkit),
        [
            "container toolkit packages",
            "cdi spec",
            "no xid errors since boot",
            "a container sees every GPU"
        ]
    );
    let Action::SystemdUnit(unit) = &task(toolkit, "cdi spec").action else {
        panic!("unit")
    };
    assert_eq!(unit.name, "kubegrid-nvidia-cdi.service");
    assert!(
        unit.watch
            .contains(&std::path::PathBuf::from("/proc/driver/nvidia/version"))
    );
    let Action::Check(check) = &task(toolkit, "a container sees every GPU").action else {
        panic!("check")
    };
    let CheckKind::GpuContainer {
        runtime_binary,
        rootfs_sha256,
        gpus,
        ..
    } = &check.check
    else {
        panic!("{check:?}")
    };
    assert_eq!(*gpus, 2);
    assert_eq!(
        runtime_binary,
        std::path::Path::new("/usr/bin/nvidia-container-runtime")
    );
    assert!(toolkit.blobs.contains(rootfs_sha256));
}

#[test]
fn a_gpu_task_without_a_gpu_section_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = gpu_bundle(dir.path());
    let mut cluster = gpu_cluster("runfile", "auto");
    let playbook = Playbook::parse(
        "test",
        "name: t\nphases:\n  - name: p\n    hosts: gpu\n    tasks:\n      - name: driver\n        nvidia_runfile: {bundle: nvidia-driver-runfile, dir: /var/lib/kubegrid/nvidia}\n",
    )
    .unwrap();
    cluster.gpu = None;
    let err = compile(&playbook, &cluster, &gpu_host(1, false), &bundle)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`driver`") && err.contains("spec.gpu"),
        "{err}"
    );
}
