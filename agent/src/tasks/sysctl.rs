//! The sysctl module: a sysctl.d file, and the same values applied to the running kernel.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    fsutil::{Perms, atomic_write, read_optional, require_absolute, write_err},
    protocol::SysctlArgs,
};

/// Writes the file when it differs and sets every live value that differs.
pub fn apply(args: &SysctlArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.file)?;
    let mut changes = Vec::new();
    if read_optional(&args.file)?.as_deref() != Some(args.content.as_bytes()) {
        changes.push(format!("write {}", args.file.display()));
        if !ctx.check_mode {
            atomic_write(&args.file, args.content.as_bytes(), Perms::mode(0o644))?;
        }
    }
    for (key, want) in &args.values {
        let path = key_path(ctx, key);
        let seen = read_value(key, &path)?;
        if seen == normalise(want) {
            continue;
        }
        changes.push(format!("set {key} {seen} -> {}", normalise(want)));
        if ctx.check_mode {
            continue;
        }
        fs::write(&path, format!("{want}\n"))
            .map_err(|source| write_err("write", &path, source))?;
        let now = read_value(key, &path)?;
        if now != normalise(want) {
            return Err(Error::SysctlNotApplied {
                key: key.clone(),
                seen: now,
                expected: normalise(want),
            });
        }
    }
    Ok(Outcome::from_changes(
        &changes,
        &format!("{} keys already set", args.values.len()),
        "",
    ))
}

/// /proc/sys/<key with . as />; a key written with slashes is taken as it is.
fn key_path(ctx: &Ctx, key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    ctx.host("/proc/sys").join(rel.trim_start_matches('/'))
}

fn read_value(key: &str, path: &Path) -> Result<String> {
    match read_optional(path)? {
        Some(bytes) => Ok(normalise(&String::from_utf8_lossy(&bytes))),
        None => Err(Error::SysctlMissing {
            key: key.to_string(),
            path: path.to_path_buf(),
        }),
    }
}

/// Multi-field values read back tab-separated ("32768\t60999"); compare them word by word.
fn normalise(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn setup(check_mode: bool) -> (tempfile::TempDir, Ctx, SysctlArgs) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (k, v) in [
            ("net/ipv4/ip_forward", "0\n"),
            ("net/ipv4/ip_local_port_range", "32768\t60999\n"),
        ] {
            let p = root.join("proc/sys").join(k);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        }
        let ctx = Ctx {
            root,
            store_dir: dir.path().join("store"),
            state_dir: dir.path().join("state"),
            check_mode,
            verified: Default::default(),
        };
        let args = SysctlArgs {
            file: dir.path().join("etc/sysctl.d/99-kubegrid.conf"),
            content: "net.ipv4.ip_forward = 1\n".into(),
            values: BTreeMap::from([
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                (
                    "net.ipv4.ip_local_port_range".to_string(),
                    "32768 60999".to_string(),
                ),
            ]),
        };
        (dir, ctx, args)
    }

    #[test]
    fn applies_and_persists_then_is_unchanged() {
        let (_dir, ctx, args) = setup(false);
        let out = apply(&args, &ctx).unwrap();
        assert_eq!(
            out.message,
            format!(
                "write {}, set net.ipv4.ip_forward 0 -> 1",
                args.file.display()
            )
        );
        assert_eq!(fs::read_to_string(&args.file).unwrap(), args.content);
        assert_eq!(
            fs::read_to_string(ctx.host("/proc/sys/net/ipv4/ip_forward")).unwrap(),
            "1\n"
        );
        let again = apply(&args, &ctx).unwrap();
        assert!(!again.changed, "{}", again.message);
    }

    #[test]
    fn check_mode_changes_nothing() {
        let (_dir, ctx, args) = setup(true);
        assert!(apply(&args, &ctx).unwrap().changed);
        assert!(!args.file.exists());
        assert_eq!(
            fs::read_to_string(ctx.host("/proc/sys/net/ipv4/ip_forward")).unwrap(),
            "0\n"
        );
    }

    #[test]
    fn a_missing_key_says_which_module_to_load() {
        let (_dir, ctx, mut args) = setup(false);
        args.values
            .insert("net.bridge.bridge-nf-call-iptables".into(), "1".into());
        let err = apply(&args, &ctx).unwrap_err().to_string();
        assert!(
            err.starts_with("sysctl net.bridge.bridge-nf-call-iptables does not exist"),
            "{err}"
        );
        assert!(err.contains("br_netfilter"), "{err}");
    }
}
