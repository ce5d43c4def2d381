//! Artifacts of kind `deb` and `rootfs`: a sources file pins single Debian packages and a
//! rootfs tarball by sha256; they land in the bundle as fetched, as manifest kinds `deb` and
//! `rootfs`, with the release's version string for their component.

use kubegrid_bundle::{ArtifactKind, Error, ExpectedChecksum, Sources};
use kubegrid_plan::{Arch, Bundle, FileKind};

use crate::{
    fixtures::{content, sha, unpacked},
    server::Server,
};

const DEB: &str =
    "/deb.debian.org/debian/pool/main/c/containerd/containerd_1.6.20~ds1-1+deb12u3_amd64.deb";
const ROOTFS: &str = "/images.example.org/busybox/busybox-amd64.tar";

fn sources(deb_sha: &str, rootfs_sha: &str) -> String {
    format!(
        r#"version: 1
components:
  kubernetes:
    artifacts:
      - name: kubeadm
        kind: binary
        url: https://dl.k8s.io/release/v{{v}}/bin/linux/{{arch}}/kubeadm
        checksum: {{sha256: {{"1.0.0": {{amd64: {kubeadm}}}}}}}
  containerd:
    artifacts:
      - name: containerd
        kind: deb
        url: https://deb.debian.org/debian/pool/main/c/containerd/containerd_{{v}}_{{arch}}.deb
        checksum: {{sha256: {{"1.6.20~ds1-1+deb12u3": {{amd64: {deb_sha}}}}}}}
  busybox:
    artifacts:
      - name: busybox
        kind: rootfs
        url: https://images.example.org/busybox/busybox-{{arch}}.tar
        checksum: {{sha256: {{"1:1.35.0-4": {{amd64: {rootfs_sha}}}}}}}
releases:
  "1.0.0":
    components: {{kubernetes: 1.0.0, containerd: "1.6.20~ds1-1+deb12u3", busybox: "1:1.35.0-4"}}
"#,
        kubeadm = sha(b"kubeadm"),
    )
}

#[test]
fn deb_and_rootfs_artifacts_plan_as_their_manifest_kinds_with_their_pins() {
    let text = sources(&sha(b"deb"), &sha(b"rootfs"));
    let sources = Sources::parse(&text, "test").unwrap();
    let plan = sources.plan("1.0.0", &[Arch::Amd64], None, &[]).unwrap();
    let deb = plan
        .files
        .iter()
        .find(|f| f.component == "containerd")
        .unwrap();
    assert_eq!(deb.kind, FileKind::Deb);
    assert_eq!(deb.version, "1.6.20~ds1-1+deb12u3");
    assert_eq!(
        deb.url,
        "https://deb.debian.org/debian/pool/main/c/containerd/containerd_1.6.20~ds1-1+deb12u3_amd64.deb"
    );
    assert_eq!(deb.checksum, ExpectedChecksum::Pinned(sha(b"deb")));
    let rootfs = plan
        .files
        .iter()
        .find(|f| f.component == "busybox")
        .unwrap();
    assert_eq!(rootfs.kind, FileKind::Rootfs);
    assert_eq!(ArtifactKind::Rootfs.file_kind(), FileKind::Rootfs);

    // Without a pin for the asked arch the plan names the file before anything is fetched.
    let err = sources
        .plan("1.0.0", &[Arch::Amd64, Arch::Arm64], None, &[])
        .unwrap_err();
    assert!(matches!(err, Error::MissingPin { .. }), "{err}");
}

#[test]
fn deb_and_rootfs_artifacts_need_a_name_and_a_deb_a_deb_url() {
    let good = sources(&sha(b"deb"), &sha(b"rootfs"));
    let cases = [
        (
            good.replace(
                "      - name: containerd\n        kind: deb",
                "      - kind: deb",
            ),
            "component `containerd` artifact 1 (https://deb.debian.org/debian/pool/main/c/containerd/containerd_{v}_{arch}.deb): a `deb` artifact needs a `name`",
        ),
        (
            good.replace(
                "      - name: busybox\n        kind: rootfs",
                "      - kind: rootfs",
            ),
            "a `rootfs` artifact needs a `name`",
        ),
        (
            good.replace("containerd_{v}_{arch}.deb", "containerd_{v}_{arch}.tar.gz"),
            "a `deb` artifact's URL must end in `.deb`",
        ),
        (
            good.replace("kind: deb", "kind: rpm"),
            "unknown variant `rpm`, expected one of `binary`, `archive`, `deb`, `rootfs`",
        ),
    ];
    for (text, want) in cases {
        let err = Sources::parse(&text, "test").unwrap_err().to_string();
        assert!(err.contains(want), "want `{want}` in: {err}");
    }
}

#[tokio::test]
async fn a_build_stores_pinned_debs_and_rootfs_as_fetched_and_refuses_a_wrong_one() {
    let server = Server::start();
    let (deb, rootfs) = (content(7, 30_000), content(8, 20_000));
    server.put(
        "/dl.k8s.io/release/v1.0.0/bin/linux/amd64/kubeadm",
        &b"kubeadm"[..],
    );
    server.put(DEB, deb.clone());
    server.put(ROOTFS, rootfs.clone());
    let sources = Sources::parse(&sources(&sha(&deb), &sha(&rootfs)), "test").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle.tar.zst");
    let mut opts = kubegrid_bundle::BuildOptions::new("1.0.0", &[Arch::Amd64]);
    opts.mirrors = vec![server.url()];
    opts.progress = false;
    let report = kubegrid_bundle::build(&sources, &opts, &out).await.unwrap();
    assert_eq!(report.artifacts, 3);

    let bundle = Bundle::open(&unpacked(&out, tmp.path())).unwrap();
    let file = bundle
        .manifest()
        .files
        .iter()
        .find(|f| f.name.as_deref() == Some("containerd"))
        .unwrap();
    assert_eq!(file.kind, FileKind::Deb);
    assert_eq!(file.sha256, sha(&deb));
    assert_eq!(file.version.as_deref(), Some("1.6.20~ds1-1+deb12u3"));
    assert_eq!(file.component.as_deref(), Some("containerd"));
    assert_eq!(file.path, std::path::Path::new(DEB.trim_start_matches('/')));
    let file = bundle.rootfs("amd64").unwrap();
    assert_eq!(file.kind, FileKind::Rootfs);
    assert_eq!(file.name.as_deref(), Some("busybox"));
    assert_eq!(file.version.as_deref(), Some("1:1.35.0-4"));
    assert_eq!(file.sha256, sha(&rootfs));

    // A mirror serving other bytes for the pinned deb fails the build, naming it.
    server.put(DEB, content(9, 30_000));
    let out = tmp.path().join("bad.tar.zst");
    let err = kubegrid_bundle::build(&sources, &opts, &out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "containerd 1.6.20~ds1-1+deb12u3 amd64 containerd_1.6.20~ds1-1+deb12u3_amd64.deb"
        ),
        "{err}"
    );
    assert!(!out.exists());
}
