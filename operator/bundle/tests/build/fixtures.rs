//! A fake upstream on the loopback server: binaries with `single` checksum files, runc with a
//! multi-entry `.sha256sum`, an etcd tarball with SHA256SUMS whose binaries are extracted, and
//! a kata tarball verified by a pin. URLs keep the real upstream hosts; the server answers
//! under `/<host>/<path>`, the way a mirror does.

use std::{io::Write as _, path::Path, time::Duration};

use kubegrid_bundle::{BuildOptions, Sources};
use kubegrid_plan::Arch;
use sha2::{Digest as _, Sha256};

use crate::server::Server;

pub const KUBEADM: &str = "/dl.k8s.io/release/v1.0.0/bin/linux/amd64/kubeadm";
pub const RUNC: &str = "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.amd64";
pub const ETCD: &str =
    "/github.com/etcd-io/etcd/releases/download/v3.0.0/etcd-v3.0.0-linux-amd64.tar.gz";
pub const KATA: &str = "/github.com/kata-containers/kata-containers/releases/download/3.0.0/kata-static-3.0.0-amd64.tar.zst";

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that do not compress to nothing, so cuts land mid-file.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + usize::from(seed) * 7) % 251).unwrap())
        .collect()
}

/// A reproducible tar.gz of (path, content, mode) entries.
pub fn tar_gz(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

pub struct Upstream {
    pub server: Server,
    pub kubeadm: Vec<u8>,
    pub etcd: Vec<u8>,
    pub etcdctl: Vec<u8>,
    /// sources.yaml text for release 1.0.0.
    pub sources: String,
}

impl Upstream {
    pub fn start() -> Upstream {
        let server = Server::start();
        let kubeadm = content(1, 200_000);
        server.put(KUBEADM, kubeadm.clone());
        // dl.k8s.io's `.sha256` files hold the hash alone.
        server.put(&format!("{KUBEADM}.sha256"), sha(&kubeadm));

        let runc = content(2, 5_000);
        server.put(RUNC, runc.clone());
        server.put(
            "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.sha256sum",
            format!(
                "{}  libseccomp-2.5.5.tar.gz\n{}  runc.amd64\n{}  runc.arm64\n",
                sha(b"libseccomp"),
                sha(&runc),
                sha(b"arm64 runc")
            ),
        );

        let etcd = content(3, 3_000);
        let etcdctl = content(4, 2_000);
        let tarball = tar_gz(&[
            ("etcd-v3.0.0-linux-amd64/README.md", b"etcd readme", 0o644),
            ("etcd-v3.0.0-linux-amd64/etcd", &etcd, 0o755),
            ("etcd-v3.0.0-linux-amd64/etcdctl", &etcdctl, 0o755),
        ]);
        server.put(ETCD, tarball.clone());
        server.put(
            "/github.com/etcd-io/etcd/releases/download/v3.0.0/SHA256SUMS",
            format!(
                "{}  etcd-v3.0.0-linux-arm64.tar.gz\n{}  etcd-v3.0.0-linux-amd64.tar.gz\n",
                sha(b"arm64 etcd"),
                sha(&tarball)
            ),
        );

        let kata = content(5, 4_000);
        server.put(KATA, kata.clone());

        let sources = format!(
            r#"version: 1
components:
  kubernetes:
    artifacts:
      - name: kubeadm
        kind: binary
        url: https://dl.k8s.io/release/v{{v}}/bin/linux/{{arch}}/kubeadm
        checksum: {{file: "{{url}}.sha256", format: single}}
  runc:
    artifacts:
      - name: runc
        kind: binary
        url: https://github.com/opencontainers/runc/releases/download/v{{v}}/runc.{{arch}}
        checksum:
          file: https://github.com/opencontainers/runc/releases/download/v{{v}}/runc.sha256sum
          format: sha256sum
  etcd:
    artifacts:
      - kind: archive
        url: https://github.com/etcd-io/etcd/releases/download/v{{v}}/etcd-v{{v}}-linux-{{arch}}.tar.gz
        checksum:
          file: https://github.com/etcd-io/etcd/releases/download/v{{v}}/SHA256SUMS
          format: sha256sum
        extract:
          - {{member: "etcd-v{{v}}-linux-{{arch}}/etcd", name: etcd}}
          - {{member: "./etcd-v{{v}}-linux-{{arch}}/etcdctl", name: etcdctl}}
  kata:
    artifacts:
      - name: kata
        kind: archive
        url: https://github.com/kata-containers/kata-containers/releases/download/{{v}}/kata-static-{{v}}-{{arch}}.tar.zst
        checksum:
          sha256:
            "3.0.0": {{amd64: {kata}}}
releases:
  "1.0.0":
    components: {{kubernetes: 1.0.0, runc: 1.1.0, etcd: 3.0.0, kata: 3.0.0}}
"#,
            kata = sha(&kata),
        );
        Upstream {
            server,
            kubeadm,
            etcd,
            etcdctl,
            sources,
        }
    }

    pub fn sources(&self) -> Sources {
        Sources::parse(&self.sources, "test sources").unwrap()
    }

    /// amd64 through this server as the only mirror, quick retries, no progress bar.
    pub fn options(&self) -> BuildOptions {
        let mut opts = BuildOptions::new("1.0.0", &[Arch::Amd64]);
        opts.mirrors = vec![self.server.url()];
        opts.retries = 3;
        opts.backoff = Duration::from_millis(1);
        opts.progress = false;
        opts
    }
}

/// A .deb: an ar archive with debian-binary, a control.tar (gz or xz) holding ./control, and
/// a data.tar.gz.
pub fn deb(control: &str, xz: bool) -> Vec<u8> {
    let control_tar = {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        tar.into_inner().unwrap()
    };
    let (name, compressed) = if xz {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut control_tar.as_slice(), &mut out).unwrap();
        ("control.tar.xz", out)
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&control_tar).unwrap();
        ("control.tar.gz", gz.finish().unwrap())
    };
    let data = tar_gz(&[("./usr/bin/tool", b"#!/bin/sh\n", 0o755)]);
    let mut ar = ar::Builder::new(Vec::new());
    for (id, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        (name, compressed),
        ("data.tar.gz", data),
    ] {
        let header = ar::Header::new(id.as_bytes().to_vec(), bytes.len() as u64);
        ar.append(&header, bytes.as_slice()).unwrap();
    }
    ar.into_inner().unwrap()
}

/// Unpacks a built bundle into `<dir>/unpacked` and returns that path.
pub fn unpacked(file: &Path, dir: &Path) -> std::path::PathBuf {
    let target = dir.join("unpacked");
    kubegrid_bundle::unpack(file, &target).unwrap();
    target
}
