//! `kubegrid bundle build` against a loopback upstream (the std HTTP server shared with the
//! kubegrid-bundle tests, operator/bundle/tests/server): a build through a mirror prints its
//! report and writes a bundle that verifies; a cut download and a 503 are retried; a
//! checksum mismatch exits 1 naming the artifact; bad flags exit 2; a sources file with
//! duplicate names, http:// URLs or `..` in names exits 2 before anything is fetched.

#[path = "../bundle/tests/server/mod.rs"]
mod server;

use std::{path::Path, process::Command};

use serde_json::Value;
use server::Server;
use sha2::{Digest as _, Sha256};

const KUBEADM: &str = "/dl.k8s.io/release/v1.0.0/bin/linux/amd64/kubeadm";
const RUNC: &str = "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.amd64";

const SOURCES: &str = r#"version: 1
components:
  kubernetes:
    artifacts:
      - name: kubeadm
        kind: binary
        url: https://dl.k8s.io/release/v{v}/bin/linux/{arch}/kubeadm
        checksum: {file: "{url}.sha256", format: single}
  runc:
    artifacts:
      - name: runc
        kind: binary
        url: https://github.com/opencontainers/runc/releases/download/v{v}/runc.{arch}
        checksum:
          file: https://github.com/opencontainers/runc/releases/download/v{v}/runc.sha256sum
          format: sha256sum
releases:
  "1.0.0":
    components: {kubernetes: 1.0.0, runc: 1.1.0}
"#;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn upstream() -> (Server, Vec<u8>) {
    let server = Server::start();
    let kubeadm: Vec<u8> = (0..120_000u32).map(|i| (i % 251) as u8).collect();
    server.put(KUBEADM, kubeadm.clone());
    server.put(&format!("{KUBEADM}.sha256"), sha(&kubeadm));
    server.put(RUNC, b"runc binary".to_vec());
    server.put(
        "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.sha256sum",
        format!("{}  runc.amd64\n", sha(b"runc binary")),
    );
    (server, kubeadm)
}

/// `bundle build` for Kubernetes `version` on `arch` through `server` as the mirror.
fn build(
    dir: &Path,
    server: &Server,
    version: &str,
    arch: &str,
    extra: &[&str],
) -> std::process::Output {
    build_from(dir, server, SOURCES, version, arch, extra)
}

/// [`build`] from the sources text `sources`.
fn build_from(
    dir: &Path,
    server: &Server,
    sources_text: &str,
    version: &str,
    arch: &str,
    extra: &[&str],
) -> std::process::Output {
    let sources = dir.join("sources.yaml");
    std::fs::write(&sources, sources_text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["bundle", "build", "--k8s-version", version, "--arch", arch])
        .args(["--mirror", &server.url(), "--retry-wait-ms", "1"])
        .arg("--sources")
        .arg(&sources)
        .arg("--out")
        .arg(dir.join("bundle.tar.zst"))
        .args(extra)
        .output()
        .expect("run kubegrid")
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_build_through_a_mirror_resumes_retries_and_reports() {
    let (server, kubeadm) = upstream();
    server.cut(KUBEADM, 40_000, 1);
    server.fail(RUNC, 1);
    let tmp = tempfile::tempdir().unwrap();
    let out = build(tmp.path(), &server, "1.0.0", "amd64", &["-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["kubernetes"], "1.0.0");
    assert_eq!(report["arches"], serde_json::json!(["amd64"]));
    assert_eq!(report["artifacts"], 2);
    let file = tmp.path().join("bundle.tar.zst");
    assert_eq!(report["sha256"], sha(&std::fs::read(&file).unwrap()));

    let starts: Vec<_> = server
        .seen_for(KUBEADM)
        .iter()
        .map(|s| s.range_start)
        .collect();
    assert_eq!(starts, [None, Some(40_000)]);
    assert_eq!(server.seen_for(RUNC).len(), 2);
    assert!(server.seen().iter().all(|s| !s.path.starts_with("/https")));

    // The packed bundle unpacks to a tree whose every file verifies.
    let dir = tmp.path().join("unpacked");
    kubegrid_bundle::unpack(&file, &dir).unwrap();
    let bundle = kubegrid_plan::Bundle::open(&dir).unwrap();
    assert_eq!(
        bundle.binary("kubeadm", "amd64").unwrap().sha256,
        sha(&kubeadm)
    );
    assert_eq!(bundle.manifest().version, 2);
}

#[test]
fn a_checksum_mismatch_exits_1_naming_the_artifact_and_bad_flags_exit_2() {
    let (server, _) = upstream();
    server.put(&format!("{KUBEADM}.sha256"), sha(b"not kubeadm"));
    let tmp = tempfile::tempdir().unwrap();
    let out = build(tmp.path(), &server, "1.0.0", "amd64", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checksum mismatch for kubernetes 1.0.0 amd64 kubeadm")
            && stderr.contains(&format!("expected {}", sha(b"not kubeadm"))),
        "{stderr}"
    );
    assert!(!tmp.path().join("bundle.tar.zst").exists());

    let out = build(tmp.path(), &server, "1.0.0", "amd64,riscv64", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture `riscv64`"));
    let out = build(tmp.path(), &server, "9.9.9", "amd64", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("they have: 1.0.0"));
}

#[test]
fn a_bad_sources_file_exits_2_before_any_download() {
    let (server, _) = upstream();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            SOURCES.replacen(
                "  runc:\n",
                "  kubernetes:\n    artifacts:\n      - {name: kubectl, kind: binary, url: \"https://e.org/{v}/{arch}\", checksum: {sha256: {}}}\n  runc:\n",
                1,
            ),
            "`kubernetes` is defined twice",
        ),
        (
            SOURCES.replace("      - name: runc\n", "      - name: kubeadm\n"),
            "name `kubeadm` is already given by",
        ),
        (
            SOURCES.replace(
                "url: https://dl.k8s.io/release/",
                "url: http://dl.k8s.io/release/",
            ),
            "is not an https:// URL",
        ),
        (
            SOURCES.replace("      - name: runc\n", "      - name: ../runc\n"),
            "is not a plain file name",
        ),
    ];
    for (text, want) in cases {
        let out = build_from(tmp.path(), &server, &text, "1.0.0", "amd64", &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    assert!(
        server.seen().is_empty(),
        "fetched: {:?}",
        server.seen().len()
    );
    assert!(!tmp.path().join("bundle.tar.zst").exists());
}
