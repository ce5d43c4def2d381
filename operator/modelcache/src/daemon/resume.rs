//! A new coordinator's head start on the file that was under way.
//!
//! While a coordinator downloads a file, its followers copy it a few pieces behind, each
//! piece checked against the hash the coordinator published. When that coordinator goes and
//! a follower takes the Lease, the follower already holds most of the file in its fan-out
//! store. Its pieces, checked again against those hashes, become the start of its download,
//! which the source then continues with a Range request: the file is not fetched from the
//! source again from its first byte. The whole file is still verified against its sha256
//! before anything is published whole, so a head start can only ever save bytes.

use std::{
    fs::File,
    io::Write as _,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use kubegrid_fanout::{PieceManifest, store::partial_path};

use super::Shared;
use crate::{
    error::{Error, Result},
    hub::part_path,
    layout::ModelDir,
};

/// Remembers `manifest` as the latest this node copies by, for a head start if it becomes
/// the coordinator before the copy ends.
pub(super) fn copying(shared: &Shared, manifest: &Arc<PieceManifest>) {
    shared
        .copying
        .lock()
        .expect("copying lock")
        .insert(manifest.sha256.clone(), Arc::clone(manifest));
}

/// Forgets the manifest of blob `sha256`: its copy ended.
pub(super) fn copied(shared: &Shared, sha256: &str) {
    shared.copying.lock().expect("copying lock").remove(sha256);
}

/// Starts the download of blob `sha256` to `dest` (its `.part`) with the pieces this node
/// copied of it as a follower: the longest run from the first piece whose bytes match the
/// hashes it was copied by. Returns the bytes it starts with (0 when there was nothing to
/// take or the `.part` already holds more).
pub(super) async fn head_start(
    shared: &Shared,
    dir: &ModelDir,
    sha256: &str,
    dest: &Path,
) -> Result<u64> {
    let Some(manifest) = shared.copying.lock().expect("copying lock").remove(sha256) else {
        return Ok(0);
    };
    let copy = partial_path(&dir.path().join(super::follow::STORE), sha256);
    if !copy.exists() {
        return Ok(0);
    }
    let part = part_path(dest);
    tokio::task::spawn_blocking(move || start_from(&copy, &manifest, &part))
        .await
        .map_err(|e| Error::Fanout(e.to_string()))?
}

/// Writes the verified leading pieces of `copy` to `part` when they are more than `part`
/// holds; the bytes written. Each piece is read once, checked and written. Blocking.
fn start_from(copy: &Path, manifest: &PieceManifest, part: &Path) -> Result<u64> {
    let read_err = |e| Error::io("read", copy)(e);
    let file = File::open(copy).map_err(read_err)?;
    let held = std::fs::metadata(part).map_or(0, |m| m.len());
    // Written beside and renamed, so a crash leaves the old `.part` or the new one whole.
    let staged = staged_path(part);
    let write_err = |e| Error::io("write", &staged)(e);
    if let Some(dir) = staged.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    }
    let mut out = File::create(&staged).map_err(write_err)?;
    let mut buf = Vec::new();
    let mut end = 0;
    for i in 0..manifest.known_pieces() {
        let (start, len) = manifest.piece_span(i);
        buf.resize(len as usize, 0);
        if file.read_exact_at(&mut buf, start).is_err() || !manifest.check_piece(i, &buf) {
            break;
        }
        out.write_all(&buf).map_err(write_err)?;
        end = start + len;
    }
    if end <= held {
        drop(out);
        std::fs::remove_file(&staged).map_err(Error::io("remove", &staged))?;
        return Ok(0);
    }
    out.sync_all().map_err(write_err)?;
    std::fs::rename(&staged, part).map_err(Error::io("rename", &staged))?;
    Ok(end)
}

fn staged_path(part: &Path) -> PathBuf {
    let mut name = part.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    part.with_file_name(name)
}
