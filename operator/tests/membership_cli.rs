//! `kubegrid apply` refusing an etcd membership change of an installed cluster: exit 2 with
//! the arithmetic, before any host is contacted (the spec's addresses are in TEST-NET-1 and
//! the journal records the install), and `--force` accepting an even count only.

use std::{fs, path::Path, process::Command};

use kubegrid_journal::Journal;

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid")
}

/// A spec whose Nodes `nodes` are control-plane/etcd members; the bundle is an empty
/// directory, so a spec the membership rules accept stops at the bundle instead.
fn spec(dir: &Path, nodes: &[&str]) -> String {
    fs::write(dir.join("key"), "not really a key, but readable").unwrap();
    fs::create_dir_all(dir.join("empty-bundle")).unwrap();
    let mut text = "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {address: 192.0.2.10, port: 6443}
  network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  containerRuntime: {containerd: {version: \"1.6\"}}
  bundle: {source: empty-bundle}
  ssh: {privateKeyFile: key}
"
    .to_string();
    for (i, n) in nodes.iter().enumerate() {
        text.push_str(&format!(
            "---\napiVersion: kubegrid.io/v1alpha1\nkind: Node\nmetadata: {{name: {n}}}\nspec: {{clusterName: t, address: 192.0.2.{}, roles: [control-plane, etcd]}}\n",
            i + 20
        ));
    }
    let path = dir.join(format!("spec-{}.yaml", nodes.join("-")));
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A journal that records cluster `t` as installed with members `nodes`.
fn installed_journal(dir: &Path, nodes: &[&str]) -> String {
    let path = dir.join("journal.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let journal = Journal::open(&path).await.unwrap();
        journal.put_installed_version("t", "1.31.4").await.unwrap();
        for n in nodes {
            let record = serde_json::json!({
                "address": "192.0.2.99", "port": 22, "user": "root",
                "roles": ["control-plane", "etcd"],
            });
            journal
                .put_member("t", n, &record.to_string())
                .await
                .unwrap();
        }
        journal.close().await;
    });
    path.to_str().unwrap().to_string()
}

fn apply(spec: &str, journal: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["apply", "-f", spec, "--journal", journal];
    args.extend_from_slice(extra);
    let out = kubegrid(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn membership_changes_of_an_installed_cluster_are_checked_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let journal = installed_journal(dir.path(), &["n1", "n2", "n3"]);

    // A quorum loss: refused, --force or not.
    let one = spec(dir.path(), &["n3"]);
    for extra in [&[][..], &["--force"]] {
        let (code, stderr) = apply(&one, &journal, extra);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(
                "removing n1 and n2 leaves 1 of 3 etcd members: a 3-member cluster needs 2 for quorum"
            ),
            "{stderr}"
        );
    }

    // An even count: refused without --force, with the arithmetic.
    let four = spec(dir.path(), &["n1", "n2", "n3", "n4"]);
    let (code, stderr) = apply(&four, &journal, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "adding n4 makes 4 members, an even count that tolerates no more failures than 3; pass --force to accept"
        ),
        "{stderr}"
    );
    // With --force the membership rules pass (and the odd-count validation is not applied to
    // an installed cluster): the apply goes on to the missing bundle.
    let (code, stderr) = apply(&four, &journal, &["--force"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("even"), "{stderr}");
    assert!(stderr.contains("empty-bundle"), "{stderr}");
}

#[test]
fn a_cluster_not_installed_keeps_the_odd_count_rule() {
    let dir = tempfile::tempdir().unwrap();
    let four = spec(dir.path(), &["n1", "n2", "n3", "n4"]);
    let journal = dir.path().join("journal.db");
    let (code, stderr) = apply(&four, journal.to_str().unwrap(), &["--force"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("an odd number of etcd members"), "{stderr}");
}
