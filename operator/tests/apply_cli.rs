//! `kubegrid apply`/`plan`/`history` refusals that need no host: bad input exits 2 before any
//! connection, with a message naming what was wrong. Runs against addresses in TEST-NET-1,
//! which are never contacted because validation stops first.

use std::{fs, path::Path, process::Command};

use serde_json::Value;

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid")
}

/// A valid spec in `dir`, with a key file and the bundle at `bundle`.
fn spec(dir: &Path, bundle: &str, extra_node: &str) -> String {
    fs::write(dir.join("key"), "not really a key, but readable").unwrap();
    let text = format!(
        "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {{address: 192.0.2.10, port: 6443}}
  network: {{podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}}
  containerRuntime: {{containerd: {{version: \"1.6\"}}}}
  bundle: {{source: {bundle}}}
  ssh: {{privateKeyFile: key}}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {{name: n1}}
spec: {{clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]}}
{extra_node}"
    );
    let path = dir.join("spec.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn journal(dir: &Path) -> String {
    dir.join("journal.db").to_str().unwrap().to_string()
}

#[test]
fn an_invalid_spec_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let dup = "---\napiVersion: kubegrid.io/v1alpha1\nkind: Node\nmetadata: {name: n2}\nspec: {clusterName: t, address: 192.0.2.10, roles: [worker]}\n";
    let spec = spec(dir.path(), "bundle", dup);
    let out = kubegrid(&[
        "apply",
        "-f",
        &spec,
        "--journal",
        &journal(dir.path()),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    let message = doc["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + &doc["error"]["causes"].to_string();
    assert!(
        message.contains("n2") && message.contains("address"),
        "{doc}"
    );
    assert_eq!(doc["error"]["exitCode"], 2);
    assert!(
        !dir.path().join("journal.db").exists(),
        "nothing is recorded for a refused spec"
    );
}

#[test]
fn a_corrupt_bundle_exits_2_naming_the_file_and_both_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    fs::create_dir_all(bundle.join("debs")).unwrap();
    fs::write(bundle.join("debs/runc.deb"), b"tampered").unwrap();
    let want = "0".repeat(64);
    fs::write(
        bundle.join("manifest.yaml"),
        format!(
            "version: 1\nfiles:\n  - path: debs/runc.deb\n    sha256: {want}\n    size: 8\n    arch: amd64\n    kind: deb\n    name: runc\n    version: \"1.1.5\"\n"
        ),
    )
    .unwrap();
    let spec = spec(dir.path(), "bundle", "");
    // --insecure-bundle skips only the signature: the artifact check still refuses.
    let out = kubegrid(&[
        "plan",
        "-f",
        &spec,
        "--insecure-bundle",
        "--journal",
        &journal(dir.path()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runc.deb") && err.contains(&want), "{err}");
}

/// A one-artifact bundle in `dir/bundle`, signed with a new key pair `dir/key{,.pub}` when
/// `signed`; returns the public key path.
fn signed_bundle(dir: &Path, signed: bool) -> String {
    let bundle = dir.join("bundle");
    fs::create_dir_all(bundle.join("bin")).unwrap();
    fs::write(bundle.join("bin/tool"), b"tool").unwrap();
    fs::write(
        bundle.join("manifest.yaml"),
        format!(
            "version: 1\nfiles:\n  - {{path: bin/tool, sha256: {}, size: 4, arch: amd64, kind: binary, name: tool, version: \"1\"}}\n",
            sha256_hex(b"tool")
        ),
    )
    .unwrap();
    let private = dir.join("bundle.key");
    let public = dir.join("bundle.key.pub");
    let out = kubegrid(&[
        "bundle",
        "keygen",
        "--private",
        private.to_str().unwrap(),
        "--public",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    if signed {
        let out = kubegrid(&[
            "bundle",
            "sign",
            bundle.to_str().unwrap(),
            "--key",
            private.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    public.to_str().unwrap().to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `plan` with `extra` flags; returns the exit code and stderr.
fn plan(dir: &Path, spec: &str, extra: &[&str]) -> (Option<i32>, String) {
    let journal = journal(dir);
    let mut args = vec!["plan", "-f", spec, "--journal", &journal];
    args.extend_from_slice(extra);
    let out = kubegrid(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unsigned_bundle_is_refused_unless_insecure_bundle_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let public = signed_bundle(dir.path(), false);
    let spec = spec(dir.path(), "bundle", "");
    let (code, err) = plan(dir.path(), &spec, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no public key") && err.contains("--insecure-bundle"),
        "{err}"
    );
    let (code, err) = plan(dir.path(), &spec, &["--bundle-public-key", &public]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not signed"), "{err}");
    // With the signature skipped the bundle opens, and its contents are checked against
    // the spec next: this one-artifact bundle holds nothing the Node needs.
    let (code, err) = plan(dir.path(), &spec, &["--insecure-bundle"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not fit the spec"), "{err}");
    // A bad --until is refused before the bundle is even opened.
    let (code, err) = plan(dir.path(), &spec, &["--until", "nosuch"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--until nosuch: no such phase"), "{err}");
}

#[test]
fn a_signed_bundle_passes_and_a_tampered_or_foreign_signed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let public = signed_bundle(dir.path(), true);
    // The key named in the spec, relative to the spec's directory.
    let spec_path = spec(dir.path(), "bundle", "");
    let text = fs::read_to_string(&spec_path).unwrap().replace(
        "bundle: {source: bundle}",
        "bundle: {source: bundle, publicKeyFile: bundle.key.pub}",
    );
    fs::write(&spec_path, text).unwrap();
    // The signature verifies; what refuses is the next check, the bundle's contents.
    let (code, err) = plan(dir.path(), &spec_path, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not fit the spec"), "{err}");

    // Signed with another key: the flag overrides the spec's key, and the signature fails.
    let other = tempfile::tempdir().unwrap();
    let foreign = signed_bundle(other.path(), true);
    let (code, err) = plan(dir.path(), &spec_path, &["--bundle-public-key", &foreign]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not match manifest"), "{err}");

    // An artifact changed after signing is named, with both checksums.
    fs::write(dir.path().join("bundle/bin/tool"), b"evil").unwrap();
    let (code, err) = plan(dir.path(), &spec_path, &["--bundle-public-key", &public]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bin/tool") && err.contains(&sha256_hex(b"evil")),
        "{err}"
    );
    assert!(!dir.path().join("journal.db").exists(), "nothing recorded");
}

#[test]
fn an_unknown_skip_check_exits_2_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "bundle", "");
    let out = kubegrid(&[
        "apply",
        "-f",
        &spec,
        "--skip-check",
        "nosuch",
        "--journal",
        &journal(dir.path()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch") && err.contains("ports") && err.contains("swap"),
        "{err}"
    );
}

#[test]
fn history_of_a_new_journal_is_empty_and_logs_of_a_missing_operation_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path());
    let out = kubegrid(&["history", "--journal", &j, "-o", "json"]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["operations"], serde_json::json!([]));
    let out = kubegrid(&["logs", "42", "--journal", &j]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operation 42"));
}
