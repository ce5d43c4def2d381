//! The on-disk layout without any registry: creation, atomic blob writes, index.json.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use kubegrid_oci::{Digest, Error, Layout, media::OCI_INDEX};

use crate::common::{new_layout, top_descriptor};

/// Compares `actual` with the committed golden file, or rewrites it under UPDATE_GOLDEN=1.
fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs; run with UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn create_writes_the_fixed_files_and_reopens() {
    let (dir, layout) = new_layout();
    let root = dir.path().join("images");
    assert_eq!(
        std::fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert!(layout.images().unwrap().is_empty());
    assert!(root.join("blobs/sha256").is_dir());
    let digest = layout.write_blob(b"kept").unwrap();
    let again = Layout::create(&root).unwrap();
    assert!(
        again.has_blob(&digest),
        "create on an existing layout opens it"
    );
    Layout::open(&root).unwrap();
}

#[test]
fn open_refuses_what_is_not_a_layout() {
    let dir = tempfile::TempDir::new().unwrap();
    let err = Layout::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::OpenLayout { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = Layout::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("2.0.0"), "{err}");
}

#[tokio::test]
async fn streamed_blobs_appear_only_when_their_digest_matches() {
    let (_dir, layout) = new_layout();
    let content = b"layer bytes".to_vec();
    let right = Digest::of(&content);
    let wrong = Digest::of(b"something else");
    let chunks = || {
        futures::stream::iter([
            Ok::<_, std::io::Error>(content[..5].to_vec()),
            Ok(content[5..].to_vec()),
        ])
    };

    let err = layout
        .write_blob_stream(&wrong, chunks())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BlobDigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(right.as_str()) && err.to_string().contains(wrong.as_str()));
    assert!(!layout.has_blob(&wrong));
    let broken = futures::stream::iter([Ok(b"lay".to_vec()), Err(std::io::Error::other("cut"))]);
    let err = layout.write_blob_stream(&right, broken).await.unwrap_err();
    assert!(matches!(err, Error::ReceiveBlob { .. }), "{err:?}");
    let leftovers = std::fs::read_dir(layout.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "failed writes leave no temporary files");

    assert_eq!(
        layout.write_blob_stream(&right, chunks()).await.unwrap(),
        11
    );
    assert_eq!(layout.read_blob(&right).unwrap(), content);
    let mode = std::fs::metadata(layout.blob_path(&right))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "other users (registry, blob server) read layouts"
    );
}

#[test]
fn set_image_names_images_for_oci_and_containerd_and_replaces_by_name() {
    let (_dir, layout) = new_layout();
    let old = br#"{"schemaVersion":2,"manifests":[]}"#;
    let new = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    layout.write_blob(old).unwrap();
    layout.write_blob(new).unwrap();
    layout
        .set_image("registry.k8s.io/pause:3.10", top_descriptor(OCI_INDEX, old))
        .unwrap();
    layout
        .set_image(
            "docker.io/library/busybox:1.36",
            top_descriptor(OCI_INDEX, old),
        )
        .unwrap();
    layout
        .set_image("registry.k8s.io/pause:3.10", top_descriptor(OCI_INDEX, new))
        .unwrap();
    let names: Vec<String> = layout
        .images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:1.36",
            "registry.k8s.io/pause:3.10"
        ]
    );
    assert_eq!(
        layout
            .image("registry.k8s.io/pause:3.10")
            .unwrap()
            .unwrap()
            .digest,
        Digest::of(new).as_str()
    );
    assert_golden(
        "index.json",
        &std::fs::read_to_string(layout.index_path()).unwrap(),
    );
    let report = layout.verify(&[Digest::of(new), Digest::of(old)]).unwrap();
    assert_eq!((report.images, report.blobs), (2, 2));
}
