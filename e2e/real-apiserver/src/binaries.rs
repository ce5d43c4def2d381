//! Where `build.sh` left the programs, and what a test does when they are not there.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The default build folder: `build.sh`'s default cache, whose `current` link names the
/// build for the package versions of the last run.
pub const DEFAULT_DIR: &str = "/var/cache/kubegrid/apiserver/current";

/// The programs of one build.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The apiextensions-apiserver (with discovery at `/apis`).
    pub apiserver: PathBuf,
    /// etcd 3.5 from Debian sid.
    pub etcd: PathBuf,
    /// kubectl 1.36 from Debian sid.
    pub kubectl: PathBuf,
    /// The Debian package versions the build was made from, one `package version` per line.
    pub versions: String,
}

impl Binaries {
    /// The build folder: `$KUBEGRID_APISERVER_DIR`, else [`DEFAULT_DIR`].
    pub fn dir() -> PathBuf {
        std::env::var_os("KUBEGRID_APISERVER_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
    }

    /// The build in `dir`, when it is complete.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::NotBuilt {
                    dir: dir.to_path_buf(),
                    missing: name.to_owned(),
                })
            }
        };
        let versions_path = file("versions.txt")?;
        Ok(Self {
            apiserver: file("apiextensions-apiserver")?,
            etcd: file("etcd")?,
            kubectl: file("kubectl")?,
            versions: std::fs::read_to_string(&versions_path).map_err(|source| Error::Io {
                what: "read the build's package versions",
                path: versions_path,
                source,
            })?,
        })
    }

    /// The build for test `test`: `None` (and a SKIPPED line) when it is missing on a
    /// developer's machine; in CI (`CI` set) a missing build fails the test, so a lost setup
    /// step cannot pass unnoticed.
    pub fn for_test(test: &str) -> Option<Self> {
        match Self::in_dir(&Self::dir()) {
            Ok(binaries) => Some(binaries),
            Err(error) => {
                assert!(!in_ci(), "{test}: {error}");
                eprintln!("SKIPPED {test}: {error}");
                None
            }
        }
    }

    /// The version of Debian package `package` in this build, e.g. `1.36.4+ds-1` for kubectl.
    pub fn package_version(&self, package: &str) -> Option<&str> {
        self.versions.lines().find_map(|line| {
            let (name, version) = line.split_once(' ')?;
            (name == package).then_some(version)
        })
    }
}

/// Whether this runs in CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}
