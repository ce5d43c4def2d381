//! The compiler: predicates, bundle resolution, blobs and errors.

use kubegrid_agent::protocol::{Action, CheckKind, PackageFormat, Task};
use kubegrid_plan::{Bundle, Error, Playbook, compile, facts_probes};

use crate::common::{
    FAKE_FILES, full_cluster, host, lab_host, packages_cluster, runc_cluster, sha_of, write_bundle,
};

/// A fake bundle (kept alive by the returned directory) and the install playbook's host
/// preparation: its phases up to the container runtime (the Kubernetes phases have their
/// own tests).
fn fixture() -> (tempfile::TempDir, Bundle, Playbook) {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let mut playbook = Playbook::builtin("install").unwrap();
    let runtime = playbook
        .phases
        .iter()
        .position(|p| p.name == "container-runtime")
        .unwrap();
    playbook.phases.truncate(runtime + 1);
    (dir, bundle, playbook)
}

fn names(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.name.as_str()).collect()
}

fn file_content<'a>(tasks: &'a [Task], path: &str) -> &'a str {
    tasks
        .iter()
        .find_map(|t| match &t.action {
            Action::File(f) if f.path.to_str() == Some(path) => Some(f.content.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file task for {path} in {:?}", names(tasks)))
}

#[test]
fn runc_only_host_gets_v2_config_and_bundle_packages() {
    let (dir, bundle, playbook) = fixture();
    let phases = compile(&playbook, &packages_cluster("1.6"), &lab_host(), &bundle).unwrap();
    let phase_names: Vec<_> = phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phase_names, ["os-prepare", "container-runtime"]);

    let prepare = &phases[0];
    assert_eq!(
        names(&prepare.tasks),
        ["swap off", "kernel modules", "sysctl"]
    );
    let Action::KernelModules(modules) = &prepare.tasks[1].action else {
        panic!()
    };
    assert_eq!(modules.modules, ["overlay", "br_netfilter"]);
    let Action::Sysctl(sysctl) = &prepare.tasks[2].action else {
        panic!()
    };
    assert_eq!(sysctl.values["net.ipv4.ip_forward"], "1");
    assert_eq!(sysctl.values["net.bridge.bridge-nf-call-iptables"], "1");
    assert!(prepare.blobs.is_empty());

    let runtime = &phases[1];
    assert_eq!(
        names(&runtime.tasks),
        [
            "containerd and runc packages",
            "containerd config (1.x)",
            "crictl config",
            "containerd service (package's unit)",
            "containerd is active",
            "containerd socket answers",
            "runc runs a container"
        ]
    );
    let config = file_content(&runtime.tasks, "/etc/containerd/config.toml");
    assert!(config.contains("version = 2"), "{config}");
    assert!(
        !config.contains("kata") && !config.contains("nvidia"),
        "{config}"
    );
    let Action::Packages(packages) = &runtime.tasks[0].action else {
        panic!()
    };
    let containerd = sha_of(dir.path(), FAKE_FILES[0].path);
    let runc = sha_of(dir.path(), FAKE_FILES[1].path);
    let got: Vec<_> = packages
        .packages
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.sha256.as_str(),
                p.format,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "containerd",
                "1.6.20~ds1-1+deb12u3",
                containerd.as_str(),
                PackageFormat::Deb
            ),
            (
                "runc",
                "1.1.5+ds1-1+deb12u1",
                runc.as_str(),
                PackageFormat::Deb
            ),
        ]
    );
    let rootfs = sha_of(dir.path(), "rootfs/amd64/busybox.tar");
    assert_eq!(runtime.blobs, [containerd, runc, rootfs.clone()]);
    let Action::SystemdUnit(unit) = &runtime.tasks[3].action else {
        panic!()
    };
    assert_eq!(
        unit.watch,
        [std::path::PathBuf::from("/etc/containerd/config.toml")]
    );
    assert_eq!(unit.content, None, "the package's own unit");

    let Action::Check(check) = &runtime.tasks[6].action else {
        panic!()
    };
    assert!(
        matches!(&check.check, CheckKind::ContainerRuns { rootfs_sha256, expect, .. }
            if *rootfs_sha256 == rootfs && expect == "kubegrid-container-ok")
    );
}

#[test]
fn containerd_2_with_mirrors_gets_v3_config_and_one_hosts_file_per_mirror() {
    let (_dir, bundle, playbook) = fixture();
    // A GPU Node that cannot create a VM: nvidia is configured, kata is not (nor installed).
    let mut host = lab_host();
    host.gpu = true;
    let mut cluster = full_cluster("2.1");
    cluster.runtimes.retain(|r| r != "gvisor" && r != "crun");
    let phases = compile(&playbook, &cluster, &host, &bundle).unwrap();
    let runtime = &phases[1];
    assert_eq!(
        names(&runtime.tasks),
        [
            "containerd archive",
            "runc binary (runc)",
            "containerd config (2.x)",
            "registry mirrors (registry.k8s.io)",
            "registry mirrors (docker.io)",
            "registry mirrors (_default)",
            "crictl config",
            "containerd service",
            "containerd is active",
            "containerd socket answers",
            "runc runs a container",
        ]
    );
    let config = file_content(&runtime.tasks, "/etc/containerd/config.toml");
    assert!(
        config.contains("version = 3")
            && config.contains("runtimes.nvidia")
            && !config.contains("kata-qemu"),
        "{config}"
    );
    let docker = file_content(
        &runtime.tasks,
        "/etc/containerd/certs.d/docker.io/hosts.toml",
    );
    assert!(
        docker.contains(r#"server = "https://registry-1.docker.io""#),
        "{docker}"
    );
    let Action::KernelModules(modules) = &phases[0].tasks[1].action else {
        panic!()
    };
    // Kata's vhost modules only where kata runs: not on a host that cannot create a VM.
    assert_eq!(modules.modules, ["overlay", "br_netfilter"]);
}

#[test]
fn phases_and_tasks_follow_selectors_and_predicates() {
    let (_dir, bundle, _) = fixture();
    let playbook = Playbook::parse(
        "test",
        r#"
name: t
phases:
  - name: everyone
    hosts: all
    tasks:
      - name: kata only
        when: {runtime: kata-qemu}
        command: {argv: [kata-runtime, check]}
      - name: not nvidia on workers
        when: {all: [{role: worker}, {not: {runtime: nvidia}}]}
        command: {argv: ["true"]}
      - name: rhel only
        when: {os_family: rhel}
        command: {argv: ["true"]}
      - name: old containerd or arm
        when: {any: [{containerd: "<1.7"}, {arch: arm64}]}
        command: {argv: ["true"]}
  - name: workers
    hosts: {roles: [worker]}
    tasks:
      - name: w
        swap_off: {}
"#,
    )
    .unwrap();
    let control_plane = host("amd64", &["control-plane"]);
    let phases = compile(&playbook, &full_cluster("1.7"), &control_plane, &bundle).unwrap();
    assert_eq!(
        phases.len(),
        1,
        "the workers phase does not select a control-plane host"
    );
    assert_eq!(names(&phases[0].tasks), ["kata only"]);
    let worker = host("amd64", &["worker"]);
    let phases = compile(&playbook, &runc_cluster("1.6"), &worker, &bundle).unwrap();
    assert_eq!(
        names(&phases[0].tasks),
        ["not nvidia on workers", "old containerd or arm"]
    );
    assert_eq!(names(&phases[1].tasks), ["w"]);
}

#[test]
fn a_package_missing_for_the_host_arch_is_an_error() {
    let (_dir, bundle, playbook) = fixture();
    let arm = host("arm64", &["worker"]);
    let err = compile(&playbook, &packages_cluster("1.6"), &arm, &bundle).unwrap_err();
    match &err {
        Error::PackageNotInBundle { name, arch, .. } => {
            assert_eq!((name.as_str(), arch.as_str()), ("runc", "arm64"));
        }
        other => panic!("expected PackageNotInBundle, got {other:?}"),
    }
    // From the archive, arm64 has containerd 2.1 but no runc binary.
    let err = compile(&playbook, &runc_cluster("2.1"), &arm, &bundle).unwrap_err();
    match &err {
        Error::ArtifactNotInBundle { name, arch, .. } => {
            assert_eq!((name.as_str(), arch.as_str()), ("runc", "arm64"));
        }
        other => panic!("expected ArtifactNotInBundle, got {other:?}"),
    }
}

#[test]
fn the_specs_source_and_line_pick_exactly_one_containerd_file() {
    let (dir, bundle, playbook) = fixture();
    let archive_of = |cluster: &kubegrid_plan::ClusterContext| {
        let phases = compile(&playbook, cluster, &lab_host(), &bundle).unwrap();
        let runtime = &phases[1];
        let sha = runtime
            .tasks
            .iter()
            .find_map(|t| match &t.action {
                Action::Archive(a) => Some(a.sha256.clone()),
                _ => None,
            })
            .expect("an archive task");
        assert!(runtime.blobs.contains(&sha));
        sha
    };
    assert_eq!(
        archive_of(&runc_cluster("2.1")),
        sha_of(
            dir.path(),
            "containerd/amd64/containerd-2.1.9-linux-amd64.tar.gz"
        )
    );
    assert_eq!(
        archive_of(&runc_cluster("1.7")),
        sha_of(
            dir.path(),
            "containerd/amd64/containerd-1.7.24-linux-amd64.tar.gz"
        )
    );
    // The archive path installs runc as a binary and kubegrid's unit, which watches the
    // containerd binary so a new one restarts it.
    let phases = compile(&playbook, &runc_cluster("2.1"), &lab_host(), &bundle).unwrap();
    let runtime = &phases[1];
    let runc = runtime
        .tasks
        .iter()
        .find_map(|t| match &t.action {
            Action::Binary(b) => Some(b.clone()),
            _ => None,
        })
        .expect("a binary task");
    assert_eq!(runc.path, std::path::PathBuf::from("/usr/local/sbin/runc"));
    assert_eq!(runc.sha256, sha_of(dir.path(), "bin/amd64/runc"));
    let unit = runtime
        .tasks
        .iter()
        .find_map(|t| match &t.action {
            Action::SystemdUnit(u) if u.name == "containerd.service" => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        unit.content
            .as_deref()
            .is_some_and(|c| c.contains("ExecStart=/usr/local/bin/containerd")),
        "{unit:?}"
    );
    assert!(
        unit.watch
            .contains(&std::path::PathBuf::from("/usr/local/bin/containerd")),
        "{unit:?}"
    );
    assert!(
        !runtime
            .tasks
            .iter()
            .any(|t| matches!(t.action, Action::Packages(_)))
    );
    // The packages path takes the 1.6 deb; no line the bundle lacks is quietly replaced.
    let phases = compile(&playbook, &packages_cluster("1.6"), &lab_host(), &bundle).unwrap();
    assert!(
        phases[1]
            .blobs
            .contains(&sha_of(dir.path(), FAKE_FILES[0].path))
    );
    let err = compile(&playbook, &runc_cluster("2.0"), &lab_host(), &bundle).unwrap_err();
    let Error::NotOnLineInBundle {
        what,
        line,
        available,
        ..
    } = &err
    else {
        panic!("expected NotOnLineInBundle, got {err:?}")
    };
    assert_eq!(
        (what.as_str(), line.as_str()),
        ("archive `containerd` for arch amd64", "2.0")
    );
    assert!(
        available.contains("2.1.9 (archive amd64)") && available.contains("1.7.24"),
        "{err}"
    );
    let err = compile(&playbook, &packages_cluster("1.7"), &lab_host(), &bundle).unwrap_err();
    assert!(err.to_string().contains("no deb `containerd` for arch amd64 on the 1.7 line; it has: 1.6.20~ds1-1+deb12u3 (deb amd64)"), "{err}");
}

#[test]
fn unsupported_os_and_invalid_context_are_errors() {
    let (_dir, bundle, playbook) = fixture();
    let mut odd = lab_host();
    odd.facts.os_id = "alpine".into();
    let err = compile(&playbook, &packages_cluster("1.6"), &odd, &bundle).unwrap_err();
    assert!(err.to_string().contains("`alpine`"), "{err}");
    let mut cluster = runc_cluster("1.7");
    cluster.runtimes.push("youki".into());
    let err = compile(&playbook, &cluster, &lab_host(), &bundle).unwrap_err();
    assert!(matches!(err, Error::InvalidContext { .. }) && err.to_string().contains("youki"));
}

#[test]
fn wire_plans_announce_only_missing_blobs() {
    let (dir, bundle, playbook) = fixture();
    let phases = compile(&playbook, &packages_cluster("1.6"), &lab_host(), &bundle).unwrap();
    let runtime = &phases[1];
    let containerd = sha_of(dir.path(), FAKE_FILES[0].path);
    let plan = runtime.to_plan(&bundle, &[containerd], false).unwrap();
    assert_eq!(plan.phase, "container-runtime");
    // runc and the rootfs are missing; containerd is already there.
    assert_eq!(plan.blobs.len(), 2);
    assert_eq!(plan.blobs[0].sha256, runtime.blobs[1]);
    assert_eq!(
        plan.blobs[0].size,
        std::fs::metadata(dir.path().join(FAKE_FILES[1].path))
            .unwrap()
            .len()
    );
    assert_eq!(plan.tasks, runtime.tasks);
    let dry = runtime.to_plan(&bundle, &[], true).unwrap();
    assert!(dry.check_mode && dry.blobs.is_empty());
}

#[test]
fn facts_probes_cover_modules_packages_and_conflicts() {
    let playbook = Playbook::builtin("install").unwrap();
    let probes = facts_probes(&playbook, &runc_cluster("1.7"), &lab_host()).unwrap();
    assert_eq!(probes.modules, ["overlay", "br_netfilter"]);
    assert!(
        ["containerd", "runc", "docker-ce", "containerd.io"]
            .iter()
            .all(|p| probes.packages.iter().any(|q| q == p))
    );
    assert!(!probes.paths.is_empty() && !probes.disks.is_empty());
}

#[test]
fn facts_probes_ask_for_the_binaries_of_the_listed_runtime_handlers() {
    let playbook = Playbook::builtin("install").unwrap();
    let has = |probes: &kubegrid_agent::protocol::FactsArgs, path: &str| {
        probes.paths.iter().any(|p| p == std::path::Path::new(path))
    };
    let full = facts_probes(&playbook, &full_cluster("1.7"), &lab_host()).unwrap();
    assert!(
        has(&full, kubegrid_plan::NVIDIA_RUNTIME_BINARY),
        "{:?}",
        full.paths
    );
    // kubegrid installs kata itself where a VM can be created: nothing to probe.
    assert!(
        !has(&full, kubegrid_plan::KATA_SHIM_BINARY),
        "{:?}",
        full.paths
    );
    let runc = facts_probes(&playbook, &runc_cluster("1.7"), &lab_host()).unwrap();
    assert!(!has(&runc, kubegrid_plan::NVIDIA_RUNTIME_BINARY));
}
