//! A valid spec and helpers that write it, with its key file, to a temporary directory.

use std::path::PathBuf;

use kubegrid_api::{Error, Manifest, ValidateFor};

/// A valid three-host spec. The key path is relative to the spec file.
pub const GOOD: &str = r#"# A small GPU cluster.
apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata:
  name: gpu-prod
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    vip: 10.0.0.100
  network:
    podCIDR: 10.244.0.0/16
    serviceCIDR: 10.96.0.0/12
  containerRuntime:
    containerd:
      version: "1.7"
    runtimes: [runc, kata-qemu, nvidia]
    registryMirrors:
      - {registry: docker.io, endpoint: "https://mirror.example:5000"}
  bundle:
    source: bundle
  ssh:
    user: ubuntu
    privateKeyFile: keys/id_ed25519
    bastion: {address: 203.0.113.10, user: jump}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata:
  name: cp-1
spec:
  clusterName: gpu-prod
  address: 10.0.0.11
  roles: [control-plane, etcd]
  arch: amd64
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata:
  name: gpu-1
spec:
  clusterName: gpu-prod
  address: 10.0.0.21
  roles: [worker]
  labels: {nvidia.com/gpu.present: "true"}
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
  ssh: {user: root, port: 2222}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata:
  name: gpu-2
spec:
  clusterName: gpu-prod
  address: 10.0.0.22
  roles: [worker]
"#;

/// A spec written to `dir/cluster.yaml` next to `dir/keys/id_ed25519` and `dir/bundle/`.
pub struct Fixture {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// The spec file.
    pub path: PathBuf,
}

impl Fixture {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/id_ed25519"), "not really a key\n").unwrap();
        std::fs::create_dir(dir.path().join("bundle")).unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    pub fn parse(&self) -> Result<Manifest, Error> {
        let text = std::fs::read_to_string(&self.path).unwrap();
        kubegrid_api::parse(&text, &self.path)
    }
}

/// `GOOD` with `from` replaced by `to` (which must occur exactly once).
pub fn edit(from: &str, to: &str) -> String {
    assert_eq!(GOOD.matches(from).count(), 1, "`{from}` must occur once");
    GOOD.replacen(from, to, 1)
}

/// The problems that validating `text` for `target` reports, as displayed.
pub fn problems_for(text: &str, target: ValidateFor) -> Vec<String> {
    let fixture = Fixture::new(text);
    let manifest = fixture.parse().unwrap();
    match manifest.validate(target) {
        Ok(()) => Vec::new(),
        Err(Error::Invalid { problems }) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

/// Asserts that validating `text` for the CLI reports exactly one problem, on `resource`
/// and `field`, whose text holds `seen`; returns it.
pub fn one_problem(text: &str, resource: &str, field: &str, seen: &str) -> String {
    let problems = problems_for(text, ValidateFor::Cli);
    assert_eq!(problems.len(), 1, "expected one problem: {problems:#?}");
    let problem = problems.into_iter().next().unwrap();
    assert!(
        problem.contains(&format!("{resource} {field}: got ")),
        "{problem}"
    );
    assert!(problem.contains(seen), "`{seen}` missing from: {problem}");
    assert!(problem.contains("; expected "), "{problem}");
    problem
}

/// The openAPIV3Schema of a CRD's one version, as JSON.
pub fn open_api_schema(crd: &kubegrid_api::CustomResourceDefinition) -> serde_json::Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("each CRD version has a schema");
    serde_json::to_value(schema).unwrap()
}
