//! The kubegrid-agent built for glibc 2.28 starts on a Debian 11 lab host (glibc 2.31), where
//! one linked on this Debian 12 machine does not; and a host whose architecture has no agent
//! is refused before anything on any host changes.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use kubegrid_e2e::{LabGuard, bundle_dir, describe, glibc228_agent, kubegrid_bin};
use serde_json::Value;

/// What a host looks like before kubegrid ever changed it.
/// Any run that changes a host installs the agent under /var/lib/kubegrid first.
const UNTOUCHED: &str = "test ! -e /var/lib/kubegrid && echo untouched";

/// Runs stop after the playbook's first phase: these tests are about the agent, and the
/// bundle then need not fit the rest of the lab spec.
const FIRST_PHASE: &str = "os-prepare";

/// A copy of the e2e bundle (hard links) in the lab's state directory holding exactly the
/// `agents` given, added the way .ci/setup adds them to the dev bundle. Unsigned: these
/// tests are about the agent; apply gets --insecure-bundle.
fn bundle_with(lab: &LabGuard, agents: &[&Path]) -> PathBuf {
    let dir = lab.state_dir.join("bundle");
    let _ = std::fs::remove_dir_all(&dir);
    run("cp", &["-al", path(&bundle_dir()), path(&dir)]);
    let _ = std::fs::remove_file(dir.join("manifest.yaml.sig"));
    if !agents.is_empty() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/bundle-add-agent.sh");
        let mut args = vec![path(&dir)];
        args.extend(agents.iter().map(|a| path(a)));
        run(path(&script), &args);
    }
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}:\n{}",
        describe(&out)
    );
}

/// `kubegrid <verb> -f <lab spec> -o json` against `bundle`, with `agent_dir` as
/// KUBEGRID_AGENT_DIR when given.
fn kubegrid(lab: &LabGuard, verb: &[&str], bundle: &Path, agent_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(kubegrid_bin());
    cmd.args(verb)
        .args(["-f", path(&lab.spec()), "-o", "json", "--journal"])
        .arg(lab.journal())
        .arg("--bundle")
        .arg(bundle)
        .arg("--insecure-bundle")
        .env_remove("KUBEGRID_AGENT_DIR")
        .stdin(Stdio::null());
    if let Some(dir) = agent_dir {
        cmd.env("KUBEGRID_AGENT_DIR", dir);
    }
    cmd.output().expect("run kubegrid")
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a hash")
        .to_string()
}

#[test]
fn the_glibc_2_28_agent_starts_on_debian_11_where_a_debian_12_built_one_does_not() {
    let agent = glibc228_agent();
    let mut lab = LabGuard::reserve();
    lab.bring_up_with(1, &["--release", "bullseye"]);
    let host = lab.hosts[0].clone();
    assert_eq!(lab.list()["hosts"][0]["release"], "bullseye");
    let version = lab.ssh_ok(&host, "cat /etc/debian_version");
    assert!(version.starts_with("11."), "/etc/debian_version: {version}");
    let ldd = lab.ssh_ok(&host, "ldd --version | head -n 1");
    assert!(ldd.ends_with(" 2.31"), "ldd --version: {ldd}");

    // The Debian 12 build first: it cannot start there, so the run stops at facts, and the
    // test could tell a working agent from a broken one.
    let native = kubegrid_bin()
        .parent()
        .map(|d| d.join("kubegrid-agent"))
        .filter(|p| p.is_file())
        .expect("the debug kubegrid-agent beside kubegrid (cargo build -p kubegrid-agent)");
    let native_dir = lab.state_dir.join("native-agent");
    std::fs::create_dir_all(&native_dir).unwrap();
    std::fs::copy(&native, native_dir.join("kubegrid-agent-amd64")).unwrap();
    let bundle = bundle_with(&lab, &[&agent]);
    let out = kubegrid(
        &lab,
        &["plan", "--until", FIRST_PHASE],
        &bundle,
        Some(&native_dir),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    let text = describe(&out);
    assert!(
        text.contains("version `GLIBC_2.3") && text.contains("not found"),
        "the Debian 12 agent fails on glibc 2.31 naming the missing version:\n{text}"
    );

    // The bundle's glibc 2.28 agent runs facts and preflight there, and the report says which
    // agent it used.
    let out = kubegrid(&lab, &["plan", "--until", FIRST_PHASE], &bundle, None);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan prints JSON ({e}):\n{}", describe(&out)));
    let used = &report["hosts"][0]["agent"];
    assert_eq!(
        used["source"], "bundle agent/kubegrid-agent-amd64",
        "{report}"
    );
    assert_eq!(used["sha256"], sha256(&agent), "{report}");
    assert_eq!(used["arch"], "amd64", "{report}");
    let os = &report["hosts"][0]["os"];
    assert_eq!(os["id"], "debian", "{report}");
    assert!(
        os["versionId"].as_str().is_some_and(|v| v == "11"),
        "{report}"
    );
}

#[test]
fn an_arm64_host_without_an_arm64_agent_is_refused_before_any_host_changes() {
    let agent = glibc228_agent();
    let lab = LabGuard::up(2);
    // lab-1 says it is an arm64 machine: a `uname` that answers -m with aarch64, first on
    // root's and sudo's PATH.
    lab.ssh_ok(
        &lab.hosts[0],
        "printf '#!/bin/sh\\n[ \"$1\" = -m ] && { echo aarch64; exit 0; }\\nexec /bin/uname \"$@\"\\n' > /usr/local/bin/uname && chmod 0755 /usr/local/bin/uname && uname -m",
    );
    assert_eq!(lab.ssh_ok(&lab.hosts[0], "uname -m"), "aarch64");
    let bundle = bundle_with(&lab, &[&agent]);
    let manifest = std::fs::read_to_string(bundle.join("manifest.yaml")).unwrap();
    assert!(
        !manifest.contains("path: agent/kubegrid-agent-arm64"),
        "this test needs a bundle without an arm64 agent"
    );
    let out = kubegrid(&lab, &["apply", "--until", FIRST_PHASE], &bundle, None);
    assert!(!out.status.success(), "{}", describe(&out));
    let text = describe(&out);
    assert!(
        text.contains(
            "lab-1: the host is aarch64 (arm64) and there is no kubegrid-agent for arm64"
        ) && text.contains("the bundle's manifest (kind: agent, arch: arm64)")
            && text.contains("bundle build --agent"),
        "{text}"
    );
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(h, UNTOUCHED),
            "untouched",
            "{} was changed",
            h.name
        );
    }
}
