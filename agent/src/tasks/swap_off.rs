//! The swap_off module: swap off now, and kept off across reboots.

use std::{fs, os::unix::fs::MetadataExt};

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec,
    facts::parse::{is_fstab_swap, parse_swaps},
    fsutil::{Perms, atomic_write, read_optional, read_or_empty},
};

/// Marks the fstab lines this module commented out, so a person can tell why.
pub const FSTAB_MARK: &str = "# kubegrid: ";

/// Turns active swap off and comments out the active swap lines of /etc/fstab.
pub fn apply(ctx: &Ctx) -> Result<Outcome> {
    let mut changes = Vec::new();
    let mut output = String::new();
    let swaps_path = ctx.host("/proc/swaps");
    let active = parse_swaps(&read_or_empty(&swaps_path));
    if !active.is_empty() {
        let devices: Vec<&str> = active.iter().map(|s| s.path.as_str()).collect();
        changes.push(format!("swapoff {}", devices.join(" ")));
        if !ctx.check_mode {
            output.push_str(&exec::run(&["swapoff", "-a"])?.ok_or("")?.tail());
            let left = parse_swaps(&read_or_empty(&swaps_path));
            if !left.is_empty() {
                return Err(Error::SwapStillActive {
                    devices: left
                        .iter()
                        .map(|s| s.path.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
        }
    }
    let fstab = ctx.host("/etc/fstab");
    if let Some(bytes) = read_optional(&fstab)? {
        let text = String::from_utf8_lossy(&bytes);
        let (new, count) = comment_out_swaps(&text);
        if count > 0 {
            let lines = if count == 1 { "line" } else { "lines" };
            changes.push(format!(
                "comment out {count} swap {lines} in {}",
                fstab.display()
            ));
            if !ctx.check_mode {
                let mode = fs::metadata(&fstab).map_or(0o644, |m| m.mode() & 0o7777);
                atomic_write(&fstab, new.as_bytes(), Perms::mode(mode))?;
            }
        }
    }
    Ok(Outcome::from_changes(
        &changes,
        "no swap active or in fstab",
        &output,
    ))
}

/// fstab with each active swap line prefixed by [`FSTAB_MARK`], and how many there were.
pub fn comment_out_swaps(text: &str) -> (String, usize) {
    let mut count = 0;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if is_fstab_swap(line) {
            count += 1;
            out.push_str(FSTAB_MARK);
        }
        out.push_str(line);
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_out_only_active_swap_lines() {
        let text = "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n#/dev/sdb none swap sw 0 0\n/dev/sdc none swap sw 0 0";
        let (new, n) = comment_out_swaps(text);
        assert_eq!(n, 2);
        assert_eq!(
            new,
            "UUID=1 / ext4 defaults 0 1\n# kubegrid: /swapfile none swap sw 0 0\n#/dev/sdb none swap sw 0 0\n# kubegrid: /dev/sdc none swap sw 0 0"
        );
        assert_eq!(comment_out_swaps(&new), (new.clone(), 0));
    }

    #[test]
    fn edits_fstab_when_no_swap_is_active() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("proc/swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n",
        )
        .unwrap();
        fs::write(root.join("etc/fstab"), "/swapfile none swap sw 0 0\n").unwrap();
        let ctx = Ctx {
            store_dir: root.join("store"),
            state_dir: root.join("state"),
            root: root.clone(),
            check_mode: false,
            verified: Default::default(),
        };
        let out = apply(&ctx).unwrap();
        assert!(out.changed);
        assert_eq!(
            fs::read_to_string(root.join("etc/fstab")).unwrap(),
            "# kubegrid: /swapfile none swap sw 0 0\n"
        );
        let again = apply(&ctx).unwrap();
        assert_eq!(again, Outcome::unchanged("no swap active or in fstab"));
    }
}
