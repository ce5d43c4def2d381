//! The Cluster and Node spec that `lab up` writes for each host group, ready for
//! `kubegrid apply -f`.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

use crate::{Error, HostRecord, Result};

/// The Kubernetes version the generated spec asks for.
pub const KUBERNETES_VERSION: &str = "v1.31.4";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    kubernetes_version: &'static str,
    control_plane_endpoint: Endpoint,
    network: Network,
    ssh: Ssh,
}

#[derive(Serialize)]
struct Endpoint {
    address: String,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Network {
    #[serde(rename = "podCIDR")]
    pod_cidr: &'static str,
    #[serde(rename = "serviceCIDR")]
    service_cidr: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ssh {
    user: &'static str,
    port: u16,
    private_key_file: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeSpec {
    cluster_name: String,
    address: String,
    roles: Vec<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// Roles for the i-th host (0-based) of `n`: one host does everything; from five hosts on,
/// three control-plane/etcd members give an HA control plane with an odd etcd quorum.
fn roles(i: usize, n: usize) -> Vec<&'static str> {
    let control_planes = if n >= 5 { 3 } else { 1 };
    match (n, i < control_planes) {
        (1, _) => vec!["control-plane", "etcd", "worker"],
        (_, true) => vec!["control-plane", "etcd"],
        (_, false) => vec!["worker"],
    }
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
    let cluster = Doc {
        api_version: "kubegrid.io/v1alpha1",
        kind: "Cluster",
        metadata: Metadata {
            name: group.to_string(),
        },
        spec: ClusterSpec {
            kubernetes_version: KUBERNETES_VERSION,
            control_plane_endpoint: Endpoint {
                address: first.address.to_string(),
                port: 6443,
            },
            network: Network {
                pod_cidr: "10.244.0.0/16",
                service_cidr: "10.96.0.0/12",
            },
            ssh: Ssh {
                user: "root",
                port: 22,
                private_key_file: private_key.display().to_string(),
            },
        },
    };
    let mut out = format!(
        "# Written by `kubegrid lab up` for lab group `{group}` ({} hosts).\n\
         # Every host also has user `kube` with passwordless sudo and the same key.\n",
        hosts.len()
    );
    out.push_str(&serde_yaml::to_string(&cluster).map_err(err)?);
    for (i, host) in hosts.iter().enumerate() {
        let node = Doc {
            api_version: "kubegrid.io/v1alpha1",
            kind: "Node",
            metadata: Metadata {
                name: host.name.clone(),
            },
            spec: NodeSpec {
                cluster_name: group.to_string(),
                address: host.address.to_string(),
                roles: roles(i, hosts.len()),
                labels: BTreeMap::from([("kubegrid.io/lab".to_string(), "true".to_string())]),
            },
        };
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
        let golden = include_str!("../tests/golden/lab-3-hosts.yaml");
        assert_eq!(
            got, golden,
            "regenerate the golden file if the change is intended:\n{got}"
        );
    }

    #[test]
    fn roles_scale_with_host_count() {
        assert_eq!(roles(0, 1), ["control-plane", "etcd", "worker"]);
        assert_eq!(roles(0, 3), ["control-plane", "etcd"]);
        assert_eq!(roles(1, 3), ["worker"]);
        let five: Vec<_> = (0..5).map(|i| roles(i, 5)).collect();
        assert_eq!(five.iter().filter(|r| r.contains(&"etcd")).count(), 3);
    }

    #[test]
    fn empty_group_is_an_error() {
        assert!(render("x", &[], Path::new("/k")).is_err());
    }
}
