//! Files: atomic replacement, checksums and the small path rules the tasks share.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Component, Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Owner and permission bits for [`atomic_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Permission bits (0o644).
    pub mode: u32,
    /// Owner uid; None leaves the writer's.
    pub uid: Option<u32>,
    /// Owner gid; None leaves the writer's.
    pub gid: Option<u32>,
}

impl Perms {
    /// `mode`, owned by whoever runs the agent (root on a real host).
    pub fn mode(mode: u32) -> Self {
        Self {
            mode,
            uid: None,
            gid: None,
        }
    }
}

/// Replaces `path` with `bytes` so that readers see the old file or the new one, never a
/// torn one, even across a crash: temp file in the same directory, fsync, owner and mode,
/// rename, fsync of the directory. Missing parent directories are created (0755).
pub fn atomic_write(path: &Path, bytes: &[u8], perms: Perms) -> Result<()> {
    atomic_write_with(path, perms, |f, tmp| {
        f.write_all(bytes)
            .map_err(|source| write_err("write", tmp, source))
    })
}

/// [`atomic_write`] with the content written by `fill` into the temp file (given with its
/// path, for messages), so that large blobs stream instead of sitting in memory. When
/// `fill` fails the temp file is removed and `path` is left as it was.
pub fn atomic_write_with(
    path: &Path,
    perms: Perms,
    fill: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<()> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|source| write_err("create directory", dir, source))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.kubegrid-{}", std::process::id()));
    let result = write_tmp(&tmp, perms, fill).and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| write_err("rename into place", path, source))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn write_tmp(
    tmp: &Path,
    perms: Perms,
    fill: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<()> {
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|source| write_err("create", tmp, source))?;
    fill(&mut f, tmp)?;
    f.sync_all()
        .map_err(|source| write_err("write", tmp, source))?;
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::fchown(&f, perms.uid, perms.gid)
            .map_err(|source| write_err("chown", tmp, source))?;
    }
    // Mode after chown: chown clears setuid/setgid bits.
    f.set_permissions(fs::Permissions::from_mode(perms.mode))
        .map_err(|source| write_err("chmod", tmp, source))
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| write_err("sync directory", dir, source))
}

/// The directory holding `path` ("." for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The file's bytes, or None when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The file as text, or "" when it does not exist or cannot be read (for kernel files
/// that are simply absent on some hosts).
pub fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex sha256 of a file's bytes, read in chunks (packages are tens of MiB).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// `s` is a lower-case hex sha256, so it is safe as a file name in the store.
pub fn is_sha256_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The first 12 hex digits of a sha256: enough to tell blobs apart in a one-line message.
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Fails unless `path` is absolute.
pub fn require_absolute(path: &Path) -> Result<()> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Error::RelativePath {
            path: path.to_path_buf(),
        })
    }
}

/// An absolute host path under `root` ("/" on a real host, a fake tree in tests).
pub fn under_root(root: &Path, host_path: &Path) -> PathBuf {
    let rel: PathBuf = host_path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    root.join(rel)
}

/// A [`Error::WriteFile`] for `op` on `path`.
pub fn write_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::WriteFile {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn atomic_write_creates_parents_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.conf");
        atomic_write(&path, b"one", Perms::mode(0o640)).unwrap();
        atomic_write(&path, b"two", Perms::mode(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn hashes_bytes_and_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), want);
        assert_eq!(sha256_file(&path).unwrap(), want);
        assert!(is_sha256_name(want));
        assert!(!is_sha256_name(&want.to_uppercase()));
        assert!(!is_sha256_name("../etc/passwd"));
    }

    #[test]
    fn maps_host_paths_under_a_root() {
        let root = Path::new("/tmp/fake");
        assert_eq!(
            under_root(root, Path::new("/proc/sys/net")),
            Path::new("/tmp/fake/proc/sys/net")
        );
        assert_eq!(
            under_root(Path::new("/"), Path::new("/etc/fstab")),
            Path::new("/etc/fstab")
        );
        assert_eq!(
            under_root(root, Path::new("/../etc")),
            Path::new("/tmp/fake/etc")
        );
    }
}
