//! Fixtures for the reconciler scenarios: the TEST STAND-IN API server with a Cluster, its
//! Nodes and an SSH key Secret, and the scripted runner (`scripted.rs`) in place of the engine (these
//! scenarios are about the reconciler; the engine's own tests run it on lab hosts).

use std::{future::Future, time::Duration};

use kubegrid_fake_apiserver::FakeCluster;
use serde_json::{Value, json};

pub use crate::{
    bed::{Backend, Bed, eventually},
    scripted::Plan,
};

/// Namespace of every scenario.
pub const NS: &str = "fleet";
/// The API version of kubegrid's resources.
pub const API: &str = "kubegrid.io/v1alpha1";

/// The longest any scenario waits for a condition.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fake API server holding Cluster `gpu` (namespace `fleet`), Nodes `cp-1` and `gpu-1`, and
/// the Secret with the SSH key when `with_secret`. The Cluster and Nodes are valid for the
/// CRDs' schema and rules: on the real server ([`Bed::on`]) they are created there.
pub fn fake(with_secret: bool, deletion_policy: &str) -> FakeCluster {
    let fake = FakeCluster::new();
    fake.enable_status_subresource("kubegrid.io", "clusters");
    fake.enable_status_subresource("kubegrid.io", "nodes");
    fake.put(json!({
        "apiVersion": API, "kind": "Cluster",
        "metadata": {"name": "gpu", "namespace": NS},
        "spec": {
            "kubernetesVersion": "v1.31.4",
            "controlPlaneEndpoint": {"address": "10.213.99.11"},
            "network": {"podCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12"},
            "containerRuntime": {"containerd": {"version": "1.7"}},
            "bundle": {"source": "bundle", "publicKeyRef": {"name": "bundle-key"}},
            "ssh": {"user": "root", "privateKeySecretRef": {"name": "gpu-ssh"}},
            "deletionPolicy": deletion_policy,
        }
    }));
    for (name, address, role) in [
        ("cp-1", "10.213.99.11", "control-plane"),
        ("gpu-1", "10.213.99.21", "worker"),
    ] {
        fake.put(node(name, address, role));
    }
    fake.put(secret(
        "bundle-key",
        "public-key",
        "kubegrid-bundle-key ed25519 AAAA",
    ));
    if with_secret {
        fake.put(secret(
            "gpu-ssh",
            "ssh-privatekey",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n-----END OPENSSH PRIVATE KEY-----",
        ));
    }
    fake
}

/// A bundle manifest with everything Cluster `gpu` needs (Kubernetes 1.31.4, containerd
/// 1.7, amd64) except the artifacts named in `without`. Only the manifest is written: the
/// operator reads it before an operation, and the scripted runner opens nothing.
pub fn bundle_manifest(without: &[&str]) -> String {
    let mut yaml = String::from("version: 2\nkubernetes: \"1.31.4\"\nfiles:\n");
    let entries = [
        ("archive", "containerd", "1.7.24"),
        ("binary", "runc", "1.1.12"),
        ("rootfs", "busybox", "1.36"),
        ("binary", "kubeadm", "1.31.4"),
        ("binary", "kubelet", "1.31.4"),
        ("binary", "kubectl", "1.31.4"),
        ("binary", "crictl", "1.31.1"),
        ("binary", "etcd", "3.5.15"),
        ("binary", "etcdctl", "3.5.15"),
        ("archive", "cni-plugins", "1.5.1"),
    ];
    for (i, (kind, name, version)) in entries.iter().enumerate() {
        if without.contains(name) {
            continue;
        }
        yaml.push_str(&format!(
            "  - {{path: f{i}, sha256: {}, size: 1, arch: amd64, kind: {kind}, name: {name}, version: \"{version}\"}}\n",
            "a".repeat(64)
        ));
    }
    yaml
}

/// A Node of Cluster `gpu`.
pub fn node(name: &str, address: &str, role: &str) -> Value {
    json!({
        "apiVersion": API, "kind": "Node",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterName": "gpu", "address": address, "roles": [role]}
    })
}

/// A Secret with one key.
pub fn secret(name: &str, key: &str, text: &str) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {key: base64::engine::general_purpose::STANDARD.encode(text)}
    })
}

/// Waits for a future, failing the test after [`PATIENCE`] with `what`.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Cluster `gpu` as stored (Null once gone).
pub fn cluster(fake: &FakeCluster) -> Value {
    fake.get_object(API, "Cluster", NS, "gpu")
        .unwrap_or(Value::Null)
}

/// Node `name` as stored (Null once gone).
pub fn node_of(fake: &FakeCluster, name: &str) -> Value {
    fake.get_object(API, "Node", NS, name)
        .unwrap_or(Value::Null)
}

/// The condition `type_` of Cluster `gpu`.
pub fn condition(fake: &FakeCluster, type_: &str) -> Option<Value> {
    cluster(fake)["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Events stored, as `reason: note`.
pub fn events(fake: &FakeCluster) -> Vec<String> {
    fake.list_objects("events.k8s.io/v1", "Event", Some(NS))
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}
