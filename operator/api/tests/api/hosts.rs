//! Resolving Nodes into hosts and the bundle into a directory.

use std::{collections::BTreeSet, path::PathBuf};

use kubegrid_api::{Arch, BastionTarget, Role};

use crate::common::{Fixture, GOOD, edit};

#[test]
fn hosts_merge_cluster_defaults_with_node_overrides() {
    let fixture = Fixture::new(GOOD);
    let manifest = fixture.parse().unwrap();
    let hosts = manifest.hosts();
    let key = fixture.dir.path().join("keys/id_ed25519");
    let bastion = Some(BastionTarget {
        address: "203.0.113.10".into(),
        port: 22,
        user: "jump".into(),
        key_file: Some(key.clone()),
    });

    let cp = &hosts[0];
    assert_eq!(cp.name, "cp-1");
    assert_eq!((cp.address.as_str(), cp.port), ("10.0.0.11", 22));
    assert_eq!(cp.user, "ubuntu");
    assert!(cp.sudo, "a non-root user goes through sudo");
    assert_eq!(cp.key_file.as_ref(), Some(&key));
    assert_eq!(cp.bastion, bastion);
    assert_eq!(cp.roles, BTreeSet::from([Role::ControlPlane, Role::Etcd]));
    assert_eq!(cp.arch, Some(Arch::Amd64));

    let gpu = &hosts[1];
    assert_eq!((gpu.user.as_str(), gpu.port), ("root", 2222));
    assert!(!gpu.sudo, "root needs no sudo");
    assert_eq!(gpu.labels["nvidia.com/gpu.present"], "true");
    assert_eq!(gpu.taints.len(), 1);
    assert_eq!(gpu.arch, None);
}

#[test]
fn explicit_become_and_bastion_key_win() {
    let text = edit(
        "bastion: {address: 203.0.113.10, user: jump}",
        "become: false\n    bastion: {address: 203.0.113.10, user: jump, privateKeyFile: /etc/jump.key}",
    );
    let manifest = Fixture::new(&text).parse().unwrap();
    let host = &manifest.hosts()[0];
    assert!(!host.sudo);
    let bastion = host.bastion.as_ref().unwrap();
    assert_eq!(bastion.key_file, Some(PathBuf::from("/etc/jump.key")));
}

#[test]
fn bundle_dir_resolves_against_the_spec_dir() {
    let fixture = Fixture::new(GOOD);
    let manifest = fixture.parse().unwrap();
    assert_eq!(
        manifest.bundle_dir(),
        Some(fixture.dir.path().join("bundle"))
    );

    let text = edit("source: bundle", "source: file:///srv/kubegrid/bundle");
    let manifest = Fixture::new(&text).parse().unwrap();
    assert_eq!(
        manifest.bundle_dir(),
        Some(PathBuf::from("/srv/kubegrid/bundle"))
    );

    let text = edit("  bundle:\n    source: bundle\n", "");
    let manifest = Fixture::new(&text).parse().unwrap();
    assert_eq!(manifest.bundle_dir(), None);
}

#[test]
fn relative_spec_path_resolves_against_the_current_dir() {
    let manifest = kubegrid_api::parse(GOOD, std::path::Path::new("cluster.yaml")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(manifest.spec_dir(), cwd);
    assert_eq!(
        manifest.hosts()[0].key_file,
        Some(cwd.join("keys/id_ed25519"))
    );
}
