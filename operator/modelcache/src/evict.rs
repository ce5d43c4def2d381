//! Keeping a node's models within the cache's capacity. Before a model downloads or copies,
//! it gets room: models that nothing wants any more (no LLMService names them, no `--model`)
//! go first, least recently used first; a model in use is never removed, and a model that
//! cannot fit beside the ones in use is refused rather than squeezed in.

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use crate::error::{Error, Result};

/// The file whose modification time is a model's last use on this node.
pub const LAST_USED: &str = "last-used";

/// One model directory under the root.
#[derive(Debug, Clone)]
pub struct Held {
    /// The model's key (its directory's name).
    pub key: String,
    /// Its directory.
    pub path: PathBuf,
    /// Bytes on disk, each inode once.
    pub bytes: u64,
    /// When it was last wanted.
    pub last_used: SystemTime,
}

/// Bytes under `dir`, counting each inode once: commit directories hard-link the fan-out's
/// blobs, which would otherwise count twice.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// Records now as the last use of the model at `dir`.
pub fn touch(dir: &Path) {
    let path = dir.join(LAST_USED);
    // Best effort: a model without the record counts as used when its directory changed.
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::File::create(&path).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Every model directory under `root` (names of 16 hex digits).
pub fn held(root: &Path) -> Vec<Held> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let key = e.file_name().to_str()?.to_string();
            if key.len() != 16 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let path = e.path();
            let last_used = path
                .join(LAST_USED)
                .metadata()
                .or_else(|_| path.metadata())
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some(Held {
                bytes: disk_usage(&path),
                key,
                path,
                last_used,
            })
        })
        .collect()
}

/// Makes room under `root` for model `key` of `size` bytes within `capacity`, removing
/// models not in `in_use`, least recently used first. Returns the keys removed.
pub fn make_room(
    root: &Path,
    capacity: u64,
    key: &str,
    size: u64,
    in_use: &HashSet<String>,
) -> Result<Vec<String>> {
    let mut models = held(root);
    // What this model holds already counts towards its size, not on top of it.
    let others: u64 = models
        .iter()
        .filter(|m| m.key != key)
        .map(|m| m.bytes)
        .sum();
    let mut total = others + size;
    models.retain(|m| m.key != key && !in_use.contains(&m.key));
    models.sort_by_key(|m| m.last_used);
    let mut removed = Vec::new();
    for m in models {
        if total <= capacity {
            break;
        }
        remove(root, &m)?;
        tracing::info!(model_key = %m.key, bytes = m.bytes, "evicted: unused, least recently used");
        total -= m.bytes;
        removed.push(m.key);
    }
    if total > capacity {
        return Err(Error::NoRoom {
            key: key.to_string(),
            size,
            capacity,
            in_use: total - size,
        });
    }
    Ok(removed)
}

/// Removes a model: its ready marker first (a pod starting now waits rather than reads a
/// half-removed copy), then the directory, renamed away so that it vanishes at once.
fn remove(root: &Path, model: &Held) -> Result<()> {
    let marker = model.path.join(kubegrid_serving::names::READY_MARKER);
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &marker)(e)),
    }
    let gone = root.join(format!(".evicted-{}", model.key));
    std::fs::rename(&model.path, &gone).map_err(Error::io("rename", &model.path))?;
    std::fs::remove_dir_all(&gone).map_err(Error::io("remove", &gone))
}

/// Bytes of a quantity such as `20Gi`, `512M` or `1000000` (validated by the spec already).
pub fn parse_quantity(text: &str) -> Option<u64> {
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, f)| text.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.parse().ok()?;
    // Float to integer: the spec bounds these to sane sizes; `as` saturates.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "bytes from a validated, positive quantity"
    )]
    Some((value * factor) as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn model(root: &Path, key: &str, bytes: usize, age: u64) {
        let dir = root.join(key);
        std::fs::create_dir_all(dir.join("c0mm1t")).unwrap();
        std::fs::create_dir_all(dir.join(".blobs")).unwrap();
        std::fs::write(dir.join(".blobs/blob"), vec![0u8; bytes]).unwrap();
        // A hard link, as a follower's commit directory has: counted once.
        std::fs::hard_link(dir.join(".blobs/blob"), dir.join("c0mm1t/w.safetensors")).unwrap();
        std::fs::write(dir.join("ready"), "c0mm1t\n").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        std::fs::File::create(dir.join(LAST_USED))
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn unused_models_go_least_recently_used_first_and_used_ones_never() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        model(r, "aaaaaaaaaaaaaaaa", 100, 300); // unused, oldest
        model(r, "bbbbbbbbbbbbbbbb", 100, 200); // unused
        model(r, "cccccccccccccccc", 100, 900); // in use, older still
        assert_eq!(
            disk_usage(&r.join("aaaaaaaaaaaaaaaa")),
            107,
            "the link counts once"
        );
        let in_use: HashSet<String> = ["cccccccccccccccc".to_string()].into();
        // 321 held + 100 new within 350: one model must go, the oldest unused.
        let removed = make_room(r, 350, "dddddddddddddddd", 100, &in_use).unwrap();
        assert_eq!(removed, ["aaaaaaaaaaaaaaaa"]);
        assert!(!r.join("aaaaaaaaaaaaaaaa").exists());
        assert!(r.join("bbbbbbbbbbbbbbbb/ready").exists());
        // Nothing unused is left to remove: a model that cannot fit is refused, and the
        // model in use is still there.
        let err = make_room(r, 150, "dddddddddddddddd", 100, &{
            let mut s = in_use.clone();
            s.insert("bbbbbbbbbbbbbbbb".into());
            s
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(r.join("cccccccccccccccc/ready").exists());
    }
}
