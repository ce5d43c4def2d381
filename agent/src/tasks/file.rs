//! The file module: a whole file's content, mode and owner.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use nix::unistd::{Group, User};

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    fsutil::{Perms, atomic_write, read_optional, require_absolute, unix_ms, write_err},
    protocol::FileArgs,
};

/// Makes `args.path` hold exactly `args.content` with the mode and owner asked for.
pub fn apply(args: &FileArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.path)?;
    let uid = resolve("user", &args.owner, |n| {
        User::from_name(n).map(|u| u.map(|u| u.uid.as_raw()))
    })?;
    let gid = resolve("group", &args.group, |n| {
        Group::from_name(n).map(|g| g.map(|g| g.gid.as_raw()))
    })?;
    let want = Perms {
        mode: args.mode & 0o7777,
        uid: Some(uid),
        gid: Some(gid),
    };
    let diff = diff(&args.path, args.content.as_bytes(), want)?;
    let Some(diff) = diff else {
        return Ok(Outcome::unchanged(format!(
            "{} is up to date",
            args.path.display()
        )));
    };
    let message = format!(
        "write {}: {}",
        args.path.display(),
        diff.describe(&args.owner, &args.group)
    );
    if !ctx.check_mode {
        if diff.content_changed {
            if let (true, Some(old)) = (args.backup, &diff.old_content) {
                backup(&args.path, old, ctx)?;
            }
            atomic_write(&args.path, args.content.as_bytes(), want)?;
        } else {
            // Same bytes: fix the metadata in place rather than rewrite the file.
            std::os::unix::fs::chown(&args.path, want.uid, want.gid)
                .map_err(|source| write_err("chown", &args.path, source))?;
            fs::set_permissions(&args.path, fs::Permissions::from_mode(want.mode))
                .map_err(|source| write_err("chmod", &args.path, source))?;
        }
    }
    Ok(Outcome {
        changed: true,
        message,
        output: String::new(),
    })
}

fn resolve(
    kind: &'static str,
    name: &str,
    lookup: impl Fn(&str) -> nix::Result<Option<u32>>,
) -> Result<u32> {
    match lookup(name) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Error::UnknownOwner {
            kind,
            name: name.to_string(),
        }),
        Err(source) => Err(Error::LookupOwner {
            kind,
            name: name.to_string(),
            source,
        }),
    }
}

/// How a file differs from what is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Diff {
    /// The current bytes, when the file exists.
    old_content: Option<Vec<u8>>,
    new_len: usize,
    content_changed: bool,
    old_mode: Option<u32>,
    new_mode: u32,
    old_owner: Option<(u32, u32)>,
    new_owner: (u32, u32),
}

impl Diff {
    fn describe(&self, owner: &str, group: &str) -> String {
        let Some(old) = &self.old_content else {
            return format!(
                "create ({} bytes, mode {:04o}, {owner}:{group})",
                self.new_len, self.new_mode
            );
        };
        let mut parts = Vec::new();
        if self.content_changed {
            parts.push(format!("content {} -> {} bytes", old.len(), self.new_len));
        }
        if let Some(m) = self.old_mode.filter(|m| *m != self.new_mode) {
            parts.push(format!("mode {m:04o} -> {:04o}", self.new_mode));
        }
        if let Some((u, g)) = self.old_owner.filter(|o| *o != self.new_owner) {
            parts.push(format!("owner {u}:{g} -> {owner}:{group}"));
        }
        parts.join(", ")
    }
}

/// None when the file already matches.
fn diff(path: &Path, content: &[u8], want: Perms) -> Result<Option<Diff>> {
    let new_owner = (want.uid.unwrap_or(0), want.gid.unwrap_or(0));
    let old_content = read_optional(path)?;
    let meta = match &old_content {
        Some(_) => Some(fs::metadata(path).map_err(|source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        })?),
        None => None,
    };
    let old_mode = meta.as_ref().map(|m| m.mode() & 0o7777);
    let old_owner = meta.as_ref().map(|m| (m.uid(), m.gid()));
    let content_changed = old_content.as_deref() != Some(content);
    if !content_changed && old_mode == Some(want.mode) && old_owner == Some(new_owner) {
        return Ok(None);
    }
    Ok(Some(Diff {
        old_content,
        new_len: content.len(),
        content_changed,
        old_mode,
        new_mode: want.mode,
        old_owner,
        new_owner,
    }))
}

/// Keeps `old` as `<state>/backup/<path with / as %>.<unix ms>` before it is replaced.
fn backup(path: &Path, old: &[u8], ctx: &Ctx) -> Result<PathBuf> {
    let name = path.to_string_lossy().replace('/', "%");
    let dest = ctx
        .state_dir
        .join("backup")
        .join(format!("{name}.{}", unix_ms()));
    atomic_write(&dest, old, Perms::mode(0o600))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ctx_in;

    struct Env {
        _dir: tempfile::TempDir,
        ctx: Ctx,
        path: PathBuf,
    }

    fn env(check_mode: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path(), check_mode);
        let path = dir.path().join("etc/containerd/config.toml");
        Env {
            _dir: dir,
            ctx,
            path,
        }
    }

    fn args(path: &Path, content: &str, mode: u32) -> FileArgs {
        FileArgs {
            path: path.to_path_buf(),
            content: content.into(),
            mode,
            owner: "root".into(),
            group: "root".into(),
            backup: true,
        }
    }

    fn backups(ctx: &Ctx) -> Vec<(String, String)> {
        let Ok(entries) = fs::read_dir(ctx.state_dir.join("backup")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }

    #[test]
    fn creates_then_reports_unchanged() {
        let e = env(false);
        let a = args(&e.path, "version = 2\n", 0o644);
        let first = apply(&a, &e.ctx).unwrap();
        assert!(first.changed);
        assert_eq!(
            first.message,
            format!(
                "write {}: create (12 bytes, mode 0644, root:root)",
                e.path.display()
            )
        );
        assert_eq!(fs::read_to_string(&e.path).unwrap(), "version = 2\n");
        assert_eq!(fs::metadata(&e.path).unwrap().mode() & 0o7777, 0o644);
        let second = apply(&a, &e.ctx).unwrap();
        assert!(!second.changed, "{}", second.message);
        assert!(backups(&e.ctx).is_empty(), "nothing existed to back up");
    }

    #[test]
    fn replaces_content_and_keeps_a_backup() {
        let e = env(false);
        apply(&args(&e.path, "old\n", 0o600), &e.ctx).unwrap();
        let out = apply(&args(&e.path, "newer\n", 0o644), &e.ctx).unwrap();
        assert!(
            out.message
                .ends_with("content 4 -> 6 bytes, mode 0600 -> 0644"),
            "{}",
            out.message
        );
        assert_eq!(fs::read_to_string(&e.path).unwrap(), "newer\n");
        let b = backups(&e.ctx);
        assert_eq!(b.len(), 1);
        let prefix = format!("{}.", e.path.to_string_lossy().replace('/', "%"));
        assert!(b[0].0.starts_with(&prefix), "{}", b[0].0);
        assert_eq!(b[0].1, "old\n");
    }

    #[test]
    fn fixes_mode_without_a_backup() {
        let e = env(false);
        apply(&args(&e.path, "same\n", 0o600), &e.ctx).unwrap();
        let out = apply(&args(&e.path, "same\n", 0o640), &e.ctx).unwrap();
        assert!(
            out.message.ends_with(": mode 0600 -> 0640"),
            "{}",
            out.message
        );
        assert_eq!(fs::metadata(&e.path).unwrap().mode() & 0o7777, 0o640);
        assert!(backups(&e.ctx).is_empty());
    }

    #[test]
    fn fixes_the_owner() {
        let e = env(false);
        apply(&args(&e.path, "x", 0o644), &e.ctx).unwrap();
        std::os::unix::fs::chown(&e.path, Some(65534), Some(65534)).unwrap();
        let out = apply(&args(&e.path, "x", 0o644), &e.ctx).unwrap();
        assert!(
            out.message.ends_with(": owner 65534:65534 -> root:root"),
            "{}",
            out.message
        );
        assert_eq!(fs::metadata(&e.path).unwrap().uid(), 0);
    }

    #[test]
    fn check_mode_reports_without_writing() {
        let e = env(true);
        let out = apply(&args(&e.path, "x", 0o644), &e.ctx).unwrap();
        assert!(out.changed);
        assert!(!e.path.exists());
    }

    #[test]
    fn refuses_unknown_owners_and_relative_paths() {
        let e = env(false);
        let mut a = args(&e.path, "x", 0o644);
        a.owner = "kubegrid-no-such-user".into();
        assert_eq!(
            apply(&a, &e.ctx).unwrap_err().to_string(),
            "user \"kubegrid-no-such-user\" does not exist on this host; hint: create it first or use an existing user"
        );
        let rel = args(Path::new("etc/x"), "x", 0o644);
        assert!(matches!(
            apply(&rel, &e.ctx),
            Err(Error::RelativePath { .. })
        ));
        assert!(!e.path.exists());
    }
}
