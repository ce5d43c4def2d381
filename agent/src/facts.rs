//! Host facts, read from the kernel's and the OS's own files.

mod certs;
mod gpu;
mod gpu_models;
mod gpu_probe;
mod gpu_smi;
mod modules;
mod net;
mod packages;
pub mod parse;
mod probe;
mod versions;

use std::{collections::BTreeMap, fs, path::Path};

use serde::{Deserialize, Serialize};

pub use self::{
    certs::{CertFile, FoundCert},
    gpu::{GpuDevice, GpuFacts, GpuModules, Kvm, SecureBoot, SmiGpu, SmiReport},
    gpu_models::gpu_model,
    gpu_probe::parse_driver_version,
    gpu_smi::parse_smi_xml,
    modules::module_state,
    net::{TCP_PROBE_TIMEOUT, parse_ip_addr},
    packages::{PackageDb, parse_dpkg_query, parse_rpm_query},
    probe::NVIDIA_VENDOR,
    versions::parse_version,
};
use crate::{
    fsutil::{read_or_empty, under_root, unix_ms},
    protocol::FactsArgs,
};

/// What the agent reports about its host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The hostname.
    pub hostname: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// `ID` from os-release ("debian").
    pub os_id: String,
    /// `ID_LIKE` from os-release, split on spaces (["rhel", "fedora"]).
    #[serde(default)]
    pub os_like: Vec<String>,
    /// `VERSION_ID` from os-release ("12").
    pub os_version: String,
    /// Kubernetes-style architecture name ("amd64", "arm64").
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Active swap devices from /proc/swaps.
    #[serde(default)]
    pub swaps: Vec<SwapDevice>,
    /// Swap entries in /etc/fstab that are not commented out (device field).
    #[serde(default)]
    pub fstab_swaps: Vec<String>,
    /// Filesystems holding the paths asked for in `FactsArgs::disks`.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// cgroup layout.
    #[serde(default)]
    pub cgroup: Cgroup,
    /// PID 1's name ("systemd").
    #[serde(default)]
    pub init: String,
    /// The host's clock when facts were read, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub time_unix_ms: u64,
    /// PCI devices from /sys/bus/pci/devices.
    #[serde(default)]
    pub pci: Vec<PciDevice>,
    /// Listening TCP ports (v4 and v6) from /proc/net.
    #[serde(default)]
    pub listening: Vec<Listener>,
    /// Availability of the kernel modules asked for.
    #[serde(default)]
    pub modules: BTreeMap<String, ModuleState>,
    /// Installed version of each package asked for; absent when not installed.
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    /// Which of the paths asked for exist.
    #[serde(default)]
    pub paths: BTreeMap<String, bool>,
    /// sha256 names of the blobs already in the host's store.
    #[serde(default)]
    pub store: Vec<String>,
    /// Partial files of blob transfers that were cut, by sha256, with the bytes each holds:
    /// the engine resumes an SSH push from there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partials: BTreeMap<String, u64>,
    /// Network interfaces and their addresses.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// What a TCP connection to each `ip:port` asked for found.
    #[serde(default)]
    pub tcp_probes: BTreeMap<String, TcpProbe>,
    /// The version each executable asked for reports (`--version`), by its path; missing
    /// and silent ones are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// The certificates in the files and directories asked for, by absolute path: PEM
    /// CERTIFICATE blocks only, never a key or other file content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, CertFile>,
    /// NVIDIA GPUs, the modules and driver that claim them, Secure Boot, kernel headers,
    /// IOMMU and KVM.
    #[serde(default)]
    pub gpu: GpuFacts,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Name, e.g. "eth0" or "host0".
    pub name: String,
    /// Addresses with prefix length, e.g. "10.213.70.11/24".
    pub addresses: Vec<String>,
}

/// The result of one TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpProbe {
    /// Something accepted the connection.
    Open,
    /// A host answered with a reset: the address is in use, the port closed.
    Refused,
    /// Nothing answered before the timeout, or the address is unreachable (no ARP reply):
    /// the address is free.
    Silent,
}

/// An active swap area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapDevice {
    /// Device or file path.
    pub path: String,
    /// Size in KiB.
    pub size_kib: u64,
}

/// A filesystem and its free space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// The path asked about.
    pub path: String,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
    /// Total bytes.
    pub total_bytes: u64,
}

/// How cgroups are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// 1 (legacy or hybrid) or 2 (unified); 0 when not mounted.
    pub version: u8,
    /// Controllers available (cpu, memory, pids, ...).
    pub controllers: Vec<String>,
    /// /sys/fs/cgroup can be written (a container runtime needs that).
    pub writable: bool,
}

/// A PCI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciDevice {
    /// Bus address ("0000:3b:00.0").
    pub address: String,
    /// Vendor id ("0x10de").
    pub vendor: String,
    /// Device id.
    pub device: String,
    /// Class ("0x030200").
    pub class: String,
    /// Vendor is NVIDIA (0x10de).
    pub nvidia: bool,
}

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Local address ("0.0.0.0", "::").
    pub address: String,
    /// Port.
    pub port: u16,
}

/// Whether a kernel module can be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleState {
    /// Loaded now (/sys/module/<name> or /proc/modules).
    Loaded,
    /// Built into the kernel (modules.builtin, or the feature it provides is present).
    Builtin,
    /// A module file exists under /lib/modules/<kernel>.
    Loadable,
    /// None of the above.
    Missing,
}

/// Gathers facts from the files under `root` ("/" on a real host; tests pass a fake tree),
/// probing what `args` asks for and listing the blobs in `store_dir`. Package versions come
/// from the host's package database and interfaces from the host's network, whatever `root`
/// is; the TCP probes asked for take at most [`TCP_PROBE_TIMEOUT`] together, and `nvidia-smi`,
/// where installed, at most 10 seconds. Never fails: a fact that cannot be read is left empty,
/// and preflight reports what it needed and did not get.
pub fn gather(root: &Path, args: &FactsArgs, store_dir: &Path) -> Facts {
    let read = |p: &str| read_or_empty(&root.join(p));
    let os = parse_os_release(&read("etc/os-release"));
    let kernel = read("proc/sys/kernel/osrelease").trim().to_string();
    let pci = probe::pci(root);
    let gpu = gpu_probe::gpu(root, &kernel, &pci);
    Facts {
        hostname: read("proc/sys/kernel/hostname").trim().to_string(),
        machine_id: read("etc/machine-id").trim().to_string(),
        os_id: os.get("ID").cloned().unwrap_or_default(),
        os_like: os
            .get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        os_version: os.get("VERSION_ID").cloned().unwrap_or_default(),
        arch: kube_arch(std::env::consts::ARCH).to_string(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_mib: parse_mem_total_kib(&read("proc/meminfo")) / 1024,
        swaps: parse::parse_swaps(&read("proc/swaps")),
        fstab_swaps: parse::parse_fstab_swaps(&read("etc/fstab")),
        disks: probe::disks(root, &args.disks),
        cgroup: probe::cgroup(root),
        init: read("proc/1/comm").trim().to_string(),
        time_unix_ms: unix_ms(),
        pci,
        listening: probe::listening(root),
        modules: args
            .modules
            .iter()
            .map(|m| (m.clone(), module_state(root, &kernel, m)))
            .collect(),
        packages: query_packages(&args.packages),
        paths: args
            .paths
            .iter()
            .map(|p| {
                let exists = fs::symlink_metadata(under_root(root, p)).is_ok();
                (p.to_string_lossy().into_owned(), exists)
            })
            .collect(),
        store: probe::store(store_dir),
        partials: crate::store::partial_sizes(store_dir),
        interfaces: net::interfaces(),
        tcp_probes: net::tcp_probes(&args.tcp_probes),
        versions: versions::versions(root, &args.versions),
        certificates: certs::certificates(root, &args.certificates),
        gpu,
        kernel,
    }
}

/// A host with neither dpkg nor rpm reports no packages installed, which is what it has.
fn query_packages(names: &[String]) -> BTreeMap<String, String> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    PackageDb::detect()
        .and_then(|db| db.installed(&names).ok())
        .unwrap_or_default()
}

/// Parses os-release `KEY=value` lines, unquoting values.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// `MemTotal` in KiB from /proc/meminfo, or 0.
pub fn parse_mem_total_kib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Maps Rust's architecture names to the ones Kubernetes and container images use.
pub fn kube_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::testutil::write;

    #[test]
    fn reads_facts_from_a_host_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "etc/os-release",
            "PRETTY_NAME=\"Rocky Linux 9.3\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
        );
        write(root, "etc/machine-id", "abc123\n");
        write(root, "etc/fstab", "/dev/sda2 none swap sw 0 0\n");
        write(root, "proc/sys/kernel/hostname", "lab-1\n");
        write(root, "proc/sys/kernel/osrelease", "6.1.0-13-amd64\n");
        write(
            root,
            "proc/meminfo",
            "MemTotal:       24683808 kB\nMemFree: 1 kB\n",
        );
        write(
            root,
            "proc/swaps",
            "Filename Type Size Used Priority\n/dev/sda2 partition 1024 0 -2\n",
        );
        write(root, "proc/1/comm", "systemd\n");
        write(root, "proc/filesystems", "nodev\toverlay\n");
        write(root, "usr/bin/docker", "");
        let args = FactsArgs {
            modules: vec!["overlay".into(), "ip_vs".into()],
            packages: vec![],
            paths: vec![
                PathBuf::from("/usr/bin/docker"),
                PathBuf::from("/usr/bin/podman"),
            ],
            disks: vec![PathBuf::from("/var/lib")],
            tcp_probes: vec![],
            versions: vec![],
            certificates: vec![],
        };
        let before = unix_ms();
        let f = gather(root, &args, &root.join("store"));
        assert_eq!(f.hostname, "lab-1");
        assert_eq!(f.machine_id, "abc123");
        assert_eq!((f.os_id.as_str(), f.os_version.as_str()), ("rocky", "9.3"));
        assert_eq!(f.os_like, vec!["rhel", "centos", "fedora"]);
        assert_eq!(f.kernel, "6.1.0-13-amd64");
        assert_eq!(f.memory_mib, 24105);
        assert_eq!(
            f.swaps,
            vec![SwapDevice {
                path: "/dev/sda2".into(),
                size_kib: 1024
            }]
        );
        assert_eq!(f.fstab_swaps, vec!["/dev/sda2"]);
        assert_eq!(f.init, "systemd");
        assert!(f.time_unix_ms >= before);
        assert_eq!(f.disks.len(), 1);
        assert_eq!(
            f.modules,
            BTreeMap::from([
                ("ip_vs".to_string(), ModuleState::Missing),
                ("overlay".to_string(), ModuleState::Builtin),
            ])
        );
        assert_eq!(
            f.paths,
            BTreeMap::from([
                ("/usr/bin/docker".to_string(), true),
                ("/usr/bin/podman".to_string(), false),
            ])
        );
        assert!(f.packages.is_empty() && f.store.is_empty() && f.pci.is_empty());
    }

    #[test]
    fn maps_architectures() {
        assert_eq!(kube_arch("x86_64"), "amd64");
        assert_eq!(kube_arch("aarch64"), "arm64");
        assert_eq!(kube_arch("riscv64"), "riscv64");
    }
}
