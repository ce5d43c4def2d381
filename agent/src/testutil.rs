//! Helpers for unit tests that build fake host trees.

use std::{fs, path::Path};

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
