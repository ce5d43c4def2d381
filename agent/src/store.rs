//! The blob store's partial files.
//!
//! A blob being received lives in `<store>/.partial/<sha256>` until all its bytes are there
//! and hash to its name; then it is renamed into `<store>/<sha256>`. A transfer cut part-way
//! leaves its partial file behind on purpose: the next attempt, in this run or a later one,
//! hashes what is there and asks only for the rest. The facts list the store's blobs by
//! their sha256 file names, so the partial directory never counts as a blob.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    fsutil::{is_sha256_name, sync_dir, write_err},
};

/// The partial directory's name inside the store.
pub const PARTIAL_DIR: &str = ".partial";

/// Size of each read when hashing what a partial file already holds.
const HASH_CHUNK: usize = 1 << 20;

/// Where blob `sha256`'s partial file lives.
pub fn partial_path(store: &Path, sha256: &str) -> PathBuf {
    store.join(PARTIAL_DIR).join(sha256)
}

/// The partial files in `store` and the bytes each holds, for the facts: the engine resumes
/// an SSH push from there.
pub fn partial_sizes(store: &Path) -> BTreeMap<String, u64> {
    let Ok(entries) = fs::read_dir(store.join(PARTIAL_DIR)) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (is_sha256_name(&name) && meta.is_file()).then_some((name, meta.len()))
        })
        .collect()
}

/// An open, locked partial file and the running hash of the bytes it holds.
pub struct Partial {
    file: Flock<File>,
    path: PathBuf,
    sha256: String,
    size: u64,
    have: u64,
    hasher: Sha256,
}

impl Partial {
    /// Opens (creating it when missing) and locks blob `sha256`'s partial file, and hashes
    /// the bytes it already holds. A file longer than the blob cannot be a prefix of it, so
    /// it starts over empty.
    pub fn open(store: &Path, sha256: &str, size: u64) -> Result<Partial> {
        if !is_sha256_name(sha256) {
            return Err(Error::BadBlobName {
                value: sha256.to_string(),
            });
        }
        let dir = store.join(PARTIAL_DIR);
        fs::create_dir_all(&dir).map_err(|source| write_err("create directory", &dir, source))?;
        let path = dir.join(sha256);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| write_err("open", &path, source))?;
        let file =
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(
                |(_, errno)| match errno {
                    Errno::EWOULDBLOCK => Error::PartialBusy { path: path.clone() },
                    other => write_err("lock", &path, io::Error::from(other)),
                },
            )?;
        let len = file
            .metadata()
            .map_err(|source| Error::ReadFile {
                path: path.clone(),
                source,
            })?
            .len();
        let mut partial = Partial {
            file,
            path,
            sha256: sha256.to_string(),
            size,
            have: 0,
            hasher: Sha256::new(),
        };
        partial.rehash(if len > size { 0 } else { len })?;
        Ok(partial)
    }

    /// Bytes the file holds.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps only the first `offset` bytes (a stream restarting there), hashing them again
    /// when that drops bytes already hashed.
    pub fn truncate(&mut self, offset: u64) -> Result<()> {
        if offset != self.have {
            self.rehash(offset.min(self.have))?;
        }
        Ok(())
    }

    /// Appends bytes that follow the ones held.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let after = self.have + bytes.len() as u64;
        if after > self.size {
            return Err(Error::ReadBlob {
                sha256: self.sha256.clone(),
                received: after,
                size: self.size,
                source: io::Error::new(io::ErrorKind::InvalidData, "more bytes than announced"),
            });
        }
        self.file
            .write_all(bytes)
            .map_err(|source| write_err("write", &self.path, source))?;
        self.hasher.update(bytes);
        self.have = after;
        Ok(())
    }

    /// Checks the whole blob's sha256 and renames the file into the store. On a mismatch
    /// the partial file is deleted (its bytes are wrong somewhere, so resuming it would
    /// never succeed) and the error names the blob, where it came `from`, and both hashes.
    pub fn finish(self, store: &Path, from: &str) -> Result<PathBuf> {
        let actual = hex::encode(self.hasher.clone().finalize());
        if self.have != self.size || actual != self.sha256 {
            let _ = fs::remove_file(&self.path);
            return Err(Error::BlobChecksum {
                from: from.to_string(),
                expected: self.sha256.clone(),
                actual: if self.have == self.size {
                    actual
                } else {
                    format!("{} bytes of {}", self.have, self.size)
                },
            });
        }
        self.file
            .sync_all()
            .map_err(|source| write_err("sync", &self.path, source))?;
        let dest = store.join(&self.sha256);
        fs::rename(&self.path, &dest)
            .map_err(|source| write_err("rename into place", &dest, source))?;
        sync_dir(store)?;
        Ok(dest)
    }

    /// Cuts the file to `len` bytes and hashes them afresh, leaving the cursor at the end.
    fn rehash(&mut self, len: u64) -> Result<()> {
        let read_err = |path: &Path, source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        };
        self.file
            .set_len(len)
            .map_err(|source| write_err("truncate", &self.path, source))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|source| read_err(&self.path, source))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; HASH_CHUNK];
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            let n = match self.file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(read_err(&self.path, source)),
            };
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        self.hasher = hasher;
        self.have = len - left;
        self.file
            .seek(SeekFrom::Start(self.have))
            .map_err(|source| read_err(&self.path, source))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::sha256_hex;

    #[test]
    fn resumes_a_prefix_and_stores_the_whole_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let sha = sha256_hex(&bytes);
        let mut p = Partial::open(store, &sha, bytes.len() as u64).unwrap();
        p.write(&bytes[..4000]).unwrap();
        drop(p);
        assert_eq!(partial_sizes(store), BTreeMap::from([(sha.clone(), 4000)]));
        let mut p = Partial::open(store, &sha, bytes.len() as u64).unwrap();
        assert_eq!(p.have(), 4000);
        p.write(&bytes[4000..]).unwrap();
        let dest = p.finish(store, "test").unwrap();
        assert_eq!(fs::read(dest).unwrap(), bytes);
        assert!(partial_sizes(store).is_empty());
    }

    #[test]
    fn a_mismatch_deletes_the_partial_and_names_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let sha = sha256_hex(b"right");
        let mut p = Partial::open(store, &sha, 5).unwrap();
        p.write(b"wrong").unwrap();
        let err = p.finish(store, "http://x/blob").unwrap_err().to_string();
        assert!(
            err.contains(&sha) && err.contains(&sha256_hex(b"wrong")),
            "{err}"
        );
        assert!(err.contains("http://x/blob"), "{err}");
        assert!(!partial_path(store, &sha).exists());
        assert!(!store.join(&sha).exists());
    }

    #[test]
    fn truncating_rehashes_and_a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let sha = sha256_hex(b"abcdef");
        let mut p = Partial::open(store, &sha, 6).unwrap();
        p.write(b"abXY").unwrap();
        let busy = Partial::open(store, &sha, 6).err().unwrap();
        assert!(matches!(busy, Error::PartialBusy { .. }), "{busy}");
        p.truncate(2).unwrap();
        assert_eq!(p.have(), 2);
        p.write(b"cdef").unwrap();
        p.finish(store, "test").unwrap();
        assert_eq!(fs::read(store.join(&sha)).unwrap(), b"abcdef");
    }

    #[test]
    fn a_partial_longer_than_the_blob_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let sha = sha256_hex(b"abc");
        fs::create_dir_all(store.join(PARTIAL_DIR)).unwrap();
        fs::write(partial_path(store, &sha), b"too long").unwrap();
        let p = Partial::open(store, &sha, 3).unwrap();
        assert_eq!(p.have(), 0);
    }
}
