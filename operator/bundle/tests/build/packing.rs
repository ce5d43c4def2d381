//! pack / unpack / open_packed: round trip, reproducibility, and archives a bundle must never
//! unpack.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use kubegrid_bundle::{Error, open_packed, pack, unpack};

fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("dl.k8s.io/release/bin")).unwrap();
    std::fs::create_dir_all(dir.join("images/blobs/sha256")).unwrap();
    std::fs::write(dir.join("manifest.yaml"), "version: 2\nfiles: []\n").unwrap();
    let bin = dir.join("dl.k8s.io/release/bin/kubeadm");
    std::fs::write(&bin, b"#!/bin/sh\necho kubeadm\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("images/oci-layout"), b"{}").unwrap();
}

/// (relative path, content or None for a directory, mode bits) of every entry, sorted.
fn listing(root: &Path) -> Vec<(String, Option<Vec<u8>>, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            if path.is_dir() {
                out.push((rel, None, mode));
                stack.push(path);
            } else {
                out.push((rel, Some(std::fs::read(&path).unwrap()), mode & 0o111));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pack_and_unpack_round_trip_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let a = tmp.path().join("a.tar.zst");
    let b = tmp.path().join("b.tar.zst");
    pack(&src, &a).unwrap();
    pack(&src, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!tmp.path().join("a.tar.zst.partial").exists());

    let back = tmp.path().join("back");
    unpack(&a, &back).unwrap();
    let (want, got) = (listing(&src), listing(&back));
    let files = |l: &[(String, Option<Vec<u8>>, u32)]| {
        l.iter()
            .filter(|e| e.1.is_some())
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&got), files(&want));
    assert_eq!(
        got.iter().map(|e| &e.0).collect::<Vec<_>>(),
        want.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    // Unpacking never merges into an existing directory.
    let err = unpack(&a, &back).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

/// A tar.zst with one entry whose raw name is `name` (bypassing the tar crate's own checks).
fn hostile(file: &Path, name: &str, kind: tar::EntryType) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let body: &[u8] = if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
        b""
    } else {
        b"owned"
    };
    header.set_size(body.len() as u64);
    header.set_cksum();
    let encoder =
        zstd::stream::write::Encoder::new(std::fs::File::create(file).unwrap(), 3).unwrap();
    let mut tar = tar::Builder::new(encoder);
    tar.append(&header, body).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn unpacking_refuses_traversal_and_links_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (name, kind)) in [
        ("../evil", tar::EntryType::Regular),
        ("/tmp/evil-absolute", tar::EntryType::Regular),
        ("ok/../../evil", tar::EntryType::Regular),
        ("link", tar::EntryType::Symlink),
    ]
    .into_iter()
    .enumerate()
    {
        let file = tmp.path().join(format!("hostile-{i}.tar.zst"));
        hostile(&file, name, kind);
        let target = tmp.path().join(format!("out-{i}"));
        let err = unpack(&file, &target).unwrap_err();
        assert!(matches!(err, Error::Unpack { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(!target.exists(), "{name}: nothing is left behind");
    }
    assert!(!tmp.path().join("evil").exists());
    assert!(!Path::new("/tmp/evil-absolute").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("hostile-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn open_packed_unpacks_once_per_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let file = tmp.path().join("b.tar.zst");
    pack(&src, &file).unwrap();
    let cache = tmp.path().join("cache");
    let dir = open_packed(&file, &cache).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&file).unwrap(),
    ));
    assert_eq!(dir, cache.join(&sha));
    // A marker written into the unpacked tree survives a second open: it was reused.
    std::fs::write(dir.join("marker"), b"x").unwrap();
    assert_eq!(open_packed(&file, &cache).unwrap(), dir);
    assert!(dir.join("marker").exists());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
}
