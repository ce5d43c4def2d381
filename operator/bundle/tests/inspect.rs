//! inspect and diff on small fake bundles, compared with golden JSON under tests/golden/
//! (regenerate with UPDATE_GOLDEN=1).

mod common;

use std::path::{Path, PathBuf};

use kubegrid_bundle::{ArtifactKey, diff, generate_key, inspect, sign};

fn golden(name: &str, value: &impl serde::Serialize) {
    let actual = serde_json::to_string_pretty(value).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn inspect_lists_arches_and_artifacts_by_kind() {
    let tmp = tempfile::tempdir().unwrap();
    common::sample(tmp.path());
    let mut seen = inspect(tmp.path()).unwrap();
    assert!(!seen.signed);
    assert_eq!(seen.arches, ["all", "amd64", "arm64"]);
    seen.dir = PathBuf::from("BUNDLE");
    golden("inspect.json", &seen);

    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    generate_key(&keys.join("k"), &keys.join("k.pub")).unwrap();
    sign(tmp.path(), &keys.join("k")).unwrap();
    assert!(inspect(tmp.path()).unwrap().signed);
}

#[test]
fn diff_reports_added_removed_and_changed_by_kind_name_and_arch() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    common::sample(a.path());
    common::write_bundle(
        b.path(),
        "test-amd64",
        &[
            // Same as in A.
            (
                "debs/amd64/containerd.deb",
                "deb",
                "containerd",
                "1.6.20~ds1-1",
                "amd64",
                b"containerd package bytes",
            ),
            // New version.
            (
                "debs/amd64/runc.deb",
                "deb",
                "runc",
                "1.1.12",
                "amd64",
                b"runc 1.1.12 bytes",
            ),
            // Same version, rebuilt content.
            (
                "cni/all/cni-plugins.tgz",
                "archive",
                "cni-plugins",
                "1.1.1",
                "all",
                b"cni archive, repacked",
            ),
            // etcd for amd64 instead of arm64: one added, one removed.
            (
                "bin/amd64/etcd",
                "binary",
                "etcd",
                "3.4.23",
                "amd64",
                b"etcd amd64 binary",
            ),
        ],
    );
    let mut d = diff(a.path(), b.path()).unwrap();
    let key = |kind: &str, name: &str, arch: &str| ArtifactKey {
        kind: kind.into(),
        name: name.into(),
        arch: arch.into(),
    };
    assert_eq!(
        d.added.iter().map(|v| &v.key).collect::<Vec<_>>(),
        [&key("binary", "etcd", "amd64")]
    );
    assert_eq!(
        d.removed.iter().map(|v| &v.key).collect::<Vec<_>>(),
        [&key("binary", "etcd", "arm64")]
    );
    assert_eq!(
        d.changed.iter().map(|c| &c.key).collect::<Vec<_>>(),
        [
            &key("archive", "cni-plugins", "all"),
            &key("deb", "runc", "amd64")
        ]
    );
    d.a = PathBuf::from("A");
    d.b = PathBuf::from("B");
    golden("diff.json", &d);

    assert!(diff(a.path(), a.path()).unwrap().is_empty());
}

#[test]
fn inspect_refuses_an_unknown_manifest_version() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("manifest.yaml"), "version: 3\nfiles: []\n").unwrap();
    let err = inspect(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("manifest.yaml") && err.contains("version is 3"),
        "{err}"
    );
}
