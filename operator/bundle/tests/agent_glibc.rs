//! The kubegrid-agent that bundles carry starts on the oldest host kubegrid supports: its
//! highest required glibc symbol version is at most GLIBC_2.28 (RHEL 8).
//!
//! The agents are the ones `.ci/setup` builds with `agent/build-glibc228.sh` into
//! `/var/cache/kubegrid/agent` (or `$KUBEGRID_GLIBC228_AGENT_DIR`). A developer without them
//! gets SKIPPED; in CI (`CI` set) a missing agent fails, so a lost setup step cannot pass.

use std::path::PathBuf;

use kubegrid_bundle::{GLIBC_FLOOR, check_agent, inspect_agent};
use kubegrid_plan::Arch;

fn agent_dir() -> PathBuf {
    std::env::var_os("KUBEGRID_GLIBC228_AGENT_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/kubegrid/agent"), PathBuf::from)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// The built agent for `arch`, or None (SKIPPED) when it is missing outside CI.
fn built_agent(arch: &str, test: &str) -> Option<PathBuf> {
    let path = agent_dir().join(format!("kubegrid-agent-{arch}"));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{test}: no agent at {}; CI must check it (.ci/setup builds it with agent/build-glibc228.sh)",
        path.display()
    );
    eprintln!("SKIPPED {test}: no agent at {}", path.display());
    None
}

#[test]
fn the_amd64_agent_needs_at_most_glibc_2_28() {
    let Some(path) = built_agent("amd64", "the_amd64_agent_needs_at_most_glibc_2_28") else {
        return;
    };
    let seen = inspect_agent(&path).unwrap();
    assert_eq!(seen.arch, Arch::Amd64, "{}", path.display());
    let need = seen
        .glibc
        .expect("a glibc-linked agent lists GLIBC_ versions");
    assert!(
        need <= GLIBC_FLOOR,
        "{} requires {}, newer than GLIBC_2.28",
        path.display(),
        seen.glibc_text()
    );
    check_agent(&path).unwrap();
}

#[test]
fn the_arm64_agent_needs_at_most_glibc_2_28() {
    let Some(path) = built_agent("arm64", "the_arm64_agent_needs_at_most_glibc_2_28") else {
        return;
    };
    let seen = inspect_agent(&path).unwrap();
    assert_eq!(seen.arch, Arch::Arm64, "{}", path.display());
    assert!(
        seen.glibc.is_some_and(|v| v <= GLIBC_FLOOR),
        "{} requires {}",
        path.display(),
        seen.glibc_text()
    );
}

/// The check can fail: an agent linked on this machine (Debian 12, glibc 2.36) uses symbols
/// from glibc 2.34 (`__libc_start_main@GLIBC_2.34`), and `bundle build` refuses it.
#[test]
fn an_agent_linked_against_this_machines_glibc_is_refused() {
    let exe = std::env::current_exe().unwrap();
    let Some(agent) = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|t| t.join("kubegrid-agent"))
        .filter(|p| p.is_file())
    else {
        eprintln!(
            "SKIPPED: no kubegrid-agent built beside this test (cargo build -p kubegrid-agent)"
        );
        return;
    };
    let seen = inspect_agent(&agent).unwrap();
    if seen.glibc.is_some_and(|v| v <= GLIBC_FLOOR) {
        eprintln!("SKIPPED: this machine's glibc links {}", seen.glibc_text());
        return;
    }
    let err = check_agent(&agent).unwrap_err().to_string();
    assert!(
        err.contains(&seen.glibc_text()) && err.contains("newer than GLIBC_2.28"),
        "{err}"
    );
    assert!(err.contains("cargo zigbuild"), "the hint says how: {err}");
}
