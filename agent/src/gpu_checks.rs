//! The GPU Node's host validation: nvidia-smi sees every GPU on the PCI bus, NVSwitch
//! systems' fabric is trained, the kernel logged no Xid error this boot, and a container run
//! through containerd with the nvidia runtime gets the GPUs.

use std::{collections::BTreeMap, path::Path, thread, time::Duration};

use crate::{
    checks::{container_id, ctr, last_line, remove_container, unpack_rootfs},
    error::{Error, Result},
    exec::{self, Ran},
    tasks::{Ctx, Outcome},
};

/// How long one nvidia-smi may take; it answers in seconds unless the driver is wedged.
const SMI_LIMIT: Duration = Duration::from_secs(60);
/// How long fabric manager may take to train the fabric after it started.
const FABRIC_ATTEMPTS: u32 = 30;
const FABRIC_PAUSE: Duration = Duration::from_secs(2);
/// How long the GPU container may take, image-less start and the runtime's hooks included.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn smi(args: &[&str]) -> Result<Ran> {
    let mut argv = vec!["nvidia-smi".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    exec::run_with(&argv, &BTreeMap::new(), Some(SMI_LIMIT))
}

fn smi_failed(ran: &Ran, expected: String) -> Error {
    Error::CheckFailed {
        check: "nvidia-smi".into(),
        seen: format!(
            "`{}` {}: {}",
            ran.command,
            ran.status_text(),
            last_line(&ran.tail()).unwrap_or_default()
        ),
        expected,
        hint: "is the driver loaded? `lsmod | grep nvidia` and `dmesg | grep NVRM` on the host say why not".into(),
        output: ran.tail(),
    }
}

/// `nvidia-smi -L` answers and lists `gpus` GPUs (MIG devices, indented, are not counted).
pub fn nvidia_smi_gpus(gpus: u32) -> Result<Outcome> {
    let ran = smi(&["-L"])?;
    let expected = format!("{gpus} GPU(s), as many as the PCI bus has");
    if !ran.success() {
        return Err(smi_failed(&ran, expected));
    }
    let listed = listed_gpus(&ran.stdout);
    if listed != gpus as usize {
        return Err(Error::CheckFailed {
            check: "nvidia-smi GPU count".into(),
            seen: format!("{listed} GPU(s) listed by `nvidia-smi -L`"),
            expected,
            hint: "a GPU on the bus that the driver does not list failed to initialise or fell off the bus: `dmesg | grep NVRM` names it".into(),
            output: ran.tail(),
        });
    }
    Ok(Outcome {
        changed: false,
        message: format!("nvidia-smi lists {listed} GPU(s), as many as the PCI bus has"),
        output: ran.tail(),
    })
}

/// The GPU lines of `nvidia-smi -L` ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)").
pub fn listed_gpus(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with("GPU ")).count()
}

/// Every GPU's fabric state is `Completed`, waiting while fabric manager still trains it.
pub fn gpu_fabric_completed() -> Result<Outcome> {
    let mut attempt = 1;
    loop {
        let ran = smi(&["-q"])?;
        let expected = "fabric state Completed on every GPU".to_string();
        if !ran.success() {
            return Err(smi_failed(&ran, expected));
        }
        let states = fabric_states(&ran.stdout);
        let pending =
            |s: &Option<String>| matches!(s.as_deref(), Some("In Progress") | Some("Not Started"));
        if states.iter().any(|(_, s)| pending(s)) && attempt < FABRIC_ATTEMPTS {
            attempt += 1;
            thread::sleep(FABRIC_PAUSE);
            continue;
        }
        let not_done: Vec<String> = states
            .iter()
            .filter(|(_, s)| s.as_deref() != Some("Completed"))
            .map(|(bus, s)| format!("{bus} {}", s.as_deref().unwrap_or("no fabric state")))
            .collect();
        if states.is_empty() || !not_done.is_empty() {
            return Err(Error::CheckFailed {
                check: "GPU fabric".into(),
                seen: if states.is_empty() {
                    "no GPU in `nvidia-smi -q`".into()
                } else {
                    not_done.join(", ")
                },
                expected,
                hint: "fabric manager trains the NVLink fabric once it runs, and only in exactly the driver's version: `systemctl status nvidia-fabricmanager` and /var/log/fabricmanager.log say why not".into(),
                output: String::new(),
            });
        }
        return Ok(Outcome::unchanged(format!(
            "fabric state Completed on all {} GPU(s)",
            states.len()
        )));
    }
}

/// (PCI bus id, fabric state) of each GPU section of `nvidia-smi -q`; None where the GPU
/// has no fabric section or its state is N/A.
pub fn fabric_states(stdout: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut in_fabric = false;
    for line in stdout.lines() {
        if let Some(bus) = line.strip_prefix("GPU ") {
            out.push((bus.trim().to_string(), None));
            in_fabric = false;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text == "Fabric" {
            in_fabric = true;
            continue;
        }
        // A section header at the Fabric line's depth ends it; its fields are deeper.
        if in_fabric && !text.contains(':') && indent <= 4 {
            in_fabric = false;
        }
        if !in_fabric {
            continue;
        }
        if let Some((key, value)) = text.split_once(':')
            && key.trim() == "State"
            && let Some(last) = out.last_mut()
        {
            let value = value.trim();
            last.1 = (value != "N/A").then(|| value.to_string());
            in_fabric = false;
        }
    }
    out
}

/// The kernel log of this boot has no `NVRM: Xid` line.
pub fn no_xid_errors() -> Result<Outcome> {
    let journal = exec::run_with(
        &[
            "journalctl",
            "-k",
            "-b",
            "--no-pager",
            "-o",
            "short-monotonic",
        ]
        .map(String::from),
        &BTreeMap::new(),
        Some(SMI_LIMIT),
    );
    let (ran, source) = match journal {
        Ok(ran) if ran.success() => (ran, "`journalctl -k -b`"),
        // No journal (or no journalctl): the kernel ring buffer holds this boot's messages.
        _ => (
            exec::run_with(&["dmesg".to_string()], &BTreeMap::new(), Some(SMI_LIMIT))?
                .ok_or("reading the kernel log needs root")?,
            "`dmesg`",
        ),
    };
    let xids = xid_lines(&ran.stdout);
    if xids.is_empty() {
        return Ok(Outcome::unchanged(format!(
            "no NVRM Xid error in this boot's kernel log ({source})"
        )));
    }
    let mut seen = format!(
        "{} Xid line(s) in {source}, the first: {}",
        xids.len(),
        xids[0]
    );
    if xids.len() > 1 {
        seen.push_str(&format!("; the last: {}", xids[xids.len() - 1]));
    }
    Err(Error::CheckFailed {
        check: "GPU Xid errors since boot".into(),
        seen,
        expected: "no `NVRM: Xid` line".into(),
        hint: "NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors) says what each code means: 79 is a GPU fallen off the bus, 48, 63, 64, 94 and 95 are memory errors, 13, 31 and 43 are faults of an application".into(),
        output: exec::tail(&xids.join("\n"), exec::OUTPUT_TAIL_BYTES),
    })
}

/// The `NVRM: Xid` lines of a kernel log, trimmed.
pub fn xid_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("NVRM: Xid"))
        .map(|l| exec::tail(l.trim(), 300))
        .collect()
}

/// A container started by containerd with `runtime_binary` in runc's place (as the CRI
/// `nvidia` handler does) and NVIDIA_VISIBLE_DEVICES=all sees `gpus` /dev/nvidia<N> nodes.
/// The test rootfs is a static busybox, so the container lists the device nodes the runtime
/// gave it rather than running nvidia-smi, which needs the C library.
pub fn gpu_container(
    ctx: &Ctx,
    socket: &Path,
    runtime_binary: &Path,
    rootfs_sha256: &str,
    gpus: u32,
) -> Result<Outcome> {
    let runtime = runtime_binary.display().to_string();
    // A copy of its own: the runtime's hook creates mount points for the driver's files in
    // the container's root, which the runc check's copy should not collect.
    let rootfs = ctx
        .state_dir
        .join("rootfs")
        .join(format!("{rootfs_sha256}-nvidia"));
    if !rootfs.is_dir() {
        if ctx.check_mode {
            return Ok(Outcome::unchanged(format!(
                "would check that a container run with {runtime} sees {gpus} GPU(s) (its rootfs is not unpacked yet)"
            )));
        }
        unpack_rootfs(ctx, rootfs_sha256, &rootfs)?;
    }
    let id = container_id();
    let rootfs_arg = rootfs.display().to_string();
    let ran = ctr(
        socket,
        &[
            "run",
            "--rm",
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-binary",
            &runtime,
            "--env",
            "NVIDIA_VISIBLE_DEVICES=all",
            "--rootfs",
            &rootfs_arg,
            &id,
            "/bin/busybox",
            "ls",
            "-1",
            "/dev",
        ],
        RUN_LIMIT,
    )?;
    let seen_gpus = gpu_device_nodes(&ran.stdout);
    if ran.success() && seen_gpus == gpus as usize {
        return Ok(Outcome {
            changed: false,
            message: format!(
                "a container run with {runtime} sees {seen_gpus} GPU(s) (/dev/nvidia<N>)"
            ),
            output: ran.tail(),
        });
    }
    if !ran.success() {
        remove_container(socket, &id);
    }
    Err(Error::CheckFailed {
        check: format!("GPU container {id} ({runtime})"),
        seen: if ran.success() {
            format!("{seen_gpus} GPU device node(s) in the container's /dev")
        } else {
            format!(
                "`ctr run` {}: {}",
                ran.status_text(),
                last_line(&ran.stderr).unwrap_or_default()
            )
        },
        expected: format!("{gpus} GPU(s), as many as the PCI bus has"),
        hint: format!(
            "is the NVIDIA container toolkit installed ({runtime}), and does /etc/nvidia-container-runtime/config.toml or the CDI spec /etc/cdi/nvidia.yaml match the loaded driver? `nvidia-ctk cdi list` shows what it would inject"
        ),
        output: ran.tail(),
    })
}

/// `nvidia0`, `nvidia1`, ... in an `ls -1 /dev` listing (not nvidiactl, nvidia-uvm).
pub fn gpu_device_nodes(listing: &str) -> usize {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nvidia"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gpus_not_mig_devices() {
        let out = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5f3c0c6e-0000-0000-0000-000000000000)\n\
                   \x20 MIG 1g.10gb     Device  0: (UUID: MIG-aaaa)\n\
                   GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-5f3c0c6e-0000-0000-0000-000000000001)\n";
        assert_eq!(listed_gpus(out), 2);
        assert_eq!(listed_gpus("No devices were found\n"), 0);
    }

    const SMI_Q: &str = "
==============NVSMI LOG==============

Timestamp                                 : Mon Jan  6 10:00:00 2025
Driver Version                            : 550.90.07
CUDA Version                              : 12.4

Attached GPUs                             : 2
GPU 00000000:18:00.0
    Product Name                          : NVIDIA H100 80GB HBM3
    Fabric
        State                             : Completed
        Status                            : Success
    Processes                             : None

GPU 00000000:2A:00.0
    Product Name                          : NVIDIA H100 80GB HBM3
    Fabric
        State                             : In Progress
        Status                            : N/A
    Processes                             : None
";

    #[test]
    fn reads_each_gpus_fabric_state() {
        assert_eq!(
            fabric_states(SMI_Q),
            vec![
                (
                    "00000000:18:00.0".to_string(),
                    Some("Completed".to_string())
                ),
                (
                    "00000000:2A:00.0".to_string(),
                    Some("In Progress".to_string())
                ),
            ]
        );
        let pcie = "GPU 00000000:01:00.0\n    Product Name : NVIDIA L4\n    Fabric\n        State : N/A\n        Status : N/A\n";
        assert_eq!(
            fabric_states(pcie),
            vec![("00000000:01:00.0".to_string(), None)]
        );
        let older = "GPU 00000000:01:00.0\n    Product Name : NVIDIA A100\n    Clocks\n        Graphics : 210 MHz\n";
        assert_eq!(
            fabric_states(older),
            vec![("00000000:01:00.0".to_string(), None)]
        );
    }

    #[test]
    fn finds_xid_lines() {
        let log = "[    5.1] kernel: nvidia: loading out-of-tree module\n\
                   [  300.2] kernel: NVRM: Xid (PCI:0000:18:00): 79, pid=1234, GPU has fallen off the bus.\n\
                   [  301.0] kernel: eth0: link up\n";
        assert_eq!(
            xid_lines(log),
            vec![
                "[  300.2] kernel: NVRM: Xid (PCI:0000:18:00): 79, pid=1234, GPU has fallen off the bus."
            ]
        );
        assert!(
            xid_lines("[ 1.0] kernel: NVRM: loading NVIDIA UNIX x86_64 Kernel Module\n").is_empty()
        );
    }

    #[test]
    fn counts_gpu_device_nodes_only() {
        let dev = "console\nnull\nnvidia-uvm\nnvidia-uvm-tools\nnvidia0\nnvidia1\nnvidiactl\nnvidia-caps\n";
        assert_eq!(gpu_device_nodes(dev), 2);
        assert_eq!(gpu_device_nodes("null\nzero\n"), 0);
    }
}
