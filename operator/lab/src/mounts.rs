//! Mounts the lab makes on the machine: host overlays and per-host cgroup trees.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::{Error, Result};

/// Mount points at or below `path`, deepest first, as `/proc/self/mountinfo` lists them.
pub fn mounted_under(path: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("read", "/proc/self/mountinfo"))?;
    let mut found: Vec<PathBuf> = parse_mount_points(&info)
        .into_iter()
        .filter(|p| p.starts_with(path))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// Whether `path` itself is a mount point.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mounted_under(path)?.iter().any(|p| p == path))
}

fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

/// Undoes the octal escapes (`\040` for a space) the kernel uses in mountinfo.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything at or below `path`, deepest first.
pub fn unmount_under(path: &Path) -> Result<()> {
    for point in mounted_under(path)? {
        // Detach lazily: a mount still referenced by an exiting process must not make
        // teardown fail; it disappears once the last reference goes.
        umount2(&point, MntFlags::MNT_DETACH).map_err(Error::sys("unmount", &point))?;
    }
    Ok(())
}

/// Mounts an overlay of `lower` and `upper` on `target`.
pub fn overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(Error::sys("mount overlay on", target))
}

/// Mounts a small tmpfs on `target`.
pub fn tmpfs(target: &Path) -> Result<()> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=64k"),
    )
    .map_err(Error::sys("mount tmpfs on", target))
}

/// Bind-mounts `source` on `target`.
pub fn bind(source: &Path, target: &Path) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(Error::sys("bind-mount onto", target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes_mount_points() {
        let info = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            parse_mount_points(info),
            vec![PathBuf::from("/mnt/with space"), PathBuf::from("/proc")]
        );
    }

    #[test]
    fn root_and_proc_are_mount_points_here() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let under = mounted_under(Path::new("/proc")).unwrap();
        assert!(under.contains(&PathBuf::from("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self/kubegrid-none")).unwrap());
    }
}
