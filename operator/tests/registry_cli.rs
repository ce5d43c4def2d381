//! `spec.bundle.registry` refusals that need no host: exit 2 before any connection. The
//! spec names addresses in TEST-NET-1, which are never contacted.

use std::{fs, process::Command};

#[test]
fn a_registry_on_the_last_port_leaves_no_push_port_and_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("key"), "not really a key").unwrap();
    let bundle = dir.path().join("bundle");
    fs::create_dir(&bundle).unwrap();
    fs::write(
        bundle.join("manifest.yaml"),
        "version: 1\nname: t\nfiles: []\n",
    )
    .unwrap();
    let spec = dir.path().join("spec.yaml");
    fs::write(
        &spec,
        "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {address: 192.0.2.10, port: 6443}
  network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  containerRuntime: {containerd: {version: \"1.6\"}}
  bundle: {source: bundle, registry: {host: n1, port: 65535}}
  ssh: {privateKeyFile: key}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {name: n1}
spec: {clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]}
",
    )
    .unwrap();
    let journal = dir.path().join("journal.db");
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["apply", "-f", spec.to_str().unwrap(), "--insecure-bundle"])
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("65535") && stderr.contains("spec.bundle.registry.port"),
        "{stderr}"
    );
    assert!(!journal.exists(), "nothing was journaled");
}
