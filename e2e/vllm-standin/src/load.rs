//! "Loading the weights": the stand-in reads every file of the model from the node cache's
//! directory and checks it against the cache's record (`manifest.json` beside `current`,
//! written once every file verified), as a real engine would fail on a truncated shard.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// What was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The commit the cache's ready marker names.
    pub commit: String,
    /// Files checked.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Reads and checks every file of the model at `model` (the cache's `<key>/current`, or a
/// commit directory beside `ready` and `manifest.json`). The error names the file, what it
/// hashed to and what the record says.
pub fn load(model: &Path) -> Result<Loaded, String> {
    let dir = model
        .parent()
        .ok_or_else(|| format!("{}: not inside a model cache directory", model.display()))?;
    let ready = std::fs::read_to_string(dir.join("ready")).map_err(|e| {
        format!(
            "{}: {e}; the node cache has not marked this model ready",
            dir.join("ready").display()
        )
    })?;
    let record_path = dir.join("manifest.json");
    let record: serde_json::Value = std::fs::read(&record_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", record_path.display()))?;
    let commit = ready.trim().to_string();
    if record["commit"] != commit.as_str() {
        return Err(format!(
            "{}: records commit {}, the ready marker names {commit}",
            record_path.display(),
            record["commit"]
        ));
    }
    let files = record["files"]
        .as_array()
        .ok_or_else(|| format!("{}: no files", record_path.display()))?;
    let mut bytes = 0;
    for file in files {
        let path = file["path"].as_str().unwrap_or_default();
        let expected = file["manifest"]["sha256"].as_str().unwrap_or_default();
        let full: PathBuf = model.join(path);
        let (seen, size) = sha256(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        if seen != expected {
            return Err(format!(
                "{}: sha256 is {seen}, the cache recorded {expected}; refusing to serve it",
                full.display()
            ));
        }
        bytes += size;
    }
    Ok(Loaded {
        commit,
        files: files.len(),
        bytes,
    })
}

fn sha256(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
