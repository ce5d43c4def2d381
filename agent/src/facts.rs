//! Host facts, read from the kernel's and the OS's own files.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{Deserialize, Serialize};

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

/// Gathers facts from the files under `root` ("/" on a real host; tests pass a fake tree).
pub fn gather(root: &Path) -> Facts {
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap_or_default();
    let os = parse_os_release(&read("etc/os-release"));
    Facts {
        hostname: read("proc/sys/kernel/hostname").trim().to_string(),
        machine_id: read("etc/machine-id").trim().to_string(),
        os_id: os.get("ID").cloned().unwrap_or_default(),
        os_version: os.get("VERSION_ID").cloned().unwrap_or_default(),
        arch: kube_arch(std::env::consts::ARCH).to_string(),
        kernel: read("proc/sys/kernel/osrelease").trim().to_string(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_mib: parse_mem_total_kib(&read("proc/meminfo")) / 1024,
        ..Facts::default()
    }
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
    use super::*;

    #[test]
    fn reads_facts_from_a_host_tree() {
        let dir = tempfile_dir();
        let w = |p: &str, s: &str| {
            let path = dir.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, s).unwrap();
        };
        w(
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        w("etc/machine-id", "abc123\n");
        w("proc/sys/kernel/hostname", "lab-1\n");
        w("proc/sys/kernel/osrelease", "6.1.0-13-amd64\n");
        w(
            "proc/meminfo",
            "MemTotal:       24683808 kB\nMemFree: 1 kB\n",
        );
        let f = gather(&dir);
        assert_eq!(f.hostname, "lab-1");
        assert_eq!(f.machine_id, "abc123");
        assert_eq!((f.os_id.as_str(), f.os_version.as_str()), ("debian", "12"));
        assert_eq!(f.kernel, "6.1.0-13-amd64");
        assert_eq!(f.memory_mib, 24105);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn maps_architectures() {
        assert_eq!(kube_arch("x86_64"), "amd64");
        assert_eq!(kube_arch("aarch64"), "arm64");
        assert_eq!(kube_arch("riscv64"), "riscv64");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kubegrid-agent-facts-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
