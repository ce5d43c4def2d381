//! The GPU Node's host tasks against scripted tools first on the agent's PATH: a re-apply of
//! a unit never reloads systemd (a reload detaches GPUs from running containers), and the
//! host validation checks read nvidia-smi, the kernel log and a container's /dev.

mod scripted;

use scripted::script;

use std::{fs, path::Path};

use kubegrid_agent::protocol::{Action, CheckArgs, CheckKind, TaskStatus, UnitArgs};

/// A `systemctl` whose unit state lives in files under `dir`, logging each call.
fn scripted_systemctl(dir: &Path) {
    let d = dir.display();
    script(
        dir,
        "systemctl",
        &format!(
            "echo \"$*\" >> {d}/systemctl.log
case \"$1\" in
  is-enabled) [ -e {d}/enabled ] && echo enabled || echo disabled ;;
  is-active) [ -e {d}/active ] && echo active || echo inactive ;;
  enable) touch {d}/enabled ;;
  start|restart) touch {d}/active ;;
  cat) printf '[Unit]\\nDescription=packaged\\n' ;;
  show) echo no ;;
esac
exit 0
"
        ),
    );
}

/// Runs one task with the scripted tools; returns its status and message.
fn run(dir: &Path, action: Action) -> (TaskStatus, String) {
    scripted::run_task(dir, "task", action)
}

fn calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("systemctl.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_packaged_unit_is_enabled_without_a_reload_and_a_reapply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    scripted_systemctl(dir.path());
    let unit = || {
        Action::SystemdUnit(UnitArgs {
            name: "nvidia-persistenced.service".into(),
            content: None,
            enabled: true,
            running: true,
            watch: Vec::new(),
            restart: true,
        })
    };
    let (status, message) = run(dir.path(), unit());
    assert_eq!(status, TaskStatus::Changed, "{message}");
    assert_eq!(
        message,
        "enable nvidia-persistenced.service (was disabled), start nvidia-persistenced.service"
    );
    let first = calls(dir.path());
    assert!(
        first.contains(&"enable --no-reload nvidia-persistenced.service".to_string()),
        "{first:#?}"
    );
    assert!(
        !first.iter().any(|c| c.contains("daemon-reload")),
        "{first:#?}"
    );
    let (status, message) = run(dir.path(), unit());
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    let again = &calls(dir.path())[first.len()..];
    assert!(
        again
            .iter()
            .all(|c| c.starts_with("is-") || c.starts_with("cat ")),
        "a re-apply only asks: {again:#?}"
    );
}

fn check(dir: &Path, kind: CheckKind) -> (TaskStatus, String) {
    run(dir, Action::Check(CheckArgs { check: kind }))
}

const SMI_L: &str = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000001)
";

#[test]
fn nvidia_smi_must_list_as_many_gpus_as_the_pci_bus_has() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "nvidia-smi", &format!("cat <<'X'\n{SMI_L}X\n"));
    let (status, message) = check(dir.path(), CheckKind::NvidiaSmiGpus { gpus: 2 });
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert_eq!(
        message,
        "nvidia-smi lists 2 GPU(s), as many as the PCI bus has"
    );
    let (status, message) = check(dir.path(), CheckKind::NvidiaSmiGpus { gpus: 3 });
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(
        message.contains("saw 2 GPU(s) listed by `nvidia-smi -L`")
            && message.contains("expected 3 GPU(s), as many as the PCI bus has"),
        "{message}"
    );
    script(
        dir.path(),
        "nvidia-smi",
        "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9\n",
    );
    let (status, message) = check(dir.path(), CheckKind::NvidiaSmiGpus { gpus: 2 });
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(
        message.contains("exited with code 9")
            && message.contains("could not communicate with the NVIDIA driver")
            && message.contains("is the driver loaded?"),
        "{message}"
    );
}

#[test]
fn every_gpus_fabric_must_be_completed() {
    let dir = tempfile::tempdir().unwrap();
    let q = |second: &str| {
        format!(
            "cat <<'X'\nGPU 00000000:18:00.0\n    Fabric\n        State : Completed\n        Status : Success\nGPU 00000000:2A:00.0\n    Fabric\n        State : {second}\n        Status : N/A\nX\n"
        )
    };
    script(dir.path(), "nvidia-smi", &q("Completed"));
    let (status, message) = check(dir.path(), CheckKind::GpuFabricCompleted {});
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert_eq!(message, "fabric state Completed on all 2 GPU(s)");
    script(dir.path(), "nvidia-smi", &q("N/A"));
    let (status, message) = check(dir.path(), CheckKind::GpuFabricCompleted {});
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(
        message.contains("saw 00000000:2A:00.0 no fabric state")
            && message.contains("nvidia-fabricmanager"),
        "{message}"
    );
}

#[test]
fn an_xid_in_this_boots_kernel_log_fails() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "journalctl",
        "echo '[    5.000000] host kernel: nvidia-nvlink: Nvlink Core is being initialized'\n",
    );
    let (status, message) = check(dir.path(), CheckKind::NoXidErrors {});
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert_eq!(
        message,
        "no NVRM Xid error in this boot's kernel log (`journalctl -k -b`)"
    );
    script(
        dir.path(),
        "journalctl",
        "echo '[  301.5] host kernel: NVRM: Xid (PCI:0000:18:00): 79, pid=0, GPU has fallen off the bus.'\n",
    );
    let (status, message) = check(dir.path(), CheckKind::NoXidErrors {});
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(
        message.contains("saw 1 Xid line(s) in `journalctl -k -b`, the first: [")
            && message
                .contains("NVRM: Xid (PCI:0000:18:00): 79, pid=0, GPU has fallen off the bus.")
            && message.contains("79 is a GPU fallen off the bus"),
        "{message}"
    );
}

#[test]
fn a_container_under_the_nvidia_runtime_sees_every_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ctr.log");
    script(
        dir.path(),
        "ctr",
        &format!(
            "echo \"$*\" >> {}\nprintf 'console\\nnull\\nnvidia-uvm\\nnvidia0\\nnvidia1\\nnvidiactl\\n'\n",
            log.display()
        ),
    );
    let sha = "c".repeat(64);
    fs::create_dir_all(
        dir.path()
            .join("state/rootfs")
            .join(format!("{sha}-nvidia")),
    )
    .unwrap();
    let kind = |gpus| CheckKind::GpuContainer {
        socket: "/run/test.sock".into(),
        runtime_binary: "/usr/bin/nvidia-container-runtime".into(),
        rootfs_sha256: sha.clone(),
        gpus,
    };
    let (status, message) = check(dir.path(), kind(2));
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert_eq!(
        message,
        "a container run with /usr/bin/nvidia-container-runtime sees 2 GPU(s) (/dev/nvidia<N>)"
    );
    let ran = fs::read_to_string(&log).unwrap();
    assert!(
        ran.contains("--runc-binary /usr/bin/nvidia-container-runtime --env NVIDIA_VISIBLE_DEVICES=all --rootfs"),
        "{ran}"
    );
    let (status, message) = check(dir.path(), kind(8));
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(
        message.contains("saw 2 GPU device node(s) in the container's /dev")
            && message.contains("expected 8 GPU(s)"),
        "{message}"
    );
}
