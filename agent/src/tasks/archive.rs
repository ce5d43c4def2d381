//! The archive module: a tar.gz from the blob store, unpacked into a directory.
//!
//! The system `tar` does the unpacking (every supported host has GNU tar), which keeps the
//! agent free of compression crates. Whether an archive is already in place cannot be read
//! off the directory, which other things write to too, so a stamp under the agent's state
//! dir records which archive was unpacked and the sha256 of every file it brought. The
//! archive counts as in place only while each of those files still has that content; a file
//! changed or removed on the host unpacks the archive again, and the outcome names it. The
//! stamp is written last: a run killed halfway unpacks again next time.
//!
//! Hashing every file on every run would cost a no-op apply a second per host for
//! containerd's 80 MB, so the stamp also keeps each file's inode, size, mtime and ctime as
//! they were right after unpacking; a file whose metadata still matches is not read again.
//! Writing a file always moves its ctime, which no one can set back, so a change cannot hide
//! behind a restored mtime.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Ctx, Outcome, require_blob_name};
use crate::{
    error::{Error, Result},
    exec,
    fsutil::{
        Perms, atomic_write, read_optional, require_absolute, sha256_file, short_sha as short,
        write_err,
    },
    protocol::ArchiveArgs,
};

/// What a stamp file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    /// The archive last unpacked there.
    sha256: String,
    /// Each non-directory member, relative to the destination, as it was unpacked.
    files: BTreeMap<String, Unpacked>,
}

/// One unpacked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Unpacked {
    /// sha256 of a regular file's content, or `link:<target>` for a symbolic link.
    content: String,
    /// `<inode>:<size>:<mtime ns>:<ctime ns>` right after unpacking.
    meta: String,
}

/// Unpacks the archive into `args.dest` unless the stamp says it is there and every file it
/// brought still has the archive's content.
pub fn apply(args: &ArchiveArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.dest)?;
    let what = format!("archive for {}", args.dest.display());
    require_blob_name(&args.sha256, &what)?;
    let stamp_path = stamp_path(ctx, &args.dest);
    let why = match read_stamp(&stamp_path)? {
        None => "not unpacked before".to_string(),
        Some(s) if s.sha256 != args.sha256 => format!("replacing {}", short(&s.sha256)),
        Some(s) => {
            let differ: Vec<(&String, &str)> = s
                .files
                .iter()
                .filter_map(|(f, was)| drift(&args.dest.join(f), was).map(|how| (f, how)))
                .collect();
            if differ.is_empty() {
                return Ok(Outcome::unchanged(format!(
                    "{} holds archive {} ({} files)",
                    args.dest.display(),
                    short(&args.sha256),
                    s.files.len()
                )));
            }
            let (first, how) = differ[0];
            format!(
                "{} of {} files differ from the archive, e.g. {first} ({how})",
                differ.len(),
                s.files.len(),
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
    let members = safe_members(&blob, &args.sha256, &args.dest)?;
    create_dest(&args.dest)?;
    let untar = exec::run(&[
        "tar",
        // No -z: GNU tar tells gzip, xz and zstd apart by their magic (Kata's static release
        // is a .tar.zst, and needs the host's zstd).
        "-xf",
        &blob.to_string_lossy(),
        "-C",
        &args.dest.to_string_lossy(),
        // Root would otherwise keep the archive's owners.
        "--no-same-owner",
        // Two things. An existing directory keeps its mode and times (the archive's "./" or
        // "bin/" entry must not touch /usr/local/bin). And each file is unlinked and created
        // anew, never opened for writing in place: containerd's binaries may be running, and
        // writing into a busy executable fails with ETXTBSY (a running program keeps the old
        // inode). GNU tar's --overwrite writes in place (O_TRUNC); its other modes but
        // --keep-* create with O_EXCL and unlink on EEXIST. The old-file modes are one
        // setting, the last given wins, and the command line comes after TAR_OPTIONS, so this
        // flag also overrides a --overwrite from the environment. (--unlink-first would
        // unlink too, but GNU tar refuses it together with this flag.)
        "--no-overwrite-dir",
    ])?
    .ok_or("the blob must be a tar (gzip, xz or zstd compressed)")?;
    let mut files = BTreeMap::new();
    for member in members {
        let path = args.dest.join(&member);
        files.insert(member, unpacked(&path)?);
    }
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

/// How a file unpacked as `was` differs now: "missing" or "changed"; None when it is as
/// unpacked.
fn drift(path: &Path, was: &Unpacked) -> Option<&'static str> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Some("missing");
    };
    if meta_key(&meta) == was.meta {
        return None;
    }
    match content(path, &meta) {
        Ok(now) if now == was.content => None,
        _ => Some("changed"),
    }
}

/// A file just unpacked, for the stamp.
fn unpacked(path: &Path) -> Result<Unpacked> {
    let read = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(read)?;
    Ok(Unpacked {
        content: content(path, &meta).map_err(read)?,
        meta: meta_key(&meta),
    })
}

fn meta_key(meta: &fs::Metadata) -> String {
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    format!(
        "{}:{}:{}:{}",
        meta.ino(),
        meta.size(),
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec())
    )
}

/// sha256 of a regular file, `link:<target>` for a symbolic link.
fn content(path: &Path, meta: &fs::Metadata) -> std::io::Result<String> {
    if meta.file_type().is_symlink() {
        Ok(format!("link:{}", fs::read_link(path)?.to_string_lossy()))
    } else {
        sha256_file(path)
    }
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
    let list = exec::run(&["tar", "-tf", &blob.to_string_lossy()])?
        .ok_or("the blob must be a tar (gzip, xz or zstd compressed)")?;
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
mod tests;
