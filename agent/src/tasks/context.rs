//! What every task gets and what it gives back.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    exec::OUTPUT_TAIL_BYTES,
    fsutil::{is_sha256_name, sha256_file, under_root},
};

/// Where a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// Where the OS's and the kernel's own files are (/proc, /sys, /etc/fstab, unit
    /// directories): "/" on a host, a fake tree in tests. Paths a plan names are used as given.
    pub root: PathBuf,
    /// The blob store.
    pub store_dir: PathBuf,
    /// The agent's state (restart stamps, backups, unpacked rootfs).
    pub state_dir: PathBuf,
    /// Report what would change; change nothing.
    pub check_mode: bool,
    /// Blobs this run received and verified from stdin moments ago; hashing 25 MB again
    /// before using them would only cost CPU.
    pub verified: BTreeSet<String>,
}

impl Ctx {
    /// A well-known host path ("/proc/swaps") under [`Ctx::root`].
    pub fn host(&self, path: &str) -> PathBuf {
        under_root(&self.root, Path::new(path))
    }

    /// A blob's path in the store.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.store_dir.join(sha256)
    }

    /// The path of blob `sha256` once it is known to be in the store with bytes that hash
    /// to its name. Blobs received this run were hashed on the way in and are not read
    /// again. `what` says what the blob holds, for messages ("binary /usr/bin/kubeadm").
    pub fn verified_blob(&self, sha256: &str, what: &str) -> Result<PathBuf> {
        require_blob_name(sha256, what)?;
        let path = self.blob(sha256);
        if self.verified.contains(sha256) && path.is_file() {
            return Ok(path);
        }
        let actual = sha256_file(&path).map_err(|_| Error::BlobMissing {
            sha256: sha256.to_string(),
            what: what.to_string(),
            path: path.clone(),
        })?;
        if actual != sha256 {
            return Err(Error::BlobCorrupt {
                what: what.to_string(),
                path,
                expected: sha256.to_string(),
                actual,
            });
        }
        Ok(path)
    }
}

/// Fails unless `sha256` can be a store name: anything else could name a path outside it.
pub fn require_blob_name(sha256: &str, what: &str) -> Result<()> {
    if is_sha256_name(sha256) {
        Ok(())
    } else {
        Err(Error::InvalidBlobName {
            what: what.to_string(),
            value: sha256.to_string(),
        })
    }
}

/// How a task that did not fail ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// It changed the host (or would, in check mode).
    pub changed: bool,
    /// One line: what changed or would change, or why nothing had to.
    pub message: String,
    /// Tail of the output of the commands it ran.
    pub output: String,
}

impl Outcome {
    /// Nothing to do.
    pub fn unchanged(message: impl Into<String>) -> Self {
        Self {
            changed: false,
            message: message.into(),
            output: String::new(),
        }
    }

    /// Changes, one per entry, joined into the message; unchanged with `otherwise` when
    /// there are none.
    pub fn from_changes(changes: &[String], otherwise: &str, output: &str) -> Self {
        Self {
            changed: !changes.is_empty(),
            message: if changes.is_empty() {
                otherwise.to_string()
            } else {
                changes.join(", ")
            },
            output: crate::exec::tail(output, OUTPUT_TAIL_BYTES),
        }
    }
}
