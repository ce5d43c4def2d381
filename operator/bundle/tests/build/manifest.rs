//! The manifest's version 2 fields: version 1 files still parse, version 2 round-trips, and
//! the version rules hold.

use kubegrid_plan::{Arch, Bundle, Manifest, ManifestImage};

use crate::fixtures::sha;

const V1: &str = "version: 1
name: dev-amd64
files:
  - path: bin/amd64/etcd
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    size: 3
    arch: amd64
    kind: binary
    name: etcd
    version: \"3.4.23\"
";

#[test]
fn a_version_1_manifest_still_parses_with_no_version_2_fields() {
    let m: Manifest = serde_yaml::from_str(V1).unwrap();
    assert_eq!(m.version, 1);
    assert_eq!(m.kubernetes, None);
    assert!(m.images.is_empty());
    assert_eq!(m.files[0].component, None);
    assert_eq!(m.files[0].source, None);
    // Serialising it writes no version 2 keys.
    assert!(!serde_yaml::to_string(&m).unwrap().contains("component"));
}

#[test]
fn a_version_2_manifest_round_trips_and_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let body = b"kubeadm";
    std::fs::create_dir_all(tmp.path().join("dl.k8s.io/release")).unwrap();
    std::fs::write(tmp.path().join("dl.k8s.io/release/kubeadm"), body).unwrap();
    let text = format!(
        "version: 2
name: k
kubernetes: 1.34.2
files:
  - path: dl.k8s.io/release/kubeadm
    sha256: {}
    size: 7
    arch: amd64
    kind: binary
    name: kubeadm
    version: 1.34.2
    component: kubernetes
    source: https://dl.k8s.io/release/kubeadm
images:
  - name: registry.k8s.io/pause
    tag: '3.10'
    digest: sha256:{}
    upstreamDigest: sha256:{}
    arches: [amd64, arm64]
    component: kubernetes
",
        sha(body),
        sha(b"filtered"),
        sha(b"upstream")
    );
    let m: Manifest = serde_yaml::from_str(&text).unwrap();
    assert_eq!(m.kubernetes.as_deref(), Some("1.34.2"));
    assert_eq!(
        m.images,
        [ManifestImage {
            name: "registry.k8s.io/pause".into(),
            tag: "3.10".into(),
            digest: format!("sha256:{}", sha(b"filtered")),
            upstream_digest: Some(format!("sha256:{}", sha(b"upstream"))),
            arches: vec![Arch::Amd64, Arch::Arm64],
            component: Some("kubernetes".into()),
        }]
    );
    let again: Manifest = serde_yaml::from_str(&serde_yaml::to_string(&m).unwrap()).unwrap();
    assert_eq!(again, m);
    assert!(
        serde_yaml::to_string(&m)
            .unwrap()
            .contains("upstreamDigest:")
    );

    std::fs::write(tmp.path().join("manifest.yaml"), &text).unwrap();
    let bundle = Bundle::open(tmp.path()).unwrap();
    assert_eq!(bundle.manifest(), &m);

    // A bad image digest is refused by name.
    let bad = text.replace(
        &format!("digest: sha256:{}", sha(b"filtered")),
        "digest: latest",
    );
    std::fs::write(tmp.path().join("manifest.yaml"), bad).unwrap();
    let err = Bundle::open(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("image `registry.k8s.io/pause:3.10`: digest `latest`"),
        "{err}"
    );
}

#[test]
fn version_2_fields_in_a_version_1_manifest_and_unknown_versions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("manifest.yaml"),
        V1.replace(
            "    version: \"3.4.23\"\n",
            "    version: \"3.4.23\"\n    component: etcd\n",
        ),
    )
    .unwrap();
    let err = Bundle::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("version 1 has no"), "{err}");

    std::fs::write(
        tmp.path().join("manifest.yaml"),
        V1.replace("version: 1", "version: 3"),
    )
    .unwrap();
    let err = Bundle::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("version is 3"), "{err}");
}
