//! The packed form of a bundle: its directory tree as one tar + zstd file.
//!
//! Packing is reproducible (sorted entries, owner root, time zero) and atomic (written as
//! `<file>.partial`, then renamed). Unpacking accepts only regular files and directories with
//! relative paths inside the target, unpacks next to the target and renames, so a failed
//! unpack leaves nothing behind.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::{Component, Path, PathBuf},
};

use tar::{EntryType, HeaderMode};

use crate::{Error, Result, build::hash_file};

/// Packs the directory `dir` into `file` (tar + zstd).
pub fn pack(dir: &Path, file: &Path) -> Result<()> {
    let partial = with_suffix(file, ".partial");
    let result = write_pack(dir, &partial).and_then(|()| std::fs::rename(&partial, file));
    result.map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        Error::Pack {
            dir: dir.to_path_buf(),
            file: file.to_path_buf(),
            source,
        }
    })
}

fn write_pack(dir: &Path, partial: &Path) -> std::io::Result<()> {
    let out = BufWriter::new(File::create(partial)?);
    let encoder = zstd::stream::write::Encoder::new(out, 3)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    append_tree(&mut tar, dir, Path::new(""))?;
    let encoder = tar.into_inner()?;
    let mut out = encoder.finish()?;
    out.flush()?;
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()
}

fn append_tree<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tar.append_dir(&name, entry.path())?;
            append_tree(tar, root, &name)?;
        } else if kind.is_file() {
            tar.append_path_with_name(entry.path(), &name)?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is neither a file nor a directory; bundles hold only those",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

/// Unpacks `file` into the directory `dir`, which must not exist yet.
pub fn unpack(file: &Path, dir: &Path) -> Result<()> {
    let fail = |problem: String| Error::Unpack {
        file: file.to_path_buf(),
        problem,
    };
    if dir.exists() {
        return Err(fail(format!(
            "the target {} already exists; unpacking never merges into a directory",
            dir.display()
        )));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
        path: parent.to_path_buf(),
        source,
    })?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(|source| Error::WriteFile {
            path: parent.to_path_buf(),
            source,
        })?;
    // Messages name archive members, never the staging directory the user did not choose.
    let staged_prefix = format!("{}/", staging.path().display());
    unpack_into(file, staging.path())
        .map_err(|problem| fail(problem.replace(&staged_prefix, "")))?;
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        fail(format!("moving it into place at {}: {e}", dir.display()))
    })
}

fn unpack_into(file: &Path, target: &Path) -> std::result::Result<(), String> {
    let input = File::open(file).map_err(|e| e.to_string())?;
    let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| format!("zstd: {e}"))?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_permissions(false);
    tar.set_overwrite(false);
    for entry in tar.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let shown = path.display().to_string();
        let inside = path.components().next().is_some()
            && path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "entry `{shown}` would land outside the target; refusing the whole archive"
            ));
        }
        let dest = target.join(&path);
        match entry.header().entry_type() {
            EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(|e| format!("{shown}: {e}"))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{shown}: {e}"))?;
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                entry
                    .unpack(&dest)
                    .map_err(|e| format!("{shown}: {}", broken(e)))?;
                let mode = if executable { 0o755 } else { 0o644 };
                set_mode(&dest, mode).map_err(|e| format!("{shown}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "entry `{shown}` is a {}; a bundle holds only files and directories",
                    entry_kind(other)
                ));
            }
        }
    }
    Ok(())
}

/// A read error inside the archive: the file was cut short or damaged on its way here.
/// A tar entry type in words.
fn entry_kind(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Symlink => "symbolic link",
        EntryType::Link => "hard link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "named pipe",
        _ => "special entry",
    }
}

fn broken(e: std::io::Error) -> String {
    format!(
        "reading the archive: {e}; it is truncated or corrupt (compare its sha256 with the one `bundle build` printed, and copy it again)"
    )
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The directory a packed bundle unpacks to under `cache_root`: `<cache_root>/<sha256 of
/// file>`. Unpacks on first use; later calls (and other processes) reuse it.
pub fn open_packed(file: &Path, cache_root: &Path) -> Result<PathBuf> {
    let (_, sha256) = hash_file(file)?;
    let dir = cache_root.join(&sha256);
    // A directory under this name exists only after a complete unpack was renamed into place.
    if dir.is_dir() {
        return Ok(dir);
    }
    match unpack(file, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished the same unpack first.
        Err(_) if dir.is_dir() => Ok(dir),
        Err(e) => Err(e),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
