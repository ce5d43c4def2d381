//! Writing files so that readers never see half of one.

use std::{
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

/// How the final file is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Replace whatever is there.
    Replace,
    /// Fail with `AlreadyExists` when the target exists; hard-linking is what makes this
    /// check and the placement one atomic step.
    NoClobber,
}

/// Writes `contents` to a temporary file next to `path` with `mode`, syncs it and moves it
/// into place.
pub(crate) fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    place: Place,
) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = write_then_place(&tmp, path, contents, mode, place);
    if result.is_err() || place == Place::NoClobber {
        // A link leaves the temporary name behind; a failed write may too.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_place(
    tmp: &Path,
    path: &Path,
    contents: &[u8],
    mode: u32,
    place: Place,
) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    match place {
        Place::Replace => std::fs::rename(tmp, path),
        Place::NoClobber => std::fs::hard_link(tmp, path),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
