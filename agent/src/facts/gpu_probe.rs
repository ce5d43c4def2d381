//! Reads a host's GPU facts from its kernel's files under `root`: NVIDIA functions and
//! NVSwitches on PCI, the modules that claim them, the driver version, Secure Boot, kernel
//! headers, IOMMU groups and KVM. `nvidia-smi` is read by [`super::gpu_smi`].

use std::{
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{
    GpuDevice, GpuFacts, GpuModules, Kvm, PciDevice, SecureBoot, gpu_models::gpu_model, gpu_smi,
};
use crate::fsutil::{read_or_empty, under_root};

/// The EFI variable that holds the Secure Boot state (EFI global variable GUID).
const SECURE_BOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// The KVM API version every kernel since 2.6.22 reports; another value means a KVM that
/// userspace VMMs (and so Kata) refuse.
const KVM_API_VERSION: i32 = 12;

/// The GPU facts of the host under `root`, running kernel `kernel`, whose PCI devices are
/// `pci` (from [`super::probe::pci`]).
pub fn gpu(root: &Path, kernel: &str, pci: &[PciDevice]) -> GpuFacts {
    let (smi, smi_error) = match gpu_smi::query(root) {
        None => (None, None),
        Some(Ok(report)) => (Some(report), None),
        Some(Err(why)) => (None, Some(why)),
    };
    GpuFacts {
        devices: devices(root, pci),
        nvswitches: pci
            .iter()
            .filter(|d| d.nvidia && d.class.starts_with("0x0680"))
            .map(|d| d.address.clone())
            .collect(),
        modules: GpuModules {
            nvidia: loaded(root, "nvidia"),
            nouveau: loaded(root, "nouveau"),
            nova_core: loaded(root, "nova_core"),
        },
        driver_version: parse_driver_version(&read_or_empty(
            &root.join("proc/driver/nvidia/version"),
        )),
        smi,
        smi_error,
        secure_boot: secure_boot(root),
        kernel_headers: !kernel.is_empty() && kernel_headers(root, kernel),
        iommu_groups: fs::read_dir(root.join("sys/kernel/iommu_groups"))
            .map(|entries| u32::try_from(entries.count()).unwrap_or(u32::MAX))
            .unwrap_or(0),
        kvm: kvm(root),
    }
}

/// NVIDIA functions of the VGA (0x0300) and 3D (0x0302) classes, with their product names.
fn devices(root: &Path, pci: &[PciDevice]) -> Vec<GpuDevice> {
    pci.iter()
        .filter(|d| d.nvidia && (d.class.starts_with("0x0300") || d.class.starts_with("0x0302")))
        .map(|d| {
            let id = d.device.trim_start_matches("0x");
            let model = u16::from_str_radix(id, 16)
                .ok()
                .and_then(gpu_model)
                .map_or_else(|| format!("NVIDIA 10de:{id}"), str::to_string);
            GpuDevice {
                address: d.address.clone(),
                device: d.device.clone(),
                model,
                iommu_group: iommu_group(root, &d.address),
            }
        })
        .collect()
}

/// The group the `iommu_group` link of a PCI device points at (`../../kernel/iommu_groups/42`).
fn iommu_group(root: &Path, address: &str) -> Option<u32> {
    let link = root
        .join("sys/bus/pci/devices")
        .join(address)
        .join("iommu_group");
    fs::read_link(link)
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// Whether module `name` is active: listed in /proc/modules, or present under /sys/module
/// (where a built-in driver also shows, and claims its devices just the same).
fn loaded(root: &Path, name: &str) -> bool {
    read_or_empty(&root.join("proc/modules"))
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
        || root.join("sys/module").join(name).is_dir()
}

/// The version in /proc/driver/nvidia/version's `NVRM version:` line, in both the proprietary
/// (`NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct ...`) and the open
/// (`NVIDIA UNIX Open Kernel Module for x86_64  550.127.05  Release Build ...`) form: the first
/// word made of digits and dots.
pub fn parse_driver_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| {
            w.contains('.')
                && w.starts_with(|c: char| c.is_ascii_digit())
                && w.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(str::to_string)
}

/// Secure Boot from its EFI variable: 4 attribute bytes, then 1 (on) or 0 (off). A host without
/// /sys/firmware/efi booted from BIOS, which has no Secure Boot.
fn secure_boot(root: &Path) -> SecureBoot {
    if !root.join("sys/firmware/efi").is_dir() {
        return SecureBoot::Disabled;
    }
    match fs::read(root.join(SECURE_BOOT_VAR)).ok().as_deref() {
        Some([_, _, _, _, 1, ..]) => SecureBoot::Enabled,
        Some([_, _, _, _, 0, ..]) => SecureBoot::Disabled,
        _ => SecureBoot::Unknown,
    }
}

/// Whether /lib/modules/<kernel>/build resolves to a directory. The link is absolute
/// (`/usr/src/linux-headers-<kernel>`), so it is followed under `root`, not the agent's `/`.
fn kernel_headers(root: &Path, kernel: &str) -> bool {
    let mut path = root.join("lib/modules").join(kernel).join("build");
    // A chain of links longer than the kernel's own limit (40) is a loop.
    for _ in 0..40 {
        match fs::read_link(&path) {
            Ok(target) if target.is_absolute() => path = under_root(root, &target),
            Ok(target) => path = parent_of(&path).join(target),
            Err(_) => return path.is_dir(),
        }
    }
    false
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Whether `<root>/dev/kvm` can create a VM: open it, check the API version, create one (and
/// close it again). Probed only where the device exists.
fn kvm(root: &Path) -> Kvm {
    let path = root.join("dev/kvm");
    if fs::symlink_metadata(&path).is_err() {
        return Kvm::NoDevice;
    }
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Kvm::Unusable("the path of /dev/kvm holds a NUL byte".into());
    };
    let kvm = match kvm_ioctls::Kvm::new_with_path(&c_path) {
        Ok(kvm) => kvm,
        Err(e) => return Kvm::Unusable(format!("opening /dev/kvm failed: {}", errno_text(&e))),
    };
    let version = kvm.get_api_version();
    if version != KVM_API_VERSION {
        return Kvm::Unusable(if version < 0 {
            "/dev/kvm does not answer KVM_GET_API_VERSION: it is not a KVM device".into()
        } else {
            format!("/dev/kvm reports KVM API version {version}; VMMs need {KVM_API_VERSION}")
        });
    }
    match kvm.create_vm() {
        Ok(_vm) => Kvm::Usable,
        Err(e) => Kvm::Unusable(format!("KVM_CREATE_VM failed: {}", errno_text(&e))),
    }
}

/// The system's text for an ioctl error ("Permission denied (os error 13)").
fn errno_text(e: &kvm_ioctls::Error) -> String {
    std::io::Error::from_raw_os_error(e.errno()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{tree, write};

    #[test]
    fn reads_both_driver_version_forms() {
        assert_eq!(
            parse_driver_version(
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct  8 03:22:07 UTC 2024\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
            )
            .as_deref(),
            Some("550.127.05")
        );
        assert_eq!(
            parse_driver_version(
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 18:04:44 UTC 2025\n"
            )
            .as_deref(),
            Some("570.86.15")
        );
        assert_eq!(
            parse_driver_version("NVRM version: NVIDIA UNIX aarch64 Kernel Module  550.90.07  Fri May 31 09:34:34 UTC 2024\n")
                .as_deref(),
            Some("550.90.07")
        );
        assert_eq!(parse_driver_version(""), None);
        assert_eq!(parse_driver_version("GCC version: 12.2.0\n"), None);
    }

    #[test]
    fn secure_boot_reads_the_value_byte_after_the_attributes() {
        let dir = tree(&[]);
        let root = dir.path();
        assert_eq!(secure_boot(root), SecureBoot::Disabled, "a BIOS host");
        fs::create_dir_all(root.join("sys/firmware/efi/efivars")).unwrap();
        assert_eq!(
            secure_boot(root),
            SecureBoot::Unknown,
            "EFI without the variable"
        );
        fs::write(root.join(SECURE_BOOT_VAR), [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(secure_boot(root), SecureBoot::Enabled);
        fs::write(root.join(SECURE_BOOT_VAR), [6, 0, 0, 0, 0]).unwrap();
        assert_eq!(secure_boot(root), SecureBoot::Disabled);
        fs::write(root.join(SECURE_BOOT_VAR), [6, 0, 0, 0]).unwrap();
        assert_eq!(secure_boot(root), SecureBoot::Unknown, "a short variable");
    }

    #[test]
    fn kernel_headers_follow_absolute_links_under_the_root() {
        let k = "6.1.0-13-amd64";
        let dir = tree(&[("usr/src/linux-headers-6.1.0-13-amd64/Makefile", "")]);
        let root = dir.path();
        assert!(!kernel_headers(root, k), "no build link");
        fs::create_dir_all(root.join(format!("lib/modules/{k}"))).unwrap();
        std::os::unix::fs::symlink(
            format!("/usr/src/linux-headers-{k}"),
            root.join(format!("lib/modules/{k}/build")),
        )
        .unwrap();
        assert!(kernel_headers(root, k));
        fs::remove_dir_all(root.join("usr/src")).unwrap();
        assert!(!kernel_headers(root, k), "a dangling link");
    }

    #[test]
    fn modules_count_as_loaded_from_proc_or_sys() {
        let dir = tree(&[
            (
                "proc/modules",
                "nouveau 2703360 0 - Live 0x0\nnvidia_uvm 1 0 - Live 0x0\n",
            ),
            ("sys/module/nova_core/initstate", "live\n"),
        ]);
        assert!(loaded(dir.path(), "nouveau"));
        assert!(loaded(dir.path(), "nova_core"));
        assert!(!loaded(dir.path(), "nvidia"), "nvidia_uvm is not nvidia");
    }

    #[test]
    fn kvm_is_probed_only_where_the_device_exists() {
        let dir = tree(&[]);
        assert_eq!(kvm(dir.path()), Kvm::NoDevice);
        write(dir.path(), "dev/kvm", "");
        match kvm(dir.path()) {
            Kvm::Unusable(why) => assert!(why.contains("not a KVM device"), "{why}"),
            other => panic!("a plain file is no KVM device, got {other:?}"),
        }
    }

    #[test]
    fn the_real_dev_kvm_creates_a_vm_where_it_opens() {
        let openable = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !openable {
            eprintln!("this machine has no /dev/kvm this test can open; nothing to check");
            return;
        }
        assert_eq!(kvm(Path::new("/")), Kvm::Usable);
    }
}
