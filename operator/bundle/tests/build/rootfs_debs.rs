//! The shipped sources' shapes end to end: the container check's rootfs made of a Debian
//! package found in a Packages index (the package itself stays out), and
//! `--include-os-packages` putting deb entries named containerd and runc beside the release
//! archive and binary of the same names.

use std::io::Write as _;

use kubegrid_bundle::{Sources, build};
use kubegrid_plan::{Arch, Bundle, FileKind};

use crate::fixtures::{Upstream, deb, sha, tar_gz, unpacked};

const BUSYBOX_DEB: &str = "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb";
const CONTAINERD: &str = "/github.com/containerd/containerd/releases/download/v2.1.9/containerd-2.1.9-linux-amd64.tar.gz";

/// busybox-static as Debian packs it: ./bin/busybox (0755) and docs, in data.tar.xz.
fn busybox_deb(program: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        ("./bin/busybox", program, 0o755),
        (
            "./usr/share/doc/busybox-static/copyright",
            b"GPL-2".as_slice(),
            0o644,
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    }
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut tar.into_inner().unwrap().as_slice(), &mut xz).unwrap();
    let mut control = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    control.write_all(&tar_gz_free_control()).unwrap();
    let mut ar = ar::Builder::new(Vec::new());
    for (id, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control.finish().unwrap()),
        ("data.tar.xz", xz),
    ] {
        let header = ar::Header::new(id.as_bytes().to_vec(), bytes.len() as u64);
        ar.append(&header, bytes.as_slice()).unwrap();
    }
    ar.into_inner().unwrap()
}

/// A control.tar (uncompressed) with busybox-static's control file.
fn tar_gz_free_control() -> Vec<u8> {
    let control = "Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nArchitecture: amd64\nMaintainer: Test <test@example.org>\nDescription: busybox for tests\n";
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, "./control", control.as_bytes())
        .unwrap();
    tar.into_inner().unwrap()
}

fn stanza(name: &str, version: &str, filename: &str, bytes: &[u8]) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: {filename}\nSize: {}\nSHA256: {}\n\n",
        bytes.len(),
        sha(bytes)
    )
}

#[tokio::test]
async fn a_rootfs_of_a_debian_package_and_os_packages_beside_release_archives() {
    let up = Upstream::start();
    let s = &up.server;
    let program: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let busybox = busybox_deb(&program);
    let control = |name: &str, v: &str| {
        format!(
            "Package: {name}\nVersion: {v}\nArchitecture: amd64\nMaintainer: T <t@example.org>\nDescription: {name}\n"
        )
    };
    let containerd_deb = deb(&control("containerd", "1.6.20~ds1-1+deb12u3"), true);
    let runc_deb = deb(&control("runc", "1.1.5+ds1-1+deb12u1"), false);
    let containerd_deb_path = "pool/main/c/containerd/containerd_1.6.20~ds1-1+deb12u3_amd64.deb";
    let runc_deb_path = "pool/main/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb";
    for (path, bytes) in [
        (BUSYBOX_DEB, &busybox),
        (containerd_deb_path, &containerd_deb),
        (runc_deb_path, &runc_deb),
    ] {
        s.put(&format!("/deb.debian.org/debian/{path}"), bytes.clone());
    }
    let index = [
        stanza(
            "busybox-static",
            "1:1.35.0-4+deb12u1+b1",
            BUSYBOX_DEB,
            &busybox,
        ),
        stanza(
            "containerd",
            "1.6.20~ds1-1+deb12u3",
            containerd_deb_path,
            &containerd_deb,
        ),
        stanza("runc", "1.1.5+ds1-1+deb12u1", runc_deb_path, &runc_deb),
    ]
    .concat();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut index.as_bytes(), &mut xz).unwrap();
    s.put(
        "/deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz",
        xz,
    );
    let archive = tar_gz(&[
        ("bin/containerd", b"containerd 2.1.9", 0o755),
        ("bin/ctr", b"ctr", 0o755),
    ]);
    s.put(CONTAINERD, archive.clone());
    s.put(
        &format!("{CONTAINERD}.sha256sum"),
        format!("{}  containerd-2.1.9-linux-amd64.tar.gz\n", sha(&archive)),
    );

    let repo = r#"      - index: https://deb.debian.org/debian/dists/bookworm/main/binary-{arch}/Packages.xz
        base: https://deb.debian.org/debian/"#;
    let text = up.sources.replace(
        "releases:",
        &format!(
            r#"  containerd:
    artifacts:
      - name: containerd
        kind: archive
        url: https://github.com/containerd/containerd/releases/download/v{{v}}/containerd-{{v}}-linux-{{arch}}.tar.gz
        checksum: {{file: "{{url}}.sha256sum", format: sha256sum}}
  busybox:
    debs:
      repos:
{repo}
      packages:
        - name: busybox-static
          version: "{{v}}"
          rootfs: {{name: busybox, files: [bin/busybox], links: {{bin/sh: busybox}}}}
osPackages:
  debian-12:
    repos:
{repo}
    packages: [{{name: containerd}}, {{name: runc}}]
releases:"#
        ),
    )
    .replace(
        "kata: 3.0.0}",
        "kata: 3.0.0, containerd: 2.1.9, busybox: \"1:1.35.0-4+deb12u1+b1\"}",
    );
    let sources = Sources::parse(&text, "test").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("b.tar.zst");
    let mut opts = up.options();
    opts.os_packages = Some("debian-12".into());
    build(&sources, &opts, &out).await.unwrap();

    let dir = unpacked(&out, tmp.path());
    let bundle = Bundle::open(&dir).unwrap();
    let files = &bundle.manifest().files;
    let entries: Vec<(FileKind, &str, &str)> = files
        .iter()
        .filter(|f| matches!(f.name.as_deref(), Some("containerd" | "runc" | "busybox")))
        .map(|f| {
            (
                f.kind,
                f.name.as_deref().unwrap(),
                f.version.as_deref().unwrap(),
            )
        })
        .collect();
    for want in [
        (FileKind::Archive, "containerd", "2.1.9"),
        (FileKind::Deb, "containerd", "1.6.20~ds1-1+deb12u3"),
        (FileKind::Binary, "runc", "1.1.0"),
        (FileKind::Deb, "runc", "1.1.5+ds1-1+deb12u1"),
        (FileKind::Rootfs, "busybox", "1:1.35.0-4+deb12u1+b1"),
    ] {
        assert!(entries.contains(&want), "{want:?} missing from {entries:?}");
    }
    assert_eq!(entries.len(), 5, "{entries:?}");

    // The rootfs: bin/busybox as packed, an sh link; the package itself is not in the bundle
    // nor in its apt repository.
    let rootfs = files.iter().find(|f| f.kind == FileKind::Rootfs).unwrap();
    assert_eq!(
        rootfs.path.display().to_string(),
        "deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64/busybox.tar"
    );
    assert_eq!(rootfs.arch, Arch::Amd64);
    assert_eq!(rootfs.component.as_deref(), Some("busybox"));
    assert_eq!(
        rootfs.source.as_deref(),
        Some(format!("https://deb.debian.org/debian/{BUSYBOX_DEB}#bin/busybox").as_str())
    );
    let tar = std::fs::read(dir.join(&rootfs.path)).unwrap();
    let mut members = Vec::new();
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        members.push((path, entry.header().mode().unwrap(), link, data == program));
    }
    assert_eq!(
        members,
        [
            ("./".into(), 0o755, None, false),
            ("./bin/".into(), 0o755, None, false),
            ("./bin/busybox".into(), 0o755, None, true),
            ("./bin/sh".into(), 0o777, Some("busybox".into()), false),
        ]
    );
    assert!(
        !files
            .iter()
            .any(|f| f.path.to_string_lossy().ends_with(".deb")
                && f.name.as_deref() == Some("busybox-static"))
    );
    assert!(!dir.join("deb.debian.org/debian").join(BUSYBOX_DEB).exists());
    let apt = std::fs::read_to_string(dir.join("repos/debian-12/Packages")).unwrap();
    assert!(
        apt.contains("Package: containerd\n") && apt.contains("Package: runc\n"),
        "{apt}"
    );
    assert!(!apt.contains("busybox"), "{apt}");
}
