//! `kubegrid reset` refusals that need no host (no terminal and no `--yes`, a name typed
//! wrong: exit 2 before any connection, nothing journaled), and `kubegrid version`. The spec
//! names addresses in TEST-NET-1, which are never contacted because the refusal comes first.
//! Resets that reach hosts are in the e2e tests (bootstrap_safety).

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

/// The spec, with a key file (a fresh ed25519 key from ssh-keygen, which opens nothing) and
/// an empty, unsigned bundle beside it (reset checks the key files and opens the bundle, for
/// the agent, before it asks).
fn spec(dir: &Path) -> String {
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "reset-test", "-f"])
        .arg(dir.join("key"))
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(keygen.status.success(), "{keygen:?}");
    let bundle = dir.join("bundle");
    fs::create_dir(&bundle).unwrap();
    fs::write(
        bundle.join("manifest.yaml"),
        "version: 1\nname: t\nfiles: []\n",
    )
    .unwrap();
    let text = "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {name: prod}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {address: 192.0.2.10, port: 6443}
  network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  containerRuntime: {containerd: {version: \"1.6\"}}
  bundle: {source: bundle}
  ssh: {privateKeyFile: key}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {name: n1}
spec: {clusterName: prod, address: 192.0.2.10, roles: [control-plane, etcd, worker]}
";
    let path = dir.join("spec.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn reset_without_a_terminal_or_yes_exits_2_and_journals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let journal = dir.path().join("journal.db");
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["reset", "-f", &spec, "--journal"])
        .arg(&journal)
        .args(["-o", "json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no terminal to confirm on"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(stderr.contains("prod"), "names the cluster: {stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["exitCode"], 2);
    assert!(!journal.exists(), "nothing was journaled");
}

#[test]
fn reset_refuses_a_mistyped_cluster_name_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let bundle = dir.path().join("bundle");
    let journal = dir.path().join("journal.db");
    // `script` gives kubegrid a terminal; what is typed arrives on it.
    let command = format!(
        "{} reset -f {spec} --bundle {} --insecure-bundle --journal {}",
        env!("CARGO_BIN_EXE_kubegrid"),
        bundle.display(),
        journal.display()
    );
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    child.stdin.take().unwrap().write_all(b"staging\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("Type the cluster's name (prod)"), "{text}");
    assert!(text.contains("/var/lib/etcd"), "says what goes: {text}");
    assert!(text.contains("reset not confirmed"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(!journal.exists(), "nothing was journaled");
}

#[test]
fn version_reports_kubegrid_the_agent_it_pushes_and_the_bundle_formats() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("kubegrid-agent");
    fs::write(
        &agent,
        "#!/bin/sh\n[ \"$1\" = version ] && echo 'kubegrid-agent 9.8.7'\n",
    )
    .unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["version", "-o", "json"])
        .env("KUBEGRID_AGENT_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kubegrid"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["bundleFormat"], 2);
    assert_eq!(doc["bundleFormatsRead"], serde_json::json!([1, 2]));
    assert!(
        doc["agentProtocol"].as_u64().is_some_and(|p| p >= 2),
        "{doc}"
    );
    let agents = doc["agents"].as_array().unwrap();
    let found = agents
        .iter()
        .find(|a| a["path"] == agent.to_str().unwrap())
        .unwrap_or_else(|| panic!("the agent in KUBEGRID_AGENT_DIR is not listed: {doc}"));
    assert_eq!(found["version"], "9.8.7");
    assert_eq!(found["sha256"].as_str().map(str::len), Some(64));

    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .arg("version")
        .env("KUBEGRID_AGENT_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("kubegrid {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("9.8.7"), "{text}");
    assert!(text.contains("bundle format 2 (reads 1, 2)"), "{text}");
}
