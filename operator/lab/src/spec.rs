//! The Cluster and Node spec that `lab up` writes for each host group, ready for
//! `kubegrid apply -f`.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use ipnet::IpNet;
use kubegrid_api::{
    Cluster, ClusterSpec, ContainerRuntimeSpec, ContainerdSource, ContainerdSpec,
    ControlPlaneEndpoint, NetworkSpec, Node, NodeSpec, Role, RuntimeName, SshSpec,
};

use crate::{Error, HostRecord, Result};

/// The Kubernetes version the generated spec asks for.
pub const KUBERNETES_VERSION: &str = "v1.31.4";

/// The containerd release line the generated spec asks for, from the bundle's release archive
/// ([`CONTAINERD_SOURCE`]). 2.1 because it reads containerd's version 3 config, so the lab runs
/// the config format current containerd releases use rather than only rendering it in golden
/// tests, and because it is the newest line Debian ships (sid's 2.1.9, repacked into upstream's
/// archive layout by offline-bundle/dev-bundle.sh) whose binaries run on the lab's bookworm
/// hosts (they need glibc 2.34; bookworm has 2.36). Bookworm's own package is 1.6, two lines
/// behind and at the end of upstream support.
pub const CONTAINERD_LINE: &str = "2.1";

/// Where the generated spec's containerd comes from: the release archive, kubegrid's default
/// install path.
pub const CONTAINERD_SOURCE: ContainerdSource = ContainerdSource::Archive;

const POD_CIDR: IpNet = IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(10, 244, 0, 0)), 16);
const SERVICE_CIDR: IpNet = IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 0)), 12);

/// Roles for the i-th host (0-based) of `n`: one host does everything; from five hosts on,
/// three control-plane/etcd members give an HA control plane with an odd etcd quorum.
fn roles(i: usize, n: usize) -> Vec<Role> {
    let control_planes = if n >= 5 { 3 } else { 1 };
    match (n, i < control_planes) {
        (1, _) => vec![Role::ControlPlane, Role::Etcd, Role::Worker],
        (_, true) => vec![Role::ControlPlane, Role::Etcd],
        (_, false) => vec![Role::Worker],
    }
}

/// The Cluster for a group whose first host serves the API. The spec names no bundle:
/// `kubegrid apply --bundle DIR` supplies it.
fn cluster(group: &str, first: &HostRecord, private_key: &Path) -> Cluster {
    Cluster::new(
        group,
        ClusterSpec {
            kubernetes_version: KUBERNETES_VERSION.to_string(),
            control_plane_endpoint: ControlPlaneEndpoint {
                address: Some(first.address.to_string()),
                vip: None,
                port: kubegrid_api::DEFAULT_API_SERVER_PORT,
            },
            network: NetworkSpec {
                pod_cidr: POD_CIDR,
                service_cidr: SERVICE_CIDR,
                cni: kubegrid_api::DEFAULT_CNI.to_string(),
                cni_manifest: None,
                cni_manifest_ref: None,
            },
            container_runtime: ContainerRuntimeSpec {
                containerd: ContainerdSpec {
                    version: CONTAINERD_LINE.to_string(),
                },
                source: CONTAINERD_SOURCE,
                runtimes: vec![RuntimeName::Runc],
                default_runtime: RuntimeName::Runc,
                sandbox_image: None,
                registry_mirrors: Vec::new(),
            },
            etcd: None,
            upgrade: None,
            bundle: None,
            ssh: SshSpec {
                private_key_file: Some(private_key.display().to_string()),
                ..SshSpec::default()
            },
            certificates: None,
            gpu: None,
            serving: None,
            deletion_policy: kubegrid_api::DeletionPolicy::default(),
        },
    )
}

/// Renders the multi-document spec for one group of hosts.
pub fn render(group: &str, hosts: &[&HostRecord], private_key: &Path) -> Result<String> {
    let err = |source| Error::WriteSpec {
        group: group.to_string(),
        source,
    };
    let first = hosts
        .first()
        .ok_or_else(|| Error::InvalidArgument(format!("group `{group}` has no hosts")))?;
    let mut out = format!(
        "# Written by `kubegrid lab up` for lab group `{group}` ({} hosts).\n\
         # Every host also has user `kube` with passwordless sudo and the same key.\n",
        hosts.len()
    );
    out.push_str(&serde_yaml::to_string(&cluster(group, first, private_key)).map_err(err)?);
    for (i, host) in hosts.iter().enumerate() {
        let node = Node::new(
            &host.name,
            NodeSpec {
                cluster_name: group.to_string(),
                address: host.address.to_string(),
                port: None,
                user: None,
                roles: roles(i, hosts.len()),
                labels: BTreeMap::from([("kubegrid.io/lab".to_string(), "true".to_string())]),
                taints: Vec::new(),
                arch: None,
                ssh: None,
                gpu: Default::default(),
            },
        );
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&node).map_err(err)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, last: u8) -> HostRecord {
        HostRecord::new(name, "lab", [10, 213, 0, last].into(), Path::new("/b"))
    }

    #[test]
    fn three_hosts_match_golden_file() {
        let hosts = [host("lab-1", 2), host("lab-2", 3), host("lab-3", 4)];
        let refs: Vec<&HostRecord> = hosts.iter().collect();
        let got = render(
            "lab",
            &refs,
            Path::new("/var/lib/kubegrid/lab/ssh/id_ed25519"),
        )
        .unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lab-3-hosts.yaml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            got, golden,
            "regenerate the golden file with UPDATE_GOLDEN=1 if the change is intended:\n{got}"
        );
    }

    #[test]
    fn rendered_specs_parse_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();
        for n in [1, 2, 3, 5, 12] {
            let hosts: Vec<HostRecord> = (0..n)
                .map(|i| host(&format!("lab-{}", i + 1), 2 + i as u8))
                .collect();
            let refs: Vec<&HostRecord> = hosts.iter().collect();
            let text = render("lab", &refs, &key).unwrap();
            let manifest = kubegrid_api::parse(&text, &dir.path().join("lab.yaml")).unwrap();
            manifest
                .validate(kubegrid_api::ValidateFor::Cli)
                .unwrap_or_else(|err| panic!("{n} hosts: {err}"));
            assert_eq!(manifest.nodes().len(), n);
            let first = &manifest.hosts()[0];
            assert_eq!(first.key_file.as_deref(), Some(key.as_path()));
            assert_eq!(first.user, "root");
            assert!(!first.sudo);
            assert_eq!(manifest.bundle_dir(), None);
        }
    }

    #[test]
    fn roles_scale_with_host_count() {
        assert_eq!(roles(0, 1), [Role::ControlPlane, Role::Etcd, Role::Worker]);
        assert_eq!(roles(0, 3), [Role::ControlPlane, Role::Etcd]);
        assert_eq!(roles(1, 3), [Role::Worker]);
        let five: Vec<_> = (0..5).map(|i| roles(i, 5)).collect();
        assert_eq!(five.iter().filter(|r| r.contains(&Role::Etcd)).count(), 3);
    }

    #[test]
    fn empty_group_is_an_error() {
        assert!(render("x", &[], Path::new("/k")).is_err());
    }
}
