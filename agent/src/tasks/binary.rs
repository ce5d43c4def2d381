//! The binary module: an executable from the blob store, installed at a path.
//!
//! Kubernetes ships kubeadm, kubelet and kubectl as bare executables rather than packages,
//! so they travel as blobs and land here. The file is streamed into a temp file beside the
//! destination and hashed on the way, so a blob that went bad in the store is caught
//! before it replaces anything.

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::Path,
};

use sha2::{Digest, Sha256};

use super::{Ctx, Outcome, require_blob_name};
use crate::{
    error::{Error, Result},
    fsutil::{
        Perms, atomic_write_with, require_absolute, sha256_file, short_sha as short, write_err,
    },
    protocol::BinaryArgs,
};

/// Binaries are owned by root: anyone else could swap the kubelet under systemd's feet.
const ROOT: (u32, u32) = (0, 0);

/// Makes `args.path` hold the blob's bytes with `args.mode`, owned by root.
pub fn apply(args: &BinaryArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.path)?;
    let what = format!("binary {}", args.path.display());
    require_blob_name(&args.sha256, &what)?;
    let mode = args.mode & 0o7777;
    let current = Current::read(&args.path)?;
    let changes = current.changes(&args.sha256, mode);
    if changes.is_empty() {
        return Ok(Outcome::unchanged(format!(
            "{} is up to date (sha256 {})",
            args.path.display(),
            short(&args.sha256)
        )));
    }
    let message = format!("install {}: {}", args.path.display(), changes.join(", "));
    if !ctx.check_mode {
        let perms = Perms {
            mode,
            uid: Some(ROOT.0),
            gid: Some(ROOT.1),
        };
        if current.sha256.as_deref() == Some(args.sha256.as_str()) {
            // Same bytes: fix the metadata in place rather than rewrite a running binary.
            std::os::unix::fs::chown(&args.path, perms.uid, perms.gid)
                .map_err(|source| write_err("chown", &args.path, source))?;
            fs::set_permissions(&args.path, fs::Permissions::from_mode(mode))
                .map_err(|source| write_err("chmod", &args.path, source))?;
        } else {
            install(ctx, &args.sha256, &what, &args.path, perms)?;
        }
    }
    Ok(Outcome {
        changed: true,
        message,
        output: String::new(),
    })
}

/// What lies at the destination now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    /// "nothing", "a symlink", "a directory"... when it is not a regular file.
    not_a_file: Option<&'static str>,
    sha256: Option<String>,
    mode: u32,
    owner: (u32, u32),
}

impl Current {
    fn read(path: &Path) -> Result<Self> {
        let read_err = |source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        };
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    not_a_file: Some("nothing"),
                    sha256: None,
                    mode: 0,
                    owner: ROOT,
                });
            }
            Err(e) => return Err(read_err(e)),
        };
        let not_a_file = not_a_file(meta.file_type());
        let sha256 = match not_a_file {
            None => Some(sha256_file(path).map_err(read_err)?),
            Some(_) => None,
        };
        Ok(Self {
            not_a_file,
            sha256,
            mode: meta.mode() & 0o7777,
            owner: (meta.uid(), meta.gid()),
        })
    }

    /// What differs from the blob `sha256` with `mode`; empty when nothing does.
    fn changes(&self, sha256: &str, mode: u32) -> Vec<String> {
        if let Some(kind) = self.not_a_file {
            let verb = if kind == "nothing" {
                "create".to_string()
            } else {
                format!("replace {kind}")
            };
            return vec![format!(
                "{verb} (sha256 {}, mode {mode:04o})",
                short(sha256)
            )];
        }
        let mut changes = Vec::new();
        if let Some(old) = self.sha256.as_deref().filter(|old| *old != sha256) {
            changes.push(format!("sha256 {} -> {}", short(old), short(sha256)));
        }
        if self.mode != mode {
            changes.push(format!("mode {:04o} -> {mode:04o}", self.mode));
        }
        if self.owner != ROOT {
            changes.push(format!(
                "owner {}:{} -> root:root",
                self.owner.0, self.owner.1
            ));
        }
        changes
    }
}

/// What the file type is, when it is not a regular file.
fn not_a_file(kind: fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some("a symlink")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_socket() || kind.is_fifo() {
        Some("a socket or fifo")
    } else {
        Some("a device")
    }
}

/// Streams the blob into place, hashing it on the way; a mismatch leaves `dest` untouched.
fn install(ctx: &Ctx, sha256: &str, what: &str, dest: &Path, perms: Perms) -> Result<()> {
    let blob = ctx.blob(sha256);
    let mut src = File::open(&blob).map_err(|_| Error::BlobMissing {
        sha256: sha256.to_string(),
        what: what.to_string(),
        path: blob.clone(),
    })?;
    atomic_write_with(dest, perms, |tmp_file, tmp| {
        let actual = copy_hashing(&mut src, tmp_file).map_err(|e| match e {
            Copy::Read(source) => Error::ReadFile {
                path: blob.clone(),
                source,
            },
            Copy::Write(source) => write_err("write", tmp, source),
        })?;
        if actual == sha256 {
            Ok(())
        } else {
            Err(Error::BlobCorrupt {
                what: what.to_string(),
                path: blob.clone(),
                expected: sha256.to_string(),
                actual,
            })
        }
    })
}

/// Which side of a copy failed.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `src` into `dest`; returns the hex sha256 of the bytes copied.
fn copy_hashing(src: &mut impl Read, dest: &mut impl Write) -> Result<String, Copy> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        hasher.update(&buf[..n]);
        dest.write_all(&buf[..n]).map_err(Copy::Write)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{fsutil::sha256_hex, testutil::ctx_in};

    struct Env {
        _dir: tempfile::TempDir,
        ctx: Ctx,
        dest: PathBuf,
    }

    fn env(check_mode: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path(), check_mode);
        fs::create_dir_all(&ctx.store_dir).unwrap();
        let dest = dir.path().join("usr/bin/kubeadm");
        Env {
            _dir: dir,
            ctx,
            dest,
        }
    }

    /// Puts `bytes` in the store; returns their sha256.
    fn blob(ctx: &Ctx, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        fs::write(ctx.blob(&sha), bytes).unwrap();
        sha
    }

    fn args(dest: &Path, sha256: &str, mode: u32) -> BinaryArgs {
        BinaryArgs {
            path: dest.to_path_buf(),
            sha256: sha256.to_string(),
            mode,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn installs_then_reports_unchanged() {
        let e = env(false);
        let sha = blob(&e.ctx, b"#!/bin/sh\necho kubeadm\n");
        let a = args(&e.dest, &sha, 0o755);
        let first = apply(&a, &e.ctx).unwrap();
        assert!(first.changed);
        assert_eq!(
            first.message,
            format!(
                "install {}: create (sha256 {}, mode 0755)",
                e.dest.display(),
                &sha[..12]
            )
        );
        assert_eq!(fs::read(&e.dest).unwrap(), b"#!/bin/sh\necho kubeadm\n");
        assert_eq!(mode_of(&e.dest), 0o755);
        assert_eq!(fs::metadata(&e.dest).unwrap().uid(), 0);
        let second = apply(&a, &e.ctx).unwrap();
        assert!(!second.changed, "{}", second.message);
        let leftovers = fs::read_dir(e.dest.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file is left behind");
    }

    #[test]
    fn replaces_other_bytes_and_fixes_mode_in_place() {
        let e = env(false);
        let old = blob(&e.ctx, b"v1");
        let new = blob(&e.ctx, b"v2");
        apply(&args(&e.dest, &old, 0o755), &e.ctx).unwrap();
        let upgraded = apply(&args(&e.dest, &new, 0o755), &e.ctx).unwrap();
        assert_eq!(
            upgraded.message,
            format!(
                "install {}: sha256 {} -> {}",
                e.dest.display(),
                &old[..12],
                &new[..12]
            )
        );
        assert_eq!(fs::read(&e.dest).unwrap(), b"v2");
        let inode = fs::metadata(&e.dest).unwrap().ino();
        let chmod = apply(&args(&e.dest, &new, 0o700), &e.ctx).unwrap();
        assert!(
            chmod.message.ends_with(": mode 0755 -> 0700"),
            "{}",
            chmod.message
        );
        assert_eq!(mode_of(&e.dest), 0o700);
        assert_eq!(fs::metadata(&e.dest).unwrap().ino(), inode, "not rewritten");
    }

    #[test]
    fn fixes_the_owner() {
        let e = env(false);
        let sha = blob(&e.ctx, b"kubelet");
        apply(&args(&e.dest, &sha, 0o755), &e.ctx).unwrap();
        std::os::unix::fs::chown(&e.dest, Some(65534), Some(65534)).unwrap();
        let out = apply(&args(&e.dest, &sha, 0o755), &e.ctx).unwrap();
        assert!(
            out.message.ends_with(": owner 65534:65534 -> root:root"),
            "{}",
            out.message
        );
        assert_eq!(fs::metadata(&e.dest).unwrap().uid(), 0);
    }

    #[test]
    fn replaces_a_symlink_rather_than_writing_through_it() {
        let e = env(false);
        let sha = blob(&e.ctx, b"new");
        let target = e.dest.with_file_name("elsewhere");
        fs::create_dir_all(e.dest.parent().unwrap()).unwrap();
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, &e.dest).unwrap();
        let out = apply(&args(&e.dest, &sha, 0o755), &e.ctx).unwrap();
        assert!(
            out.message.contains(": replace a symlink"),
            "{}",
            out.message
        );
        assert!(fs::symlink_metadata(&e.dest).unwrap().is_file());
        assert_eq!(fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn check_mode_reports_without_writing() {
        let e = env(true);
        // Dry runs send no blobs, so the store may not hold it.
        let out = apply(&args(&e.dest, &"c".repeat(64), 0o755), &e.ctx).unwrap();
        assert!(out.changed);
        assert!(out.message.contains(": create (sha256 cccccccccccc"));
        assert!(!e.dest.exists());
    }

    #[test]
    fn a_corrupt_blob_leaves_the_destination_alone() {
        let e = env(false);
        let good = blob(&e.ctx, b"good");
        apply(&args(&e.dest, &good, 0o755), &e.ctx).unwrap();
        let claimed = sha256_hex(b"expected");
        fs::write(e.ctx.blob(&claimed), b"rotten").unwrap();
        let err = apply(&args(&e.dest, &claimed, 0o755), &e.ctx).unwrap_err();
        assert!(matches!(err, Error::BlobCorrupt { .. }), "{err}");
        assert_eq!(fs::read(&e.dest).unwrap(), b"good");
        let leftovers = fs::read_dir(e.dest.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "the temp file is removed");
    }

    #[test]
    fn refuses_missing_blobs_bad_names_and_relative_paths() {
        let e = env(false);
        let missing = apply(&args(&e.dest, &"d".repeat(64), 0o755), &e.ctx).unwrap_err();
        assert!(matches!(missing, Error::BlobMissing { .. }), "{missing}");
        let bad = apply(&args(&e.dest, "../../etc/shadow", 0o755), &e.ctx).unwrap_err();
        assert_eq!(
            bad.to_string(),
            format!(
                "binary {} names blob \"../../etc/shadow\", which is not a lower-case hex sha256 (64 characters); hint: the engine must send sha256 names from the bundle manifest",
                e.dest.display()
            )
        );
        let rel = apply(
            &args(Path::new("usr/bin/x"), &"d".repeat(64), 0o755),
            &e.ctx,
        );
        assert!(matches!(rel, Err(Error::RelativePath { .. })));
        assert!(!e.dest.exists());
    }
}
