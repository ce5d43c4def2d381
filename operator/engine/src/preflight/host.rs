//! Checks that look at one host at a time.

use kubegrid_agent::facts::ModuleState;

use kubegrid_plan::PREFLIGHT_DISKS;

use super::{Check, Finding, Subject};

/// Minimum free space under /var/lib, where containerd keeps images and snapshots.
const MIN_DISK_BYTES: u64 = 2 << 30;

pub(super) fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(Os),
        Box::new(Arch),
        Box::new(Resources),
        Box::new(Swap),
        Box::new(Cgroup),
        Box::new(Disk),
        Box::new(Modules),
        Box::new(super::runtime::RuntimeConflict),
    ]
}

pub(super) fn each(
    hosts: &[Subject<'_>],
    check: &'static str,
    f: impl Fn(&Subject<'_>) -> Option<(String, String, String)>,
) -> Vec<Finding> {
    hosts
        .iter()
        .filter_map(|h| {
            f(h).map(|(seen, expected, hint)| Finding {
                host: h.name.to_string(),
                check,
                seen,
                expected,
                hint,
            })
        })
        .collect()
}

struct Os;
impl Check for Os {
    fn name(&self) -> &'static str {
        "os"
    }
    fn describe(&self) -> &'static str {
        "a supported distribution and release, booted with systemd"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let f = h.facts;
            let major = f.os_version.split('.').next().unwrap_or("");
            let rhel_like = f.os_id == "rhel" || f.os_like.iter().any(|l| l == "rhel");
            let supported = match f.os_id.as_str() {
                "debian" => ["11", "12", "13"].contains(&major),
                "ubuntu" => ["22.04", "24.04"].contains(&f.os_version.as_str()),
                _ if rhel_like => ["8", "9", "10"].contains(&major),
                _ => false,
            };
            if !supported {
                return Some((
                    format!("{} {}", f.os_id, f.os_version),
                    "Debian 11-13, Ubuntu 22.04/24.04, or RHEL-compatible 8-10".into(),
                    "use a supported OS, or --skip-check os to try anyway".into(),
                ));
            }
            (f.init != "systemd").then(|| {
                (
                    format!("init {:?}", f.init),
                    "systemd as PID 1".into(),
                    "kubegrid manages services with systemd".into(),
                )
            })
        })
    }
}

struct Arch;
impl Check for Arch {
    fn name(&self) -> &'static str {
        "arch"
    }
    fn describe(&self) -> &'static str {
        "amd64 or arm64, and what the Node's spec.arch says"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let arch = h.facts.arch.as_str();
            if !["amd64", "arm64"].contains(&arch) {
                return Some((
                    arch.into(),
                    "amd64 or arm64".into(),
                    "kubegrid supports amd64 and arm64 hosts".into(),
                ));
            }
            match h.declared_arch {
                Some(d) if d != arch => Some((
                    arch.into(),
                    format!("{d} (spec.arch)"),
                    "fix spec.arch, or drop it to use the detected one".into(),
                )),
                _ => None,
            }
        })
    }
}

struct Resources;
impl Check for Resources {
    fn name(&self) -> &'static str {
        "resources"
    }
    fn describe(&self) -> &'static str {
        "CPUs and memory meet the minimum for the host's roles"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            // kubeadm's own minimums for a control-plane node; others just need headroom.
            let (cpus, mib) = if h.has_role("control-plane") {
                (2, 1700)
            } else {
                (1, 1024)
            };
            let f = h.facts;
            (f.cpus < cpus || f.memory_mib < mib).then(|| {
                (
                    format!("{} CPUs, {} MiB", f.cpus, f.memory_mib),
                    format!(
                        "at least {cpus} CPUs and {mib} MiB for roles {}",
                        h.roles.join(",")
                    ),
                    "give the host more CPU or memory".into(),
                )
            })
        })
    }
}

struct Swap;
impl Check for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }
    fn describe(&self) -> &'static str {
        "active swap can be turned off for good (it comes from /etc/fstab)"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            // Swap from fstab is turned off by os-prepare; swap from anywhere else (zram,
            // systemd .swap units) would come back at the next boot and break the kubelet.
            let stray: Vec<&str> = h
                .facts
                .swaps
                .iter()
                .map(|s| s.path.as_str())
                .filter(|p| !h.facts.fstab_swaps.iter().any(|f| f == p))
                .collect();
            (!stray.is_empty()).then(|| {
                (
                    format!("swap on {} not listed in /etc/fstab", stray.join(", ")),
                    "no swap, or swap only from /etc/fstab".into(),
                    "disable the zram generator or the systemd .swap unit that creates it".into(),
                )
            })
        })
    }
}

struct Cgroup;
impl Check for Cgroup {
    fn name(&self) -> &'static str {
        "cgroup"
    }
    fn describe(&self) -> &'static str {
        "cgroups mounted and writable, with the cpu, memory and pids controllers"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let c = &h.facts.cgroup;
            let missing: Vec<&str> = ["cpu", "memory", "pids"]
                .into_iter()
                .filter(|n| !c.controllers.iter().any(|have| have == n))
                .collect();
            if c.version == 0 || !missing.is_empty() || !c.writable {
                Some((
                    format!(
                        "cgroup v{} controllers [{}]{}",
                        c.version,
                        c.controllers.join(","),
                        if c.writable { "" } else { ", read-only" }
                    ),
                    "cgroup v1 or v2, writable, with cpu, memory and pids".into(),
                    "enable the missing controllers on the kernel command line (cgroup_enable=memory)".into(),
                ))
            } else {
                None
            }
        })
    }
}

struct Disk;
impl Check for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }
    fn describe(&self) -> &'static str {
        "at least 2 GiB free under /var/lib"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            // A path the agent could not measure is left out of its report; no report is no
            // evidence of space, so it fails rather than passing unchecked.
            let unmeasured: Vec<&str> = PREFLIGHT_DISKS
                .iter()
                .copied()
                .filter(|p| !h.facts.disks.iter().any(|d| d.path == *p))
                .collect();
            if !unmeasured.is_empty() {
                return Some((
                    format!("no free-space report for {}", unmeasured.join(", ")),
                    format!("at least {} MiB free, as measured by the agent", MIN_DISK_BYTES >> 20),
                    "check that the path exists and statvfs works on it (a missing or unreadable mount), or --skip-check disk to try anyway".into(),
                ));
            }
            let low: Vec<String> = h
                .facts
                .disks
                .iter()
                .filter(|d| d.available_bytes < MIN_DISK_BYTES)
                .map(|d| format!("{} MiB free on {}", d.available_bytes >> 20, d.path))
                .collect();
            (!low.is_empty()).then(|| {
                (
                    low.join(", "),
                    format!("at least {} MiB", MIN_DISK_BYTES >> 20),
                    "free space under /var/lib".into(),
                )
            })
        })
    }
}

struct Modules;
impl Check for Modules {
    fn name(&self) -> &'static str {
        "kernel-modules"
    }
    fn describe(&self) -> &'static str {
        "the kernel modules the playbook loads (overlay, br_netfilter, ...) are loaded, built in or loadable"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let missing: Vec<&str> = h
                .facts
                .modules
                .iter()
                .filter(|(_, state)| **state == ModuleState::Missing)
                .map(|(m, _)| m.as_str())
                .collect();
            (!missing.is_empty()).then(|| {
                (
                    format!("{} missing", missing.join(", ")),
                    "each loaded, built in, or present under /lib/modules".into(),
                    "install the kernel's extra modules package (linux-modules-extra-*)".into(),
                )
            })
        })
    }
}
