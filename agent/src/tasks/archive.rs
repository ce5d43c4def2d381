//! The archive module: a tar.gz from the blob store, unpacked into a directory.
//!
//! The system `tar` does the unpacking (every supported host has GNU tar), which keeps the
//! agent free of compression crates. Whether an archive is already in place cannot be read
//! off the directory, which other things write to too, so a stamp under the agent's state
//! dir records which archive was unpacked and which files it brought. The stamp is written
//! last: a run killed halfway unpacks again next time.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Ctx, Outcome, require_blob_name};
use crate::{
    error::{Error, Result},
    exec,
    fsutil::{Perms, atomic_write, read_optional, require_absolute, short_sha as short, write_err},
    protocol::ArchiveArgs,
};

/// What a stamp file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    /// The archive last unpacked there.
    sha256: String,
    /// Its non-directory members, relative to the destination.
    files: Vec<String>,
}

/// Unpacks the archive into `args.dest` unless the stamp says it is there and complete.
pub fn apply(args: &ArchiveArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.dest)?;
    let what = format!("archive for {}", args.dest.display());
    require_blob_name(&args.sha256, &what)?;
    let stamp_path = stamp_path(ctx, &args.dest);
    let why = match read_stamp(&stamp_path)? {
        None => "not unpacked before".to_string(),
        Some(s) if s.sha256 != args.sha256 => format!("replacing {}", short(&s.sha256)),
        Some(s) => {
            let missing: Vec<&String> = s
                .files
                .iter()
                .filter(|f| fs::symlink_metadata(args.dest.join(f)).is_err())
                .collect();
            if missing.is_empty() {
                return Ok(Outcome::unchanged(format!(
                    "{} holds archive {} ({} files)",
                    args.dest.display(),
                    short(&args.sha256),
                    s.files.len()
                )));
            }
            format!(
                "{} of {} files missing, e.g. {}",
                missing.len(),
                s.files.len(),
                missing[0]
            )
        }
    };
    let message = format!(
        "unpack archive {} into {} ({why})",
        short(&args.sha256),
        args.dest.display()
    );
    if ctx.check_mode {
        return Ok(Outcome {
            changed: true,
            message,
            output: String::new(),
        });
    }
    let blob = ctx.verified_blob(&args.sha256, &what)?;
    let files = safe_members(&blob, &args.sha256, &args.dest)?;
    create_dest(&args.dest)?;
    let untar = exec::run(&[
        "tar",
        "-xzf",
        &blob.to_string_lossy(),
        "-C",
        &args.dest.to_string_lossy(),
        // Root would otherwise keep the archive's owners, and an existing directory's mode
        // would follow the archive's "./" entry.
        "--no-same-owner",
        "--no-overwrite-dir",
    ])?
    .ok_or("the blob must be a gzip-compressed tar")?;
    let stamp = Stamp {
        sha256: args.sha256.clone(),
        files,
    };
    let json =
        serde_json::to_vec(&stamp).map_err(|e| write_err("encode", &stamp_path, e.into()))?;
    atomic_write(&stamp_path, &json, Perms::mode(0o644))?;
    Ok(Outcome {
        changed: true,
        message: format!("{message}: {} files", stamp.files.len()),
        output: untar.tail(),
    })
}

/// `<state>/archives/<dest with / as %>`.
fn stamp_path(ctx: &Ctx, dest: &Path) -> PathBuf {
    let name = dest.to_string_lossy().replace('/', "%");
    ctx.state_dir.join("archives").join(name)
}

/// The stamp, or None when there is none or it cannot be understood (then the archive is
/// simply unpacked again).
fn read_stamp(path: &Path) -> Result<Option<Stamp>> {
    Ok(read_optional(path)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The archive's non-directory members, after refusing any that would land outside `dest`.
fn safe_members(blob: &Path, sha256: &str, dest: &Path) -> Result<Vec<String>> {
    let list = exec::run(&["tar", "-tzf", &blob.to_string_lossy()])?
        .ok_or("the blob must be a gzip-compressed tar")?;
    let mut files = Vec::new();
    for member in list.stdout.lines().filter(|l| !l.is_empty()) {
        let escapes = member.starts_with('/')
            || Path::new(member)
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::RootDir));
        if escapes {
            return Err(Error::UnsafeArchiveMember {
                sha256: sha256.to_string(),
                member: member.to_string(),
                dest: dest.to_path_buf(),
            });
        }
        if member.ends_with('/') {
            continue;
        }
        let rel = member.trim_start_matches("./");
        if !rel.is_empty() {
            files.push(rel.to_string());
        }
    }
    Ok(files)
}

/// Creates `dest` 0755 (whatever the umask) when missing; an existing one is left as it is.
fn create_dest(dest: &Path) -> Result<()> {
    if dest.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dest)
        .map_err(|source| write_err("create directory", dest, source))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
        .map_err(|source| write_err("chmod", dest, source))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::{
        fsutil::sha256_file,
        testutil::{ctx_in, write},
    };

    struct Env {
        dir: tempfile::TempDir,
        ctx: Ctx,
        dest: PathBuf,
    }

    fn env(check_mode: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path(), check_mode);
        fs::create_dir_all(&ctx.store_dir).unwrap();
        let dest = dir.path().join("opt/cni/bin");
        Env { dir, ctx, dest }
    }

    /// A tar.gz of `files` (relative path, content) made with `tar` run in `src` with the
    /// extra `args`, stored as a blob; returns its sha256.
    fn archive(e: &Env, name: &str, files: &[(&str, &str)], members: &[&str]) -> String {
        let src = e.dir.path().join(format!("src-{name}"));
        for (rel, content) in files {
            write(&src, rel, content);
        }
        let tgz = e.dir.path().join(format!("{name}.tgz"));
        let mut argv = vec![
            "tar".to_string(),
            "-czPf".into(),
            tgz.to_string_lossy().into_owned(),
            "-C".into(),
            src.to_string_lossy().into_owned(),
        ];
        argv.extend(members.iter().map(|m| m.to_string()));
        let ran = exec::run_with(&argv, &Default::default(), None).unwrap();
        assert!(ran.success(), "{}", ran.tail());
        let sha = sha256_file(&tgz).unwrap();
        fs::copy(&tgz, e.ctx.blob(&sha)).unwrap();
        sha
    }

    fn cni(e: &Env, name: &str, bridge: &str) -> String {
        archive(
            e,
            name,
            &[
                ("bridge", bridge),
                ("loopback", "lo"),
                ("LICENSE", "apache"),
            ],
            &["."],
        )
    }

    fn args(e: &Env, sha256: &str) -> ArchiveArgs {
        ArchiveArgs {
            sha256: sha256.to_string(),
            dest: e.dest.clone(),
        }
    }

    #[test]
    fn unpacks_once_and_records_a_stamp() {
        let e = env(false);
        let sha = cni(&e, "v1", "bridge-v1");
        let first = apply(&args(&e, &sha), &e.ctx).unwrap();
        assert!(first.changed);
        assert_eq!(
            first.message,
            format!(
                "unpack archive {} into {} (not unpacked before): 3 files",
                &sha[..12],
                e.dest.display()
            )
        );
        assert_eq!(
            fs::read_to_string(e.dest.join("bridge")).unwrap(),
            "bridge-v1"
        );
        assert_eq!(fs::metadata(&e.dest).unwrap().mode() & 0o7777, 0o755);
        let stamp = read_stamp(&stamp_path(&e.ctx, &e.dest)).unwrap().unwrap();
        assert_eq!(stamp.sha256, sha);
        let mut files = stamp.files.clone();
        files.sort();
        assert_eq!(files, vec!["LICENSE", "bridge", "loopback"]);
        let name = e.dest.to_string_lossy().replace('/', "%");
        assert!(e.ctx.state_dir.join("archives").join(name).is_file());
        let second = apply(&args(&e, &sha), &e.ctx).unwrap();
        assert!(!second.changed, "{}", second.message);
    }

    #[test]
    fn a_missing_file_or_a_new_archive_unpacks_again() {
        let e = env(false);
        let v1 = cni(&e, "v1", "bridge-v1");
        apply(&args(&e, &v1), &e.ctx).unwrap();
        fs::remove_file(e.dest.join("loopback")).unwrap();
        let repaired = apply(&args(&e, &v1), &e.ctx).unwrap();
        assert!(
            repaired
                .message
                .contains("(1 of 3 files missing, e.g. loopback)"),
            "{}",
            repaired.message
        );
        assert!(e.dest.join("loopback").is_file());
        let v2 = cni(&e, "v2", "bridge-v2");
        let upgraded = apply(&args(&e, &v2), &e.ctx).unwrap();
        assert!(
            upgraded
                .message
                .contains(&format!("(replacing {})", &v1[..12])),
            "{}",
            upgraded.message
        );
        assert_eq!(
            fs::read_to_string(e.dest.join("bridge")).unwrap(),
            "bridge-v2"
        );
        assert!(!apply(&args(&e, &v2), &e.ctx).unwrap().changed);
    }

    #[test]
    fn refuses_members_that_escape_the_destination() {
        let e = env(false);
        let outside = e.dir.path().join("src-abs/evil");
        write(e.dir.path(), "src-abs/evil", "x");
        let absolute = archive(&e, "abs", &[], &[&outside.to_string_lossy()]);
        let climbing = archive(
            &e,
            "climb",
            &[("sub/keep", "k")],
            &["sub/keep", "../src-abs/evil"],
        );
        for sha in [absolute, climbing] {
            let err = apply(&args(&e, &sha), &e.ctx).unwrap_err();
            assert!(matches!(err, Error::UnsafeArchiveMember { .. }), "{err}");
            assert!(err.to_string().contains("nothing was unpacked"), "{err}");
        }
        assert!(!e.dest.exists(), "nothing is unpacked");
        assert!(!stamp_path(&e.ctx, &e.dest).exists());
    }

    #[test]
    fn check_mode_reports_without_unpacking() {
        let e = env(true);
        let out = apply(&args(&e, &"e".repeat(64)), &e.ctx).unwrap();
        assert!(out.changed);
        assert!(
            out.message.contains("(not unpacked before)"),
            "{}",
            out.message
        );
        assert!(!e.dest.exists() && !e.ctx.state_dir.exists());
    }

    #[test]
    fn a_missing_blob_or_a_relative_dest_fails() {
        let e = env(false);
        let err = apply(&args(&e, &"f".repeat(64)), &e.ctx).unwrap_err();
        assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
        let rel = ArchiveArgs {
            sha256: "f".repeat(64),
            dest: "opt/cni/bin".into(),
        };
        assert!(matches!(
            apply(&rel, &e.ctx),
            Err(Error::RelativePath { .. })
        ));
    }
}
