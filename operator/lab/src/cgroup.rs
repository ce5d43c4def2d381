//! Per-host cgroups.
//!
//! On a machine with legacy or hybrid cgroups (v1 controllers, as on these build machines)
//! systemd-nspawn mounts the controllers read-only, and runc then fails inside the host.
//! Binding the machine's whole `/sys/fs/cgroup` into every host (the common workaround)
//! makes all hosts' systemd instances manage one shared tree: every host's `ssh.service`
//! lands in the same cgroup. Instead each host gets its own subtree in every hierarchy,
//! nspawn is started inside it, and a tmpfs holding bind mounts of exactly those subtrees
//! becomes the host's `/sys/fs/cgroup`. Each host's systemd then owns a private, writable
//! tree, as on a real machine.
//!
//! On a pure cgroup v2 machine nspawn delegates a writable subtree itself; the host is
//! only started inside its own cgroup.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{Error, Result, mounts};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Hierarchies in which systemd-nspawn moves the container into a `payload` sub-cgroup.
const NSPAWN_PAYLOAD_HIERARCHIES: &[&str] = &["systemd", "unified"];

/// One hierarchy the calling process belongs to.
#[derive(Debug, Clone, PartialEq)]
struct Hierarchy {
    /// Folder name under /sys/fs/cgroup ("memory", "cpu,cpuacct", "systemd", "unified"; empty
    /// for a pure v2 mount at the root).
    dir: String,
    /// The calling process's cgroup in it.
    path: String,
}

fn own_hierarchies() -> Result<Vec<Hierarchy>> {
    let text =
        fs::read_to_string("/proc/self/cgroup").map_err(Error::io("read", "/proc/self/cgroup"))?;
    let unified_dir = if Path::new(CGROUP_ROOT).join("unified").is_dir() {
        "unified"
    } else {
        ""
    };
    Ok(parse(&text, unified_dir))
}

fn parse(text: &str, unified_dir: &str) -> Vec<Hierarchy> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let dir = match controllers {
                "" => unified_dir.to_string(),
                c => c.strip_prefix("name=").unwrap_or(c).to_string(),
            };
            Some(Hierarchy {
                dir,
                path: path.to_string(),
            })
        })
        .collect()
}

/// Whether the machine mounts cgroup v1 controllers (legacy or hybrid mode).
pub fn machine_is_legacy() -> bool {
    Path::new(CGROUP_ROOT).join("systemd").is_dir()
}

/// The cgroups prepared for one host.
#[derive(Debug, Clone)]
pub struct HostCgroups {
    /// The per-host directory in each hierarchy.
    pub dirs: Vec<PathBuf>,
    /// The tree to bind as the host's /sys/fs/cgroup, in legacy mode.
    pub tree: Option<PathBuf>,
}

/// Creates `leaf` (for example `kubegrid-lab/ab12-lab-1`) under the caller's cgroup in every
/// hierarchy and, in legacy mode, assembles `tree` from bind mounts of those directories.
pub fn prepare(leaf: &str, tree: &Path) -> Result<HostCgroups> {
    let mut dirs = Vec::new();
    let legacy = machine_is_legacy();
    if legacy && !mounts::is_mount_point(tree)? {
        fs::create_dir_all(tree).map_err(Error::io("create directory", tree))?;
        mounts::tmpfs(tree)?;
    }
    for h in own_hierarchies()? {
        let parent = Path::new(CGROUP_ROOT)
            .join(&h.dir)
            .join(h.path.trim_start_matches('/'));
        let dir = parent.join(leaf);
        // In the hierarchies systemd manages itself, nspawn puts the container in a `payload`
        // child and roots the container's cgroup namespace there; the container must see
        // exactly that cgroup as its root, or its systemd finds itself at `/../init.scope`
        // and cannot start user sessions.
        let root = if NSPAWN_PAYLOAD_HIERARCHIES.contains(&h.dir.as_str()) {
            dir.join("payload")
        } else {
            dir.clone()
        };
        create_cgroup(&root, h.dir.contains("cpuset"))?;
        if legacy {
            let mount_point = tree.join(&h.dir);
            fs::create_dir_all(&mount_point)
                .map_err(Error::io("create directory", &mount_point))?;
            if !mounts::is_mount_point(&mount_point)? {
                mounts::bind(&root, &mount_point)?;
            }
            // Co-mounted controllers ("cpu,cpuacct") are also reachable by each name.
            for alias in h.dir.split(',').filter(|_| h.dir.contains(',')) {
                let link = tree.join(alias);
                if !link.exists() {
                    std::os::unix::fs::symlink(&h.dir, &link)
                        .map_err(Error::io("create symlink", &link))?;
                }
            }
        }
        dirs.push(dir);
    }
    Ok(HostCgroups {
        dirs,
        tree: legacy.then(|| tree.to_path_buf()),
    })
}

/// mkdir -p for cgroups; a new cpuset level starts with no CPUs or memory nodes and
/// accepts no tasks until it inherits its parent's.
fn create_cgroup(dir: &Path, cpuset: bool) -> Result<()> {
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for level in missing {
        fs::create_dir(level).map_err(Error::io("create cgroup", level))?;
        if cpuset && let Some(up) = level.parent() {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value =
                    fs::read_to_string(up.join(file)).map_err(Error::io("read", up.join(file)))?;
                fs::write(level.join(file), value.trim())
                    .map_err(Error::io("write", level.join(file)))?;
            }
        }
    }
    Ok(())
}

/// Unmounts a host's cgroup tree and removes its cgroup directories, deepest first.
/// Fails if a process is still inside (the kernel refuses to remove a busy cgroup).
pub fn remove(dirs: &[PathBuf], tree: &Path) -> Result<()> {
    mounts::unmount_under(tree)?;
    if tree.exists() {
        fs::remove_dir_all(tree).map_err(Error::io("remove", tree))?;
    }
    for dir in dirs {
        let mut all = Vec::new();
        collect_dirs(dir, &mut all);
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in all {
            fs::remove_dir(&d).map_err(Error::io("remove cgroup", &d))?;
        }
        // The shared `kubegrid-lab` parent goes once its last host is gone.
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    out.push(dir.to_path_buf());
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}

/// The pids in a cgroup and all its children.
pub fn pids(dir: &Path) -> Vec<u32> {
    let mut all = Vec::new();
    collect_dirs(dir, &mut all);
    all.iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_and_unified_layouts() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
        let h = parse(hybrid, "unified");
        assert_eq!(h.len(), 4);
        assert_eq!(
            h[0],
            Hierarchy {
                dir: "systemd".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            h[1],
            Hierarchy {
                dir: "memory".into(),
                path: "/process_api/abc".into()
            }
        );
        assert_eq!(h[2].dir, "cpu,cpuacct");
        assert_eq!(h[3].dir, "unified");
        let v2 = parse("0::/user.slice/session-1.scope\n", "");
        assert_eq!(
            v2,
            vec![Hierarchy {
                dir: "".into(),
                path: "/user.slice/session-1.scope".into()
            }]
        );
    }
}
