//! A 3-control-plane + 3-worker cluster in the variants the Kubernetes templates branch on:
//! kubeadm v1beta3 (1.30) and v1beta4 (1.31), stacked and external etcd, a kube-vip VIP or an
//! external load balancer.

use std::collections::BTreeMap;

use kubegrid_agent::facts::{Facts, Interface};
use kubegrid_plan::{
    ClusterContext, EtcdContext, EtcdMember, HostContext, JoinSecrets, KUBE_VIP_IMAGE,
    KubernetesContext, TaintContext,
};
use semver::Version;

/// The fake secrets every fixture carries; tests look for them in rendered text.
pub const TOKEN: &str = "abcdef.0123456789abcdef";
/// 32 bytes in hex, as the engine makes them.
pub const CERTIFICATE_KEY: &str =
    "7f2c3a9d1e5b4c6a8d0f2e4b6c8a0d2f4e6b8c0a2d4f6e8b0c2a4d6f8e0b2c4a";
/// `sha256:` of a fake CA key.
pub const CA_CERT_HASH: &str =
    "sha256:9b4c1f0e3d2a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e";
/// The VIP kube-vip holds in the VIP variants.
pub const VIP: &str = "10.0.0.100";
/// The load balancer in the external-endpoint variants.
pub const LOAD_BALANCER: &str = "k8s-api.lab.internal";

/// (name, roles, address) of the six Nodes, in spec order; the first control plane inits.
const NODES: &[(&str, &[&str], &str)] = &[
    ("cp-1", &["control-plane", "etcd"], "10.0.0.11"),
    ("cp-2", &["control-plane", "etcd"], "10.0.0.12"),
    ("cp-3", &["control-plane", "etcd"], "10.0.0.13"),
    ("worker-1", &["worker"], "10.0.0.21"),
    ("worker-2", &["worker"], "10.0.0.22"),
    ("worker-3", &["worker"], "10.0.0.23"),
];

/// One fixture cluster variant.
pub struct Variant {
    /// Golden-file label, e.g. "v1.31-stacked-vip".
    pub label: &'static str,
    /// Kubernetes version.
    pub version: &'static str,
    /// External etcd on the control planes instead of stacked.
    pub external_etcd: bool,
    /// kube-vip holds [`VIP`]; otherwise [`LOAD_BALANCER`] is the endpoint.
    pub vip: bool,
}

/// Every variant golden files exist for.
pub const VARIANTS: &[Variant] = &[
    Variant {
        label: "v1.31-stacked-vip",
        version: "1.31.4",
        external_etcd: false,
        vip: true,
    },
    Variant {
        label: "v1.31-external-lb",
        version: "1.31.4",
        external_etcd: true,
        vip: false,
    },
    Variant {
        label: "v1.30-stacked-vip",
        version: "1.30.8",
        external_etcd: false,
        vip: true,
    },
    Variant {
        label: "v1.30-external-lb",
        version: "1.30.8",
        external_etcd: true,
        vip: false,
    },
];

/// The variant with this label.
pub fn variant(label: &str) -> &'static Variant {
    VARIANTS
        .iter()
        .find(|v| v.label == label)
        .unwrap_or_else(|| panic!("no fixture variant {label}"))
}

/// The cluster context of a variant, named "gpu-lab".
pub fn k8s_cluster(variant: &Variant) -> ClusterContext {
    let version = Version::parse(variant.version).unwrap();
    let mut cluster = ClusterContext::new("gpu-lab", "1.7").unwrap();
    cluster.sandbox_image = ClusterContext::sandbox_image_for(&version).unwrap();
    let etcd = if variant.external_etcd {
        EtcdContext::external(
            NODES
                .iter()
                .filter(|(_, roles, _)| roles.contains(&"etcd"))
                .map(|(name, _, address)| EtcdMember {
                    name: name.to_string(),
                    address: address.to_string(),
                })
                .collect(),
        )
    } else {
        EtcdContext::stacked()
    };
    cluster.kubernetes = Some(KubernetesContext {
        kubeadm_api: KubernetesContext::kubeadm_api_for(&version),
        version,
        endpoint_host: if variant.vip { VIP } else { LOAD_BALANCER }.into(),
        endpoint_port: 6443,
        vip: variant.vip.then(|| VIP.to_string()),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        dns_domain: "cluster.local".into(),
        cni: "cilium".into(),
        cni_manifest: None,
        etcd,
        init_node: "cp-1".into(),
        initialized: false,
        joins_pending: true,
        cert_validity_hours: 8760,
        ca_validity_hours: 87600,
        cert_validity_secs: 8760 * 3600,
        ca_validity_secs: 87600 * 3600,
        join: JoinSecrets {
            token: TOKEN.into(),
            certificate_key: CERTIFICATE_KEY.into(),
            ca_cert_hash: CA_CERT_HASH.into(),
        },
        kube_vip_image: KUBE_VIP_IMAGE.into(),
    });
    cluster.validate().unwrap();
    cluster
}

/// Node `name` of the fixture: Debian amd64, its address on eth0. Workers carry a GPU label,
/// a `node-role` label (which the kubelet may not set itself) and a GPU taint.
pub fn k8s_host(name: &str) -> HostContext {
    let (_, roles, address) = NODES
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture node {name}"));
    let worker = roles.contains(&"worker");
    let mut labels = BTreeMap::new();
    let mut taints = Vec::new();
    if worker {
        labels.insert("node-role.kubernetes.io/worker".into(), String::new());
        labels.insert("nvidia.com/gpu.present".into(), "true".into());
        labels.insert("topology.kubernetes.io/zone".into(), "rack-a".into());
        taints.push(TaintContext {
            key: "nvidia.com/gpu".into(),
            value: Some("present".into()),
            effect: "NoSchedule".into(),
        });
    }
    HostContext {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        facts: Facts {
            hostname: name.into(),
            os_id: "debian".into(),
            os_version: "12".into(),
            arch: "amd64".into(),
            kernel: "6.1.0-13-amd64".into(),
            cpus: 8,
            memory_mib: 16384,
            interfaces: vec![
                Interface {
                    name: "lo".into(),
                    addresses: vec!["127.0.0.1/8".into()],
                },
                Interface {
                    name: "eth0".into(),
                    addresses: vec![format!("{address}/24"), "fe80::1/64".into()],
                },
            ],
            ..Facts::default()
        },
        address: address.to_string(),
        labels,
        taints,
        ..HostContext::default()
    }
}

/// Names of the six Nodes in spec order.
pub fn node_names() -> impl Iterator<Item = &'static str> {
    NODES.iter().map(|(name, _, _)| *name)
}
