use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use super::*;

/// A .deb whose data.tar.xz holds `./`, `./bin/`, `./bin/busybox` (0755), a doc file and a
/// symlink `./bin/link`.
fn deb(dir: &Path, busybox: &[u8]) -> PathBuf {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("./bin/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "./bin/busybox",
        tar::EntryType::Regular,
        0o755,
        busybox,
        None,
    );
    add(
        "./bin/link",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("busybox"),
    );
    add(
        "./usr/share/doc/busybox-static/copyright",
        tar::EntryType::Regular,
        0o644,
        b"GPL",
        None,
    );
    let data = tar.into_inner().unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut data.as_slice(), &mut xz).unwrap();
    let mut ar = ar::Builder::new(Vec::new());
    for (id, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", Vec::new()),
        ("data.tar.xz", xz),
    ] {
        let header = ar::Header::new(id.as_bytes().to_vec(), bytes.len() as u64);
        ar.append(&header, bytes.as_slice()).unwrap();
    }
    let path = dir.join("busybox-static_1.0-1_amd64.deb");
    std::fs::write(&path, ar.into_inner().unwrap()).unwrap();
    path
}

fn busybox_rootfs() -> DebRootfs {
    DebRootfs {
        name: "busybox".into(),
        files: vec!["bin/busybox".into()],
        links: [("bin/sh".to_string(), "busybox".to_string())].into(),
    }
}

/// Bytes that do not compress to nothing and span several tar blocks.
fn program() -> Vec<u8> {
    (0..5000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn the_rootfs_is_byte_for_byte_what_gnu_tar_writes_from_the_unpacked_files() {
    let dir = tempfile::tempdir().unwrap();
    let deb = deb(dir.path(), &program());
    let ours = dir.path().join("ours.tar");
    make(&deb, &busybox_rootfs(), &ours).unwrap();

    // What offline-bundle/dev-bundle.sh does with the same package.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/busybox"), program()).unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    for (path, mode) in [("", 0o755), ("bin", 0o755), ("bin/busybox", 0o755)] {
        std::fs::set_permissions(tree.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let theirs = dir.path().join("gnu.tar");
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--format=gnu",
            "-cf",
        ])
        .arg(&theirs)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .expect("GNU tar");
    assert!(status.success());
    let (ours, theirs) = (std::fs::read(ours).unwrap(), std::fs::read(theirs).unwrap());
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "the rootfs tar differs from GNU tar's");

    let mut names = Vec::new();
    for entry in tar::Archive::new(ours.as_slice()).entries().unwrap() {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names, ["./", "./bin/", "./bin/busybox", "./bin/sh"]);
}

#[test]
fn a_file_the_package_lacks_is_named_with_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let deb = deb(dir.path(), b"x");
    let mut rootfs = busybox_rootfs();
    rootfs.files = vec!["usr/bin/busybox".into()];
    let err = make(&deb, &rootfs, &dir.path().join("out.tar"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("root file system `busybox`")
            && err.contains("busybox-static_1.0-1_amd64.deb")
            && err.contains("the package has no file `usr/bin/busybox`")
            && err.contains("bin/busybox, usr/share/doc/busybox-static/copyright"),
        "{err}"
    );
    assert!(!dir.path().join("out.tar").exists());
}

#[test]
fn a_link_in_the_package_is_not_taken_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let deb = deb(dir.path(), b"x");
    let mut rootfs = busybox_rootfs();
    rootfs.files = vec!["bin/link".into()];
    let err = make(&deb, &rootfs, &dir.path().join("out.tar"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`bin/link` in the package is not a regular file"),
        "{err}"
    );
}

#[test]
fn the_rootfs_sits_beside_its_package() {
    assert_eq!(
        bundle_path(
            Path::new(
                "deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb"
            ),
            "busybox"
        ),
        Path::new(
            "deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4_amd64/busybox.tar"
        )
    );
}
