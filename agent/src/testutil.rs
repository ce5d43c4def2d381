//! Helpers for unit tests that build fake host trees.

use std::{fs, path::Path};

use crate::tasks::Ctx;

/// Writes `content` at `rel` under `root`, creating the directories on the way.
pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("a relative path with a parent")).unwrap();
    fs::write(path, content).unwrap();
}

/// A temp dir holding `files` (path relative to it, content).
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        write(dir.path(), rel, content);
    }
    dir
}

/// A context for the real host ("/") whose store and state dirs lie under `dir`.
pub fn ctx_in(dir: &Path, check_mode: bool) -> Ctx {
    Ctx {
        root: "/".into(),
        store_dir: dir.join("store"),
        state_dir: dir.join("state"),
        check_mode,
        verified: Default::default(),
    }
}
