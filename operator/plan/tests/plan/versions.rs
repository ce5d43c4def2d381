//! A bundle with several versions of a binary: compiling `binaries:` picks the cluster's
//! Kubernetes version for kubeadm/kubelet/kubectl (and crictl when versioned alike), the
//! cluster's etcd version for etcd/etcdctl (the newest when it names none), refuses a version
//! the bundle lacks naming what it has, and `needs` agrees.

use std::fs;

use kubegrid_agent::protocol::Action;
use kubegrid_plan::{
    Bundle, ClusterContext, Playbook, compile,
    needs::{self, Artifact},
    sha256_file,
};
use semver::Version;

use crate::{
    common::lab_host,
    k8s_fixtures::{VARIANTS, k8s_cluster},
};

/// (path, name, version) of every binary in the test bundle.
const FILES: &[(&str, &str, &str)] = &[
    ("standin/amd64/kubeadm", "kubeadm", "1.31.4"),
    ("standin/amd64/kubelet", "kubelet", "1.31.4"),
    ("standin/amd64/kubectl", "kubectl", "1.31.4"),
    ("standin/amd64/crictl", "crictl", "1.31.4"),
    ("standin/amd64/v1.32.4/kubeadm", "kubeadm", "1.32.4"),
    ("standin/amd64/v1.32.4/kubelet", "kubelet", "1.32.4"),
    ("standin/amd64/v1.32.4/kubectl", "kubectl", "1.32.4"),
    ("standin/amd64/v1.32.4/crictl", "crictl", "1.32.4"),
    ("etcd/amd64/3.4.23/etcd", "etcd", "3.4.23"),
    ("etcd/amd64/3.4.23/etcdctl", "etcdctl", "3.4.23"),
    ("etcd/amd64/etcd", "etcd", "3.5.30"),
    ("etcd/amd64/etcdctl", "etcdctl", "3.5.30"),
    ("registry/amd64/registry", "registry", "2.8.2"),
];

fn bundle() -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = String::from("version: 1\nname: test\nfiles:\n");
    for (path, name, version) in FILES {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, format!("{path} {version}")).unwrap();
        manifest.push_str(&format!(
            "  - {{path: {path}, sha256: {}, size: {}, arch: amd64, kind: binary, name: {name}, version: \"{version}\"}}\n",
            sha256_file(&full).unwrap(),
            fs::metadata(&full).unwrap().len()
        ));
    }
    fs::write(dir.path().join("manifest.yaml"), manifest).unwrap();
    let bundle = Bundle::open(dir.path()).unwrap();
    (dir, bundle)
}

fn playbook(names: &str) -> Playbook {
    Playbook::parse(
        "test",
        &format!(
            "name: t\nphases:\n  - name: bins\n    hosts: all\n    tasks:\n      - name: install\n        binaries: {{bundle: [{names}], dir: /usr/bin}}\n"
        ),
    )
    .unwrap()
}

fn cluster(kubernetes: &str, etcd: Option<&str>) -> ClusterContext {
    let mut cluster = k8s_cluster(&VARIANTS[0]);
    let k = cluster.kubernetes.as_mut().unwrap();
    k.version = Version::parse(kubernetes).unwrap();
    cluster.etcd_version = etcd.map(|v| Version::parse(v).unwrap());
    cluster
}

/// The bundle path each installed binary comes from, by installed file name.
fn installed(bundle: &Bundle, cluster: &ClusterContext, names: &str) -> Vec<(String, String)> {
    let phases = compile(&playbook(names), cluster, &lab_host(), bundle).unwrap();
    phases[0]
        .tasks
        .iter()
        .map(|t| match &t.action {
            Action::Binary(b) => (
                b.path.file_name().unwrap().to_string_lossy().into_owned(),
                bundle.file(&b.sha256).unwrap().path.display().to_string(),
            ),
            other => panic!("not a binary task: {other:?}"),
        })
        .collect()
}

#[test]
fn binary_versions_lists_each_version_once_in_manifest_order() {
    let (_dir, bundle) = bundle();
    assert_eq!(
        bundle.binary_versions("kubeadm", "amd64"),
        ["1.31.4", "1.32.4"]
    );
    assert_eq!(
        bundle.binary_versions("etcd", "amd64"),
        ["3.4.23", "3.5.30"]
    );
    assert_eq!(bundle.binary_versions("registry", "amd64"), ["2.8.2"]);
    assert!(bundle.binary_versions("kubeadm", "arm64").is_empty());
    assert!(bundle.binary_versions("nope", "amd64").is_empty());
}

#[test]
fn kubernetes_binaries_follow_the_clusters_version() {
    let (_dir, bundle) = bundle();
    let names = "kubeadm, kubelet, kubectl, crictl, registry";
    let got = installed(&bundle, &cluster("1.32.4", None), names);
    assert_eq!(
        got,
        [
            ("kubeadm".into(), "standin/amd64/v1.32.4/kubeadm".into()),
            ("kubelet".into(), "standin/amd64/v1.32.4/kubelet".into()),
            ("kubectl".into(), "standin/amd64/v1.32.4/kubectl".into()),
            ("crictl".into(), "standin/amd64/v1.32.4/crictl".into()),
            ("registry".into(), "registry/amd64/registry".into()),
        ]
    );
    let got = installed(&bundle, &cluster("1.31.4", None), "kubeadm, crictl");
    assert_eq!(got[0].1, "standin/amd64/kubeadm");
    assert_eq!(got[1].1, "standin/amd64/crictl");
}

#[test]
fn a_kubernetes_version_the_bundle_lacks_names_what_it_has() {
    let (_dir, bundle) = bundle();
    let err = compile(
        &playbook("kubelet"),
        &cluster("1.33.4", None),
        &lab_host(),
        &bundle,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "has no binary `kubelet` for arch amd64 of version 1.33.4; it has: 1.31.4, 1.32.4"
        ),
        "{err}"
    );
}

#[test]
fn etcd_is_the_clusters_version_or_the_newest() {
    let (_dir, bundle) = bundle();
    let got = installed(&bundle, &cluster("1.31.4", None), "etcd, etcdctl");
    assert_eq!(got[0].1, "etcd/amd64/etcd");
    assert_eq!(got[1].1, "etcd/amd64/etcdctl");
    let got = installed(&bundle, &cluster("1.31.4", Some("3.4.23")), "etcd, etcdctl");
    assert_eq!(got[0].1, "etcd/amd64/3.4.23/etcd");
    assert_eq!(got[1].1, "etcd/amd64/3.4.23/etcdctl");
    let err = compile(
        &playbook("etcd"),
        &cluster("1.31.4", Some("3.6.0")),
        &lab_host(),
        &bundle,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "has no binary `etcd` for arch amd64 of version 3.6.0; it has: 3.4.23, 3.5.30"
        ),
        "{err}"
    );
}

#[test]
fn a_single_version_bundle_keeps_its_one_kubernetes_binary() {
    let (_dir, bundle) = bundle();
    // registry has one version; a Kubernetes version that differs does not matter to it, and
    // kubeadm with one version is the engine's bundle check's business, not compile's.
    let got = installed(&bundle, &cluster("1.33.4", None), "registry");
    assert_eq!(got[0].1, "registry/amd64/registry");
}

#[test]
fn needs_ask_for_the_clusters_etcd_version() {
    let (_dir, bundle) = bundle();
    let host = lab_host();
    let pb = playbook("etcd, kubeadm");
    let with = needs::needs(&pb, None, &cluster("1.31.4", Some("3.4.23")), &host);
    let artifacts: Vec<&Artifact> = with.iter().map(|n| &n.artifact).collect();
    assert_eq!(
        artifacts,
        [
            &Artifact::VersionedBinary("etcd".into(), "3.4.23".into()),
            &Artifact::Binary("kubeadm".into())
        ]
    );
    assert!(artifacts[0].found_in(bundle.manifest(), "amd64"));
    let missing = needs::needs(&pb, None, &cluster("1.31.4", Some("3.6.0")), &host);
    assert!(!missing[0].artifact.found_in(bundle.manifest(), "amd64"));
    assert_eq!(missing[0].artifact.to_string(), "binary etcd 3.6.0");
    let none = needs::needs(&pb, None, &cluster("1.31.4", None), &host);
    assert_eq!(none[0].artifact, Artifact::Binary("etcd".into()));
}
