//! Parsers for the kernel's and the OS's text files. Pure, so each is tested on samples.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
};

use super::{Listener, SwapDevice};

/// Active swap areas from /proc/swaps (`Filename Type Size Used Priority`).
pub fn parse_swaps(text: &str) -> Vec<SwapDevice> {
    text.lines()
        .filter(|l| !l.starts_with("Filename"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(SwapDevice {
                path: f.first()?.to_string(),
                size_kib: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// An /etc/fstab line that mounts swap and is not commented out.
pub fn is_fstab_swap(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with('#') && t.split_whitespace().nth(2) == Some("swap")
}

/// The device fields of the active swap lines of /etc/fstab.
pub fn parse_fstab_swaps(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| is_fstab_swap(l))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Listening sockets (state 0A) from /proc/net/tcp or /proc/net/tcp6.
pub fn parse_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some(Listener {
                address: decode_address(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of an address as a hex number in the host's byte
/// order, so the words are read back in that order.
fn decode_address(hex: &str) -> Option<String> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(Ipv4Addr::from(word(0)?).to_string()),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(Ipv6Addr::from(bytes).to_string())
        }
        _ => None,
    }
}

/// One mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: String,
    /// Filesystem type ("cgroup2").
    pub fstype: String,
    /// Per-superblock options ("rw,memory").
    pub super_options: String,
}

/// The mounts listed in /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let mount_point = head.split_whitespace().nth(4)?;
            let mut t = tail.split_whitespace();
            let fstype = t.next()?.to_string();
            let super_options = t.nth(1).unwrap_or_default().to_string();
            Some(Mount {
                mount_point: unescape_octal(mount_point),
                fstype,
                super_options,
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\')
            .then(|| s.get(i + 1..i + 4))
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Controllers attached to a v1 hierarchy, from /proc/cgroups.
pub fn parse_proc_cgroups(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let attached = f.get(1).is_some_and(|h| *h != "0");
            let enabled = f.get(3) == Some(&"1");
            (attached && enabled).then(|| f[0].to_string())
        })
        .collect()
}

/// The module names listed in modules.builtin or modules.dep ("kernel/fs/overlayfs/overlay.ko"
/// or "…/overlay.ko.xz: deps"), normalised with underscores as the kernel names them.
pub fn module_file_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let path = l.split(':').next()?.trim();
            let file = path.rsplit('/').next()?;
            module_name_of_file(file)
        })
        .collect()
}

/// "br_netfilter.ko.zst" → "br_netfilter"; None for a file that is not a module.
pub fn module_name_of_file(file: &str) -> Option<String> {
    let (stem, ext) = file.split_once(".ko")?;
    matches!(ext, "" | ".xz" | ".zst" | ".gz").then(|| normalise_module(stem))
}

/// Module names treat '-' and '_' alike; the kernel shows '_'.
pub fn normalise_module(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /swapfile                               file\t\t1048572\t\t0\t\t-2\n\
                    /dev/sda2                               partition\t2097148\t\t512\t\t-3\n";
        assert_eq!(
            parse_swaps(text),
            vec![
                SwapDevice {
                    path: "/swapfile".into(),
                    size_kib: 1048572
                },
                SwapDevice {
                    path: "/dev/sda2".into(),
                    size_kib: 2097148
                },
            ]
        );
        assert!(parse_swaps("Filename\tType\tSize\tUsed\tPriority\n").is_empty());
    }

    #[test]
    fn finds_uncommented_fstab_swaps() {
        let text = "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n\
                    /swapfile none swap sw 0 0\n#/dev/sdb1 none swap sw 0 0\n\
                    \t/dev/sdc1\tnone\tswap\tsw\t0\t0\n# kubegrid: /dev/sdd none swap sw 0 0\n";
        assert_eq!(parse_fstab_swaps(text), vec!["/swapfile", "/dev/sdc1"]);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_listening_sockets() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n\
            0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n\
            1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 2\n\
            2: 0B3DD50A:0016 0100D50A:C350 01 00000000:00000000 00:00000000 00000000 0 0 3\n";
        assert_eq!(
            parse_listeners(tcp),
            vec![
                Listener {
                    address: "0.0.0.0".into(),
                    port: 22
                },
                Listener {
                    address: "127.0.0.1".into(),
                    port: 3306
                },
            ]
        );
        let tcp6 = "  sl  local_address remote_address st\n\
            0: 00000000000000000000000000000000:1A0B 00000000000000000000000000000000:0000 0A 0\n\
            1: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A 0\n\
            2: 000080FE00000000FF005450B6AC04FE:0016 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(
            parse_listeners(tcp6),
            vec![
                Listener {
                    address: "::".into(),
                    port: 6667
                },
                Listener {
                    address: "::1".into(),
                    port: 3306
                },
                Listener {
                    address: "fe80::5054:ff:fe04:acb6".into(),
                    port: 22
                },
            ]
        );
    }

    #[test]
    fn parses_mountinfo_and_cgroup_controllers() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,mode=755\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n\
            36 31 0:33 / /mnt/with\\040space rw - ext4 /dev/sda1 rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[1],
            Mount {
                mount_point: "/sys/fs/cgroup/memory".into(),
                fstype: "cgroup".into(),
                super_options: "rw,memory".into(),
            }
        );
        assert_eq!(mounts[2].mount_point, "/mnt/with space");
        let cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
            cpuset\t3\t3\t1\ncpu\t1\t3\t1\nrdma\t0\t1\t1\nmemory\t5\t3\t0\n";
        assert_eq!(parse_proc_cgroups(cgroups), vec!["cpuset", "cpu"]);
    }

    #[test]
    fn reads_module_lists() {
        let builtin = "kernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br_netfilter.ko\n";
        let dep = "kernel/net/netfilter/nf_conntrack.ko.zst: kernel/lib/libcrc32c.ko.zst\n\
                   kernel/drivers/net/vxlan/vxlan.ko.xz:\nkernel/fs/ext4/ext4.ko:\n";
        assert_eq!(
            module_file_names(builtin).into_iter().collect::<Vec<_>>(),
            vec!["br_netfilter", "overlay"]
        );
        assert_eq!(
            module_file_names(dep).into_iter().collect::<Vec<_>>(),
            vec!["ext4", "nf_conntrack", "vxlan"]
        );
        assert_eq!(module_name_of_file("ip-vs.ko.gz").as_deref(), Some("ip_vs"));
        assert_eq!(module_name_of_file("modules.dep"), None);
        assert_eq!(module_name_of_file("x.kobj"), None);
    }
}
