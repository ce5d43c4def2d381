//! Probes that look at the filesystem itself rather than parse one file.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use nix::{
    sys::statvfs::statvfs,
    unistd::{AccessFlags, access},
};

use super::{
    Cgroup, Disk, Listener, PciDevice,
    parse::{Mount, parse_listeners, parse_mountinfo, parse_proc_cgroups},
};
use crate::fsutil::{is_sha256_name, read_or_empty, under_root};

/// NVIDIA's PCI vendor id.
pub const NVIDIA_VENDOR: &str = "0x10de";

/// How cgroups are mounted under `root`: 2 when /sys/fs/cgroup is cgroup2, 1 when any v1
/// hierarchy is mounted (hybrid counts as 1: runtimes must then use the v1 controllers).
pub fn cgroup(root: &Path) -> Cgroup {
    let base = root.join("sys/fs/cgroup");
    let mounts = parse_mountinfo(&read_or_empty(&root.join("proc/self/mountinfo")));
    let unified_root = mounts
        .iter()
        .any(|m| m.fstype == "cgroup2" && m.mount_point == "/sys/fs/cgroup");
    let v1: Vec<&Mount> = mounts.iter().filter(|m| m.fstype == "cgroup").collect();
    let controllers_file = base.join("cgroup.controllers");
    if unified_root || (mounts.is_empty() && controllers_file.exists()) {
        return Cgroup {
            version: 2,
            controllers: read_or_empty(&controllers_file)
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            writable: writable(&base),
        };
    }
    if v1.is_empty() {
        return Cgroup::default();
    }
    let mut controllers = parse_proc_cgroups(&read_or_empty(&root.join("proc/cgroups")));
    if controllers.is_empty() {
        controllers = v1_option_controllers(&v1);
    }
    // The memory hierarchy is the one a runtime cannot do without; else any will tell.
    let probe = v1
        .iter()
        .find(|m| m.super_options.split(',').any(|o| o == "memory"))
        .unwrap_or(&v1[0]);
    Cgroup {
        version: 1,
        controllers,
        writable: writable(&under_root(root, Path::new(&probe.mount_point))),
    }
}

/// Controller names from v1 mount options, for kernels without /proc/cgroups.
fn v1_option_controllers(v1: &[&Mount]) -> Vec<String> {
    const NOT_CONTROLLERS: [&str; 6] = ["rw", "ro", "relatime", "noexec", "nosuid", "nodev"];
    v1.iter()
        .flat_map(|m| m.super_options.split(','))
        .filter(|o| !NOT_CONTROLLERS.contains(o) && !o.contains('='))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn writable(path: &Path) -> bool {
    access(path, AccessFlags::W_OK).is_ok()
}

/// PCI devices under /sys/bus/pci/devices, by address.
pub fn pci(root: &Path) -> Vec<PciDevice> {
    let Ok(entries) = fs::read_dir(root.join("sys/bus/pci/devices")) else {
        return Vec::new();
    };
    let mut devices: Vec<PciDevice> = entries
        .flatten()
        .map(|e| {
            let dir = e.path();
            let field = |f: &str| read_or_empty(&dir.join(f)).trim().to_lowercase();
            let vendor = field("vendor");
            PciDevice {
                address: e.file_name().to_string_lossy().into_owned(),
                nvidia: vendor == NVIDIA_VENDOR,
                vendor,
                device: field("device"),
                class: field("class"),
            }
        })
        .collect();
    devices.sort_by(|a, b| a.address.cmp(&b.address));
    devices
}

/// Listening TCP sockets, v4 and v6, without duplicates.
pub fn listening(root: &Path) -> Vec<Listener> {
    let mut seen = BTreeSet::new();
    ["proc/net/tcp", "proc/net/tcp6"]
        .iter()
        .flat_map(|f| parse_listeners(&read_or_empty(&root.join(f))))
        .filter(|l| seen.insert((l.address.clone(), l.port)))
        .collect()
}

/// Free and total space of the filesystem holding each path; a path that does not exist
/// yet (/var/lib/containerd before the install) is measured at its nearest existing
/// ancestor. A path that cannot be measured is left out.
pub fn disks(root: &Path, paths: &[PathBuf]) -> Vec<Disk> {
    paths
        .iter()
        .filter_map(|p| {
            let host = under_root(root, p);
            let probe = host.ancestors().find(|a| a.exists())?;
            let st = statvfs(probe).ok()?;
            let frag = st.fragment_size();
            Some(Disk {
                path: p.to_string_lossy().into_owned(),
                available_bytes: st.blocks_available().saturating_mul(frag),
                total_bytes: st.blocks().saturating_mul(frag),
            })
        })
        .collect()
}

/// Blob names (sha256) in the store, sorted; anything else there (temp files) is ignored.
pub fn store(store_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(store_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_sha256_name(n))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn detects_cgroup_v2() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "proc/self/mountinfo",
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        write(
            root,
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        let c = cgroup(root);
        assert_eq!(c.version, 2);
        assert_eq!(c.controllers, vec!["cpuset", "cpu", "io", "memory", "pids"]);
        assert!(c.writable, "a temp dir is writable for root and its owner");
    }

    #[test]
    fn hybrid_counts_as_v1() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "proc/self/mountinfo",
            "31 23 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
             32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
             33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        fs::create_dir_all(root.join("sys/fs/cgroup/memory")).unwrap();
        let c = cgroup(root);
        assert_eq!(c.version, 1);
        assert_eq!(c.controllers, vec!["cpu", "cpuacct", "memory"]);
        assert!(c.writable);
        write(
            root,
            "proc/cgroups",
            "#subsys_name\thierarchy\tnum\tenabled\nmemory\t5\t1\t1\n",
        );
        assert_eq!(cgroup(root).controllers, vec!["memory"]);
    }

    #[test]
    fn no_cgroups_is_version_0() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup(dir.path()), Cgroup::default());
    }

    #[test]
    fn lists_pci_devices_and_flags_nvidia() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (addr, vendor, class) in [
            ("0000:3b:00.0", "0x10de", "0x030200"),
            ("0000:00:1f.0", "0x8086", "0x060100"),
        ] {
            let d = format!("sys/bus/pci/devices/{addr}");
            write(root, &format!("{d}/vendor"), &format!("{vendor}\n"));
            write(root, &format!("{d}/device"), "0x2330\n");
            write(root, &format!("{d}/class"), &format!("{class}\n"));
        }
        let devices = pci(root);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].address, "0000:00:1f.0");
        assert!(!devices[0].nvidia);
        assert_eq!(
            devices[1],
            PciDevice {
                address: "0000:3b:00.0".into(),
                vendor: "0x10de".into(),
                device: "0x2330".into(),
                class: "0x030200".into(),
                nvidia: true,
            }
        );
    }

    #[test]
    fn measures_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let got = disks(dir.path(), &[PathBuf::from("/var/lib/containerd")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "/var/lib/containerd");
        assert!(got[0].total_bytes > 0 && got[0].available_bytes <= got[0].total_bytes);
    }

    #[test]
    fn lists_only_blob_names_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let blob = "a".repeat(64);
        fs::write(dir.path().join(&blob), "x").unwrap();
        fs::write(dir.path().join(format!(".{blob}.tmp-1")), "x").unwrap();
        fs::write(dir.path().join("README"), "x").unwrap();
        assert_eq!(store(dir.path()), vec![blob]);
        assert!(store(&dir.path().join("missing")).is_empty());
    }
}
