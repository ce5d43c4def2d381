//! `kubegrid bundle build --agent FILE`: the agent goes into the bundle's `agent/` folder
//! under its ELF arch with a `kind: agent` entry; an agent that needs a glibc newer than 2.28,
//! one for an arch the bundle is not for, or two for one arch exit 2 before any download.

#[expect(
    dead_code,
    reason = "the shared loopback server offers cuts and failures these tests do not use"
)]
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

fn upstream() -> Server {
    let server = Server::start();
    let mut sums = String::new();
    for arch in ["amd64", "arm64"] {
        let kubeadm = KUBEADM.replace("amd64", arch);
        server.put(&kubeadm, b"kubeadm binary".to_vec());
        server.put(&format!("{kubeadm}.sha256"), sha(b"kubeadm binary"));
        server.put(&RUNC.replace("amd64", arch), b"runc binary".to_vec());
        sums.push_str(&format!("{}  runc.{arch}\n", sha(b"runc binary")));
    }
    server.put(
        "/github.com/opencontainers/runc/releases/download/v1.1.0/runc.sha256sum",
        sums,
    );
    server
}

/// The 64-byte header of a little-endian ELF64 executable for `machine` with no sections:
/// what a static binary shows the checks (no glibc symbol versions).
fn static_elf(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h
}

fn build(dir: &Path, server: &Server, arch: &str, extra: &[&str]) -> std::process::Output {
    let sources = dir.join("sources.yaml");
    std::fs::write(&sources, SOURCES).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["bundle", "build", "--k8s-version", "1.0.0", "--arch", arch])
        .args([
            "--mirror",
            &server.url(),
            "--retry-wait-ms",
            "1",
            "-o",
            "json",
        ])
        .arg("--sources")
        .arg(&sources)
        .arg("--out")
        .arg(dir.join("bundle.tar.zst"))
        .args(extra)
        .output()
        .expect("run kubegrid")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn agents_go_into_the_agent_folder_under_their_elf_arch() {
    let server = upstream();
    let tmp = tempfile::tempdir().unwrap();
    let (amd64, arm64) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::write(&amd64, static_elf(62)).unwrap(); // EM_X86_64
    std::fs::write(&arm64, static_elf(183)).unwrap(); // EM_AARCH64
    let out = build(
        tmp.path(),
        &server,
        "amd64,arm64",
        &[
            "--agent",
            amd64.to_str().unwrap(),
            "--agent",
            arm64.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arches: Vec<&str> = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{report}");
    assert_eq!(report["agents"][0]["path"], "agent/kubegrid-agent-amd64");
    assert_eq!(report["agents"][0]["glibc"], "no glibc");

    let dir = tmp.path().join("unpacked");
    kubegrid_bundle::unpack(&tmp.path().join("bundle.tar.zst"), &dir).unwrap();
    let bundle = kubegrid_plan::Bundle::open(&dir).unwrap();
    for (arch, bytes) in [("amd64", static_elf(62)), ("arm64", static_elf(183))] {
        let entry = bundle
            .manifest()
            .files
            .iter()
            .find(|f| f.kind == kubegrid_plan::FileKind::Agent && f.arch.as_str() == arch)
            .unwrap_or_else(|| panic!("no agent entry for {arch}"));
        assert_eq!(
            entry.path,
            Path::new(&format!("agent/kubegrid-agent-{arch}"))
        );
        assert_eq!(entry.name.as_deref(), Some("kubegrid-agent"));
        assert_eq!(entry.sha256, sha(&bytes));
    }
}

#[test]
fn unfit_agents_exit_2_before_any_download() {
    let server = upstream();
    let tmp = tempfile::tempdir().unwrap();
    let arm64 = tmp.path().join("arm");
    std::fs::write(&arm64, static_elf(183)).unwrap();
    let script = tmp.path().join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let amd64 = tmp.path().join("amd");
    std::fs::write(&amd64, static_elf(62)).unwrap();
    // The kubegrid binary itself: linked on this machine against its glibc.
    let linked = env!("CARGO_BIN_EXE_kubegrid");
    let needs_new_glibc = kubegrid_bundle::inspect_agent(Path::new(linked))
        .unwrap()
        .glibc
        .is_some_and(|v| v > kubegrid_bundle::GLIBC_FLOOR);
    let a = |p: &Path| p.to_str().unwrap().to_string();
    let mut cases = vec![
        (
            vec![a(&arm64)],
            "it is built for arm64, but the bundle is for amd64",
        ),
        (vec![a(&script)], "not a 64-bit ELF executable"),
        (
            vec![a(&amd64), a(&amd64)],
            "a second kubegrid-agent for amd64",
        ),
    ];
    if needs_new_glibc {
        cases.push((vec![linked.to_string()], "newer than GLIBC_2.28"));
    }
    for (agents, want) in cases {
        let mut extra = Vec::new();
        for p in &agents {
            extra.extend(["--agent", p.as_str()]);
        }
        let out = build(tmp.path(), &server, "amd64", &extra);
        assert_eq!(out.status.code(), Some(2), "{agents:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{agents:?}: {}", stderr(&out));
        assert!(server.seen().is_empty(), "{agents:?}: nothing is fetched");
        assert!(!tmp.path().join("bundle.tar.zst").exists());
    }
}
