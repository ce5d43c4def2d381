//! Host facts, read from the kernel's and the OS's own files.

use std::{collections::BTreeMap, fs, path::Path};

use serde::Serialize;

/// What the agent reports about its host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The hostname.
    pub hostname: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// `ID` from os-release ("debian").
    pub os_id: String,
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
