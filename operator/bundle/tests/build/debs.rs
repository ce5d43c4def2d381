//! Debian packages: chosen from repository indexes (gz and xz), verified against them, and
//! served from the bundle's own flat apt repository.

use std::io::Read as _;

use kubegrid_bundle::{Error, Sources, build};
use kubegrid_plan::{Arch, Bundle, FileKind};

use crate::{
    fixtures::{Upstream, deb, sha, unpacked},
    golden,
};

fn control(name: &str, version: &str, arch: &str) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Test <test@example.org>\nDescription: {name} for tests\n multi-line description\n"
    )
}

fn stanza(name: &str, version: &str, arch: &str, filename: &str, bytes: &[u8]) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nFilename: {filename}\nSize: {}\nSHA256: {}\n\n",
        bytes.len(),
        sha(bytes)
    )
}

/// Two fake Debian repositories: `main` (Packages.gz) with containerd in two versions and an
/// old runc, `security` (Packages.xz) with a newer runc; and a flat NVIDIA-style repository.
fn repos(up: &Upstream) -> String {
    let s = &up.server;
    let containerd_old = deb(&control("containerd", "1.6.20~ds1-1", "amd64"), true);
    let containerd = deb(
        &control("containerd", "1.6.20~ds1-1+deb12u1", "amd64"),
        true,
    );
    let runc_old = deb(&control("runc", "1.1.5+ds1-1", "amd64"), false);
    let runc = deb(&control("runc", "1.1.5+ds1-1+deb12u1", "amd64"), false);
    let tools = deb(&control("toolkit-tools", "1.2.3-1", "all"), true);
    let pool = "/deb.example.org/debian/pool/main";
    s.put(
        &format!("{pool}/c/containerd/containerd_1.6.20~ds1-1_amd64.deb"),
        containerd_old.clone(),
    );
    s.put(
        &format!("{pool}/c/containerd/containerd_1.6.20~ds1-1+deb12u1_amd64.deb"),
        containerd.clone(),
    );
    s.put(
        &format!("{pool}/r/runc/runc_1.1.5+ds1-1_amd64.deb"),
        runc_old.clone(),
    );
    s.put(
        "/deb.example.org/security/pool/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb",
        runc.clone(),
    );
    s.put(
        "/nvidia.example.org/deb/amd64/toolkit-tools_1.2.3-1_all.deb",
        tools.clone(),
    );

    let main = [
        stanza(
            "containerd",
            "1.6.20~ds1-1+deb12u1",
            "amd64",
            "pool/main/c/containerd/containerd_1.6.20~ds1-1+deb12u1_amd64.deb",
            &containerd,
        ),
        stanza(
            "containerd",
            "1.6.20~ds1-1",
            "amd64",
            "pool/main/c/containerd/containerd_1.6.20~ds1-1_amd64.deb",
            &containerd_old,
        ),
        stanza(
            "runc",
            "1.1.5+ds1-1",
            "amd64",
            "pool/main/r/runc/runc_1.1.5+ds1-1_amd64.deb",
            &runc_old,
        ),
        stanza(
            "runc",
            "9.9",
            "arm64",
            "pool/main/r/runc/runc_9.9_arm64.deb",
            b"other arch",
        ),
    ]
    .concat();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, main.as_bytes()).unwrap();
    s.put(
        "/deb.example.org/debian/dists/test/main/binary-amd64/Packages.gz",
        gz.finish().unwrap(),
    );
    let security = stanza(
        "runc",
        "1.1.5+ds1-1+deb12u1",
        "amd64",
        "pool/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb",
        &runc,
    );
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut security.as_bytes(), &mut xz).unwrap();
    s.put(
        "/deb.example.org/security/dists/test-security/main/binary-amd64/Packages.xz",
        xz,
    );
    s.put(
        "/nvidia.example.org/deb/amd64/Packages",
        stanza(
            "toolkit-tools",
            "1.2.3-1",
            "all",
            "./toolkit-tools_1.2.3-1_all.deb",
            &tools,
        ),
    );

    let sources = up.sources.replace(
        "releases:",
        r#"  toolkit:
    debs:
      repos:
        - {index: "https://nvidia.example.org/deb/{arch}/Packages", base: "https://nvidia.example.org/deb/{arch}/"}
      packages:
        - {name: toolkit-tools, version: "{v}-1"}
osPackages:
  test-distro:
    repos:
      - index: https://deb.example.org/debian/dists/test/main/binary-{arch}/Packages.gz
        base: https://deb.example.org/debian/
      - index: https://deb.example.org/security/dists/test-security/main/binary-{arch}/Packages.xz
        base: https://deb.example.org/security
    packages:
      - {name: containerd}
      - {name: runc, component: runtime}
releases:"#,
    );
    sources.replace("kata: 3.0.0}", "kata: 3.0.0, toolkit: 1.2.3}")
}

#[tokio::test]
async fn os_packages_come_with_an_apt_repository_built_from_their_control_files() {
    let up = Upstream::start();
    let sources = Sources::parse(&repos(&up), "test").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("b.tar.zst");
    let mut opts = up.options();
    opts.os_packages = Some("test-distro".into());
    let report = build(&sources, &opts, &out).await.unwrap();
    assert_eq!(
        report.apt_repository.as_deref(),
        Some(std::path::Path::new("repos/test-distro"))
    );

    let dir = unpacked(&out, tmp.path());
    let bundle = Bundle::open(&dir).unwrap();
    let debs: Vec<_> = bundle
        .manifest()
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Deb)
        .map(|f| {
            (
                f.name.clone().unwrap(),
                f.version.clone().unwrap(),
                f.arch,
                f.component.clone().unwrap(),
                f.path.display().to_string(),
            )
        })
        .collect();
    assert_eq!(
        debs,
        [
            (
                "toolkit-tools".into(),
                "1.2.3-1".into(),
                Arch::All,
                "toolkit".into(),
                "nvidia.example.org/deb/amd64/toolkit-tools_1.2.3-1_all.deb".into()
            ),
            (
                "containerd".into(),
                "1.6.20~ds1-1+deb12u1".into(),
                Arch::Amd64,
                "containerd".into(),
                "deb.example.org/debian/pool/main/c/containerd/containerd_1.6.20~ds1-1+deb12u1_amd64.deb".into()
            ),
            (
                "runc".into(),
                "1.1.5+ds1-1+deb12u1".into(),
                Arch::Amd64,
                "runtime".into(),
                "deb.example.org/security/pool/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb".into()
            ),
        ]
    );
    let packages = std::fs::read_to_string(dir.join("repos/test-distro/Packages")).unwrap();
    golden("apt-Packages", &packages);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(dir.join("repos/test-distro/Packages.gz")).unwrap(),
    )
    .read_to_string(&mut unzipped)
    .unwrap();
    assert_eq!(unzipped, packages);
    let mut unxz = Vec::new();
    let xz = std::fs::read(dir.join("repos/test-distro/Packages.xz")).unwrap();
    lzma_rs::xz_decompress(&mut xz.as_slice(), &mut unxz).unwrap();
    assert_eq!(String::from_utf8(unxz).unwrap(), packages);
}

#[tokio::test]
async fn a_pinned_deb_version_missing_from_the_index_is_named() {
    let up = Upstream::start();
    let text = repos(&up).replace("version: \"{v}-1\"", "version: \"{v}-7\"");
    let sources = Sources::parse(&text, "test").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = build(&sources, &up.options(), &tmp.path().join("b.tar.zst"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DebNotFound { .. }), "{text}");
    assert!(
        text.contains("toolkit: Debian package toolkit-tools 1.2.3-7 for amd64")
            && text.contains("versions seen: 1.2.3-1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deb_that_does_not_match_its_index_is_refused() {
    let up = Upstream::start();
    let sources = Sources::parse(&repos(&up), "test").unwrap();
    up.server.put(
        "/nvidia.example.org/deb/amd64/toolkit-tools_1.2.3-1_all.deb",
        b"tampered".to_vec(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let err = build(&sources, &up.options(), &tmp.path().join("b.tar.zst"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { what, .. } if what == "toolkit 1.2.3-1 all (deb toolkit-tools)"),
        "{err}"
    );
}
