//! Bundle manifests: lookups, and corrupt or missing files caught at open.

use std::fs;

use kubegrid_agent::protocol::PackageFormat;
use kubegrid_plan::{Bundle, Error};

use crate::common::{FAKE_FILES, sha_of, write_bundle};

#[test]
fn open_verifies_and_looks_up_files() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let containerd = bundle
        .package("containerd", "arm64", PackageFormat::Deb)
        .unwrap();
    assert_eq!(containerd.path.to_str().unwrap(), FAKE_FILES[2].path);
    assert_eq!(containerd.version.as_deref(), Some("1.6.20~ds1-1+deb12u3"));
    let rootfs = bundle.rootfs("amd64").unwrap();
    assert_eq!(
        rootfs.sha256,
        sha_of(dir.path(), "rootfs/amd64/busybox.tar")
    );
    assert_eq!(
        bundle.file_path(&rootfs.sha256).unwrap(),
        dir.path().join("rootfs/amd64/busybox.tar")
    );
    assert!(bundle.file_path(&"0".repeat(64)).is_none());
}

#[test]
fn missing_package_and_rootfs_name_what_there_is() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let err = bundle
        .package("runc", "arm64", PackageFormat::Deb)
        .unwrap_err();
    assert!(matches!(err, Error::PackageNotInBundle { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`runc`") && msg.contains("arm64"), "{msg}");
    assert!(
        msg.contains("runc 1.1.5+ds1-1+deb12u1 (amd64 deb)"),
        "{msg}"
    );
    assert!(
        bundle
            .package("containerd", "amd64", PackageFormat::Rpm)
            .is_err()
    );
    let err = bundle.rootfs("arm64").unwrap_err().to_string();
    assert!(err.contains("no rootfs for arch arm64"), "{err}");
}

#[test]
fn a_flipped_byte_is_caught_with_both_checksums() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let path = dir.path().join(FAKE_FILES[1].path);
    let expected = sha_of(dir.path(), FAKE_FILES[1].path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    let actual = sha_of(dir.path(), FAKE_FILES[1].path);
    match Bundle::open(dir.path()).unwrap_err() {
        Error::BundleFileChecksum {
            path: p,
            expected: e,
            actual: a,
        } => {
            assert_eq!((p, e, a), (path, expected, actual));
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn truncated_and_missing_files_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let path = dir.path().join(FAKE_FILES[0].path);
    fs::write(&path, b"short").unwrap();
    let err = Bundle::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::BundleFileSize { actual: 5, .. }),
        "{err:?}"
    );
    fs::remove_file(&path).unwrap();
    let msg = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("is missing") && msg.contains(FAKE_FILES[0].path),
        "{msg}"
    );
}

#[test]
fn bad_manifests_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = Bundle::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::ReadManifest { .. }), "{err:?}");
    let entry = |extra: &str| {
        format!(
            "version: 1\nfiles:\n  - path: {extra}\n    sha256: {}\n    size: 1\n    arch: amd64\n    kind: binary\n",
            "a".repeat(64)
        )
    };
    let write = |text: &str| fs::write(dir.path().join("manifest.yaml"), text).unwrap();
    write(&entry("../etc/passwd"));
    let msg = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("stay inside the bundle"), "{msg}");
    write(&entry("bin/x\n    colour: red"));
    let msg = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("unknown field `colour`") && msg.contains("line 4"),
        "{msg}"
    );
    write(&entry("bin/x").replace("version: 1", "version: 3"));
    let msg = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("version is 3"), "{msg}");
    write(&entry("bin/x").replace("binary", "deb"));
    let msg = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("needs `name` and `version`"), "{msg}");
}
