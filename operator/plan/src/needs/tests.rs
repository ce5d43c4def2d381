use super::*;

fn host(name: &str, roles: &[&str]) -> HostContext {
    HostContext {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..HostContext::default()
    }
}

fn names(needs: &[Need]) -> Vec<String> {
    needs.iter().map(|n| n.artifact.to_string()).collect()
}

/// A manifest with one entry per `kind name arch`.
fn manifest(entries: &[(&str, &str, &str)]) -> Manifest {
    let mut yaml = String::from("version: 1\nfiles:\n");
    for (i, (kind, name, arch)) in entries.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{path: f{i}, sha256: {}, size: 1, arch: {arch}, kind: {kind}, name: {name}, version: \"1\"}}\n",
            "a".repeat(64)
        ));
    }
    serde_yaml::from_str(&yaml).unwrap()
}

#[test]
fn a_worker_needs_the_runtime_and_kubernetes_an_etcd_node_etcd_and_until_stops_early() {
    let playbook = Playbook::builtin("install").unwrap();
    let cluster = ClusterContext::new("c", "1.7").unwrap();
    let worker = needs(&playbook, None, &cluster, &host("w", &["worker"]));
    let got = names(&worker);
    for want in [
        "archive containerd",
        "binary runc",
        "rootfs",
        "binary kubeadm",
        "binary kubelet",
        "binary kubectl",
        "archive cni-plugins",
    ] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    assert!(!got.contains(&"binary etcd".to_string()), "{got:?}");
    // The default source is the release archive: no package is asked of the bundle.
    assert!(!got.iter().any(|n| n.starts_with("package ")), "{got:?}");
    assert!(needs_kubernetes(&worker));
    let kubeadm = worker
        .iter()
        .find(|n| n.artifact == Artifact::Binary("kubeadm".into()))
        .unwrap();
    assert_eq!(kubeadm.phase, "kubernetes-packages");

    let etcd = names(&needs(&playbook, None, &cluster, &host("e", &["etcd"])));
    assert!(etcd.contains(&"binary etcd".to_string()), "{etcd:?}");
    assert!(
        !etcd.contains(&"archive containerd".to_string()),
        "{etcd:?}"
    );

    let early = needs(
        &playbook,
        Some("container-runtime"),
        &cluster,
        &host("w", &["worker"]),
    );
    assert!(!needs_kubernetes(&early), "{:?}", names(&early));
    assert!(names(&early).contains(&"archive containerd".to_string()));

    // source: packages asks for the packages instead of the archive and the runc binary.
    let mut packages = cluster.clone();
    packages.containerd_source = crate::ContainerdSource::Packages;
    let got = names(&needs(&playbook, None, &packages, &host("w", &["worker"])));
    for want in ["package containerd", "package runc"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    assert!(!got.contains(&"archive containerd".to_string()), "{got:?}");
    assert!(!got.contains(&"binary runc".to_string()), "{got:?}");
}

#[test]
fn missing_names_each_node_and_arch_and_groups_alike_nodes() {
    let playbook = Playbook::builtin("install").unwrap();
    let cluster = ClusterContext::new("c", "1.7").unwrap();
    let w = needs(&playbook, None, &cluster, &host("w", &["worker"]));
    let full: Vec<(&str, &str, &str)> = vec![
        ("archive", "containerd", "amd64"),
        ("binary", "runc", "amd64"),
        ("rootfs", "busybox", "amd64"),
        ("binary", "kubeadm", "amd64"),
        ("binary", "kubelet", "amd64"),
        ("binary", "kubectl", "amd64"),
        ("binary", "crictl", "amd64"),
        ("archive", "cni-plugins", "amd64"),
    ];
    let node = |name: &str, arch: Option<&str>| NodeNeeds {
        name: name.into(),
        arch: arch.map(str::to_string),
        needs: w.clone(),
    };
    assert!(missing(&manifest(&full), &[node("w1", Some("amd64"))]).is_empty());
    // Undeclared arch: served, since amd64 has everything.
    assert!(missing(&manifest(&full), &[node("w1", None)]).is_empty());

    let lacks = missing(
        &manifest(&full),
        &[node("w1", Some("arm64")), node("w2", Some("arm64"))],
    );
    assert_eq!(lacks.len(), 1, "{lacks:?}");
    assert!(
        lacks[0].starts_with(
            "Nodes w1, w2 (arm64; the bundle has no files for arm64) need, in phase container-runtime: archive containerd, binary runc, rootfs; in phase kubernetes-packages: binary kubeadm"
        ),
        "{lacks:?}"
    );

    let no_kubeadm: Vec<_> = full
        .iter()
        .copied()
        .filter(|(_, n, _)| *n != "kubeadm")
        .collect();
    let lacks = missing(&manifest(&no_kubeadm), &[node("w1", Some("amd64"))]);
    assert_eq!(
        lacks,
        vec!["Node w1 (amd64) needs, in phase kubernetes-packages: binary kubeadm".to_string()]
    );
    let lacks = missing(&manifest(&[]), &[node("w1", None)]);
    assert!(lacks[0].contains("arch not declared"), "{lacks:?}");
}

#[test]
fn listing_shows_packages_too_and_the_version_comes_from_kubeadm() {
    let m = manifest(&[("deb", "runc", "amd64"), ("binary", "kubeadm", "arm64")]);
    let list = listing(&m);
    assert!(list.contains("deb runc 1 (amd64)"), "{list}");
    assert!(list.contains("binary kubeadm 1 (arm64)"), "{list}");
    assert_eq!(kubernetes_version(&m).as_deref(), Some("1"));
    assert_eq!(listing(&manifest(&[])), "no files");
    assert_eq!(arches(&m), vec!["amd64", "arm64"]);
}
