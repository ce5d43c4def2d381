//! A model's directory on a node, the contract with the serving pods that mount it
//! read-only (see `kubegrid_serving::names`):
//!
//! ```text
//! <root>/<key>/                 key: cache_key(spec.model.uri)
//!   <commit>/<path>...          the files of one commit, each verified before it got its name
//!   current -> <commit>         the commit the pods serve
//!   ready                       holds that commit; written last, so its presence means ready
//! ```
//!
//! [`ModelDir::mark_ready`] makes both names appear atomically (a new link or file is
//! written beside the old one and renamed over it), so a pod's init container never sees a
//! `ready` that points at a half-written commit.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use kubegrid_serving::names::{CURRENT_LINK, READY_MARKER, cache_key};

use crate::error::{Error, Result};

/// One model's directory on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    dir: PathBuf,
}

impl ModelDir {
    /// The directory of the model at `uri` under `root` (e.g. `/var/lib/kubegrid/models`).
    pub fn new(root: &Path, uri: &str) -> Self {
        Self {
            dir: root.join(cache_key(uri)),
        }
    }

    /// The model's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where `commit`'s files go.
    pub fn commit_dir(&self, commit: &str) -> PathBuf {
        self.dir.join(commit)
    }

    /// Where file `path` of `commit` goes.
    pub fn file(&self, commit: &str, path: &str) -> PathBuf {
        self.commit_dir(commit).join(path)
    }

    /// The commit the `ready` marker names, when there is one.
    pub fn ready_commit(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(READY_MARKER)).ok()?;
        let commit = text.trim();
        (!commit.is_empty()).then(|| commit.to_string())
    }

    /// Points `current` at `commit` and then writes `ready` with it, each atomically, after
    /// syncing what the pods will read. The caller has verified every file of `commit`.
    pub fn mark_ready(&self, commit: &str) -> Result<()> {
        let commit_dir = self.commit_dir(commit);
        if !commit_dir.is_dir() {
            return Err(Error::io("mark ready", &commit_dir)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the commit's directory does not exist",
            )));
        }
        let link = self.dir.join(CURRENT_LINK);
        let staged_link = self.dir.join(format!(".{CURRENT_LINK}.new"));
        let _ = std::fs::remove_file(&staged_link);
        // Relative, so the link also resolves inside a pod that mounts the directory
        // elsewhere (`/models`).
        std::os::unix::fs::symlink(commit, &staged_link)
            .map_err(Error::io("link", &staged_link))?;
        std::fs::rename(&staged_link, &link).map_err(Error::io("rename", &staged_link))?;
        let marker = self.dir.join(READY_MARKER);
        let staged = self.dir.join(format!(".{READY_MARKER}.new"));
        let mut file = std::fs::File::create(&staged).map_err(Error::io("create", &staged))?;
        writeln!(file, "{commit}").map_err(Error::io("write", &staged))?;
        file.sync_all().map_err(Error::io("sync", &staged))?;
        std::fs::rename(&staged, &marker).map_err(Error::io("rename", &staged))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync", &self.dir))
    }

    /// Removes the `ready` marker first (pods starting now wait again), then the link.
    pub fn unmark(&self) -> Result<()> {
        for name in [READY_MARKER, CURRENT_LINK] {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_names_the_commit_and_current_resolves_to_its_files() {
        let root = tempfile::tempdir().unwrap();
        let model = ModelDir::new(root.path(), "hf://acme/llama@main");
        assert_eq!(model.path().file_name().unwrap().len(), 16);
        assert_eq!(model.ready_commit(), None);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert!(model.mark_ready(commit).is_err(), "no directory, no marker");
        assert_eq!(model.ready_commit(), None);
        std::fs::create_dir_all(model.commit_dir(commit)).unwrap();
        std::fs::write(model.file(commit, "config.json"), "{}").unwrap();
        model.mark_ready(commit).unwrap();
        assert_eq!(model.ready_commit().as_deref(), Some(commit));
        let through_link = model.path().join(CURRENT_LINK).join("config.json");
        assert_eq!(std::fs::read_to_string(through_link).unwrap(), "{}");
        assert_eq!(
            std::fs::read_link(model.path().join(CURRENT_LINK)).unwrap(),
            Path::new(commit),
            "relative, so it resolves under the pod's mount point too"
        );

        // A newer commit replaces both names; the old files stay until evicted.
        let next = "89abcdef0123456789abcdef0123456789abcdef";
        std::fs::create_dir_all(model.commit_dir(next)).unwrap();
        model.mark_ready(next).unwrap();
        assert_eq!(model.ready_commit().as_deref(), Some(next));
        assert!(model.file(commit, "config.json").exists());
        model.unmark().unwrap();
        assert_eq!(model.ready_commit(), None);
        assert!(!model.path().join(CURRENT_LINK).exists());
    }
}
