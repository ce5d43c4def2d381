//! Small fake bundles in a temporary directory, written in offline-bundle/README.md's format.

use std::path::Path;

use sha2::{Digest as _, Sha256};

/// One artifact: path, kind, name, version, arch, content.
pub type Entry<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a [u8]);

/// Writes the artifacts under `dir` and a manifest.yaml listing them with their sha256.
pub fn write_bundle(dir: &Path, name: &str, entries: &[Entry<'_>]) {
    let mut manifest = format!("version: 1\nname: {name}\nfiles:\n");
    for (path, kind, pkg, version, arch, content) in entries {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        manifest.push_str(&format!(
            "  # test artifact\n  - path: {path}\n    sha256: {}\n    size: {}\n    arch: {arch}\n    kind: {kind}\n    name: {pkg}\n    version: \"{version}\"\n",
            hex::encode(Sha256::digest(content)),
            content.len()
        ));
    }
    std::fs::write(dir.join("manifest.yaml"), manifest).unwrap();
}

/// The standard test bundle: two debs, a binary, an archive.
pub fn sample(dir: &Path) {
    write_bundle(
        dir,
        "test-amd64",
        &[
            (
                "debs/amd64/containerd.deb",
                "deb",
                "containerd",
                "1.6.20~ds1-1",
                "amd64",
                b"containerd package bytes",
            ),
            (
                "debs/amd64/runc.deb",
                "deb",
                "runc",
                "1.1.5",
                "amd64",
                b"runc package bytes",
            ),
            (
                "bin/arm64/etcd",
                "binary",
                "etcd",
                "3.4.23",
                "arm64",
                b"etcd arm64 binary",
            ),
            (
                "cni/all/cni-plugins.tgz",
                "archive",
                "cni-plugins",
                "1.1.1",
                "all",
                b"cni archive",
            ),
        ],
    );
}
