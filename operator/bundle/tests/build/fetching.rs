//! Downloads through mirrors: rewriting, checksum files of every format, pins, refused
//! mismatches, resume after a cut, retries, mirror fallback.

use kubegrid_bundle::{Error, build, bundle_path, mirror_candidates, parse_mirror};
use kubegrid_plan::{Bundle, FileKind};

use crate::{
    fixtures::{ETCD, KATA, KUBEADM, RUNC, Upstream, sha, unpacked},
    golden,
};

#[test]
fn a_mirror_keeps_the_upstream_host_as_the_first_path_element() {
    let url = "https://dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm";
    let mirrors = vec![
        parse_mirror("https://mirror.example/files/").unwrap(),
        parse_mirror("http://10.0.0.1:8080").unwrap(),
    ];
    assert_eq!(
        mirror_candidates(url, &mirrors).unwrap(),
        [
            "https://mirror.example/files/dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm",
            "http://10.0.0.1:8080/dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm",
        ]
    );
    assert_eq!(mirror_candidates(url, &[]).unwrap(), [url]);
    assert_eq!(
        bundle_path(url).unwrap(),
        std::path::Path::new("dl.k8s.io/release/v1.34.2/bin/linux/amd64/kubeadm")
    );
    let err = parse_mirror("ftp://mirror.example").unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
}

#[tokio::test]
async fn a_build_verifies_every_file_and_writes_a_version_2_manifest() {
    let up = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle.tar.zst");
    let report = build(&up.sources(), &up.options(), &out).await.unwrap();

    assert_eq!(report.artifacts, 5, "{report:?}");
    assert_eq!(report.images, 0);
    assert!(report.images_not_included.is_empty());
    assert_eq!(report.sha256, sha(&std::fs::read(&out).unwrap()));
    // The work directory the build chose is gone; nothing half-written is left.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["bundle.tar.zst"]);
    // Every request went to the mirror with the upstream host first.
    for seen in up.server.seen() {
        assert!(
            seen.path.starts_with("/dl.k8s.io/") || seen.path.starts_with("/github.com/"),
            "{seen:?}"
        );
    }

    let dir = unpacked(&out, tmp.path());
    let bundle = Bundle::open(&dir).expect("every listed file verifies");
    let manifest = bundle.manifest();
    assert_eq!(manifest.version, 2);
    assert_eq!(manifest.kubernetes.as_deref(), Some("1.0.0"));
    let etcdctl = bundle.binary("etcdctl", "amd64").unwrap();
    assert_eq!(
        etcdctl.path,
        std::path::Path::new(
            "github.com/etcd-io/etcd/releases/download/v3.0.0/etcd-v3.0.0-linux-amd64/etcdctl"
        )
    );
    assert_eq!(etcdctl.sha256, sha(&up.etcdctl));
    assert_eq!(
        etcdctl.source.as_deref(),
        Some(
            "https://github.com/etcd-io/etcd/releases/download/v3.0.0/etcd-v3.0.0-linux-amd64.tar.gz#./etcd-v3.0.0-linux-amd64/etcdctl"
        )
    );
    assert_eq!(
        bundle.binary("etcd", "amd64").unwrap().sha256,
        sha(&up.etcd)
    );
    assert_eq!(
        std::fs::read(dir.join("dl.k8s.io/release/v1.0.0/bin/linux/amd64/kubeadm")).unwrap(),
        up.kubeadm
    );
    assert_eq!(
        bundle.archive("kata", "amd64").unwrap().kind,
        FileKind::Archive
    );
    // The etcd tarball itself has no name, so only its two binaries went in.
    assert!(!dir.join(&ETCD[1..]).exists());
    golden(
        "build-manifest.yaml",
        &std::fs::read_to_string(dir.join("manifest.yaml")).unwrap(),
    );
}

#[tokio::test]
async fn a_checksum_file_mismatch_is_refused_naming_the_artifact() {
    let up = Upstream::start();
    let wrong = sha(b"something else");
    up.server.put(&format!("{KUBEADM}.sha256"), wrong.clone());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle.tar.zst");
    let err = build(&up.sources(), &up.options(), &out).await.unwrap_err();
    let Error::ChecksumMismatch {
        what,
        url,
        expected,
        actual,
    } = &err
    else {
        panic!("expected a checksum mismatch, got {err}");
    };
    assert_eq!(what, "kubernetes 1.0.0 amd64 kubeadm");
    assert_eq!(url, &format!("{}{KUBEADM}", up.server.url()));
    assert_eq!(expected, &wrong);
    assert_eq!(actual, &sha(&up.kubeadm));
    assert!(!err.is_input());
    assert!(!out.exists());
    assert!(!tmp.path().join("bundle.tar.zst.partial").exists());
    // The bad download is not kept for a re-run to trust.
    let kept = tmp
        .path()
        .join("bundle.tar.zst.work/downloads")
        .join(&KUBEADM[1..]);
    assert!(!kept.exists());
}

#[tokio::test]
async fn a_wrong_pin_and_a_missing_checksum_entry_are_refused() {
    let up = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let bad_pin = up
        .sources
        .replace(&sha(&crate::fixtures::content(5, 4_000)), &"a".repeat(64));
    let sources = kubegrid_bundle::Sources::parse(&bad_pin, "test").unwrap();
    let err = build(&sources, &up.options(), &tmp.path().join("a.tar.zst"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { what, .. } if what == "kata 3.0.0 amd64 kata-static-3.0.0-amd64.tar.zst"),
        "{err}"
    );

    up.server.put(
        "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.sha256sum",
        format!("{}  runc.arm64\n", sha(b"x")),
    );
    let err = build(&up.sources(), &up.options(), &tmp.path().join("b.tar.zst"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ChecksumFile { .. }), "{text}");
    assert!(
        text.contains("no entry for `runc.amd64`; it lists runc.arm64"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rerun_resumes_a_cut_download_with_a_range_request() {
    let up = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle.tar.zst");
    up.server.cut(KUBEADM, 50_000, 1);
    let mut opts = up.options();
    opts.retries = 0;
    let err = build(&up.sources(), &opts, &out).await.unwrap_err();
    assert!(matches!(err, Error::Download { .. }), "{err}");
    assert!(
        err.to_string().contains("gave up after 1 attempts"),
        "{err}"
    );
    let partial = tmp
        .path()
        .join("bundle.tar.zst.work/downloads")
        .join(format!("{}.partial", &KUBEADM[1..]));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 50_000);
    assert!(!out.exists());

    build(&up.sources(), &up.options(), &out).await.unwrap();
    let seen = up.server.seen_for(KUBEADM);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range_start, None);
    assert_eq!(seen[1].range_start, Some(50_000));
}

#[tokio::test]
async fn a_cut_within_one_build_is_retried_from_where_it_stopped() {
    let up = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    up.server.cut(KUBEADM, 70_000, 2);
    build(&up.sources(), &up.options(), &tmp.path().join("b.tar.zst"))
        .await
        .unwrap();
    let starts: Vec<_> = up
        .server
        .seen_for(KUBEADM)
        .into_iter()
        .map(|s| s.range_start)
        .collect();
    // The second cut stops 70 000 bytes into the resumed range.
    assert_eq!(starts, [None, Some(70_000), Some(140_000)]);
}

#[tokio::test]
async fn transient_failures_are_retried_and_mirrors_tried_in_order() {
    let up = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    up.server.fail(RUNC, 2);
    let mut opts = up.options();
    opts.mirrors = vec![format!("{}/empty-mirror", up.server.url()), up.server.url()];
    build(&up.sources(), &opts, &tmp.path().join("b.tar.zst"))
        .await
        .unwrap();
    assert_eq!(up.server.seen_for(RUNC).len(), 3, "two 503s, then the file");
    let first_mirror = up.server.seen_for(&format!("/empty-mirror{KATA}"));
    assert_eq!(first_mirror.len(), 1, "a 404 moves on without retrying");

    // With no mirror serving it, the error names every URL tried.
    opts.mirrors = vec![
        format!("{}/a", up.server.url()),
        format!("{}/b", up.server.url()),
    ];
    let err = build(&up.sources(), &opts, &tmp.path().join("c.tar.zst"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/a/") && text.contains("/b/") && text.contains("HTTP 404"),
        "{text}"
    );
}
