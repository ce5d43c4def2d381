//! Until kubegrid upgrades clusters, `kubegrid apply` and `plan` refuse a spec whose
//! Kubernetes version differs from the one the journal records as installed: exit 2, naming
//! both versions, before any host is contacted (the hosts are in TEST-NET-1 and no
//! operation is journaled).

use std::{fs, path::Path, process::Command};

use kubegrid_journal::Journal;

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid")
}

/// A valid one-host spec asking for `version`, with an unsigned one-artifact bundle.
fn spec(dir: &Path, version: &str) -> String {
    fs::write(dir.join("key"), "not really a key, but readable").unwrap();
    let bundle = dir.join("bundle");
    fs::create_dir_all(bundle.join("bin")).unwrap();
    fs::write(bundle.join("bin/tool"), b"tool").unwrap();
    use sha2::Digest as _;
    fs::write(
        bundle.join("manifest.yaml"),
        format!(
            "version: 1\nfiles:\n  - {{path: bin/tool, sha256: {}, size: 4, arch: amd64, kind: binary, name: tool, version: \"1\"}}\n",
            hex::encode(sha2::Sha256::digest(b"tool"))
        ),
    )
    .unwrap();
    let text = format!(
        "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  kubernetesVersion: {version}
  controlPlaneEndpoint: {{address: 192.0.2.10, port: 6443}}
  network: {{podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}}
  containerRuntime: {{containerd: {{version: \"1.6\"}}}}
  bundle: {{source: bundle}}
  ssh: {{privateKeyFile: key}}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {{name: n1}}
spec: {{clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]}}
"
    );
    let path = dir.join("spec.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A journal that records cluster `t` as running Kubernetes 1.31.4.
fn installed_journal(dir: &Path) -> String {
    let path = dir.join("journal.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let journal = Journal::open(&path).await.unwrap();
        journal.put_installed_version("t", "1.31.4").await.unwrap();
        journal.close().await;
    });
    path.to_str().unwrap().to_string()
}

#[test]
fn a_version_change_on_an_installed_cluster_exits_2_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let journal = installed_journal(dir.path());
    let spec = spec(dir.path(), "v1.32.0");
    for command in ["plan", "apply"] {
        let started = std::time::Instant::now();
        let out = kubegrid(&[
            command,
            "-f",
            &spec,
            "--journal",
            &journal,
            "--insecure-bundle",
            "--kubeconfig-out",
            dir.path().join("kubeconfig").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("runs Kubernetes v1.31.4")
                && err.contains("asks for v1.32.0")
                && err.contains("kubegrid upgrade apply -f SPEC"),
            "{command}: {err}"
        );
        // Refused from the journal alone: a connection to TEST-NET-1 would take the
        // connect timeout (10 s) and journal an operation.
        assert!(
            started.elapsed().as_secs() < 10,
            "{command} took {:?}",
            started.elapsed()
        );
    }
    let out = kubegrid(&["history", "--journal", &journal, "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["operations"], serde_json::json!([]), "no operation ran");
}
