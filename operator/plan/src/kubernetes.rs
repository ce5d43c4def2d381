//! What the Kubernetes templates and predicates know about a cluster: versions, the
//! control-plane endpoint, networks, etcd, and the join secrets the engine generated.

use semver::Version;
use serde::Serialize;

use crate::error::{Error, Result};

/// kubeadm writes this once `kubeadm init` succeeded; its presence on a control-plane host
/// means the cluster exists.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// kubeadm writes this once the host's kubelet joined (init or join).
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// kubegrid's external etcd unit; its presence means the host already runs kubegrid's etcd.
pub const ETCD_UNIT: &str = "/etc/systemd/system/etcd.service";
/// Written once `kubeadm init` succeeded. kubeadm writes admin.conf early in init (and on
/// every control-plane join), so only this marker says init finished, and on which host.
pub const INIT_DONE: &str = "/etc/kubernetes/kubegrid/init.done";
/// Written once `kubeadm join` succeeded; kubelet.conf appears before a join finishes.
pub const JOIN_DONE: &str = "/etc/kubernetes/kubegrid/join.done";
/// The cluster CA certificate in kubeadm's layout.
pub const CLUSTER_CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
/// The external etcd CA certificate kubegrid writes.
pub const ETCD_CA_CERT: &str = "/etc/etcd/pki/ca.crt";
/// Paths whose existence the facts phase reports, so the compiler knows what is done.
pub const KUBERNETES_PATHS: &[&str] = &[
    ADMIN_CONF,
    KUBELET_CONF,
    ETCD_UNIT,
    INIT_DONE,
    JOIN_DONE,
    CLUSTER_CA_CERT,
    ETCD_CA_CERT,
];
/// kubeadm's default `localAPIEndpoint.bindPort`.
pub const API_SERVER_BIND_PORT: u16 = 6443;
/// Where kubegrid keeps the kubeadm configuration and manifests it renders on hosts.
pub const KUBEGRID_ETC: &str = "/etc/kubernetes/kubegrid";
/// The kube-vip image; #5 pins images by digest in the bundle.
pub const KUBE_VIP_IMAGE: &str = "ghcr.io/kube-vip/kube-vip:v0.8.9";
/// etcd's client and peer ports.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER_PORT: u16 = 2380;

/// Cluster-wide Kubernetes inputs, present when the operation bootstraps Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubernetesContext {
    /// Kubernetes version, without the `v` ("1.31.4").
    pub version: Version,
    /// `kubeadm.k8s.io/v1beta4` from 1.31 on, `kubeadm.k8s.io/v1beta3` below.
    pub kubeadm_api: String,
    /// Host part of the control-plane endpoint: the VIP or the load balancer's address.
    pub endpoint_host: String,
    /// API server port of the endpoint.
    pub endpoint_port: u16,
    /// The VIP kube-vip holds, when the spec asks for kube-vip.
    pub vip: Option<String>,
    /// Pod network CIDR.
    pub pod_cidr: String,
    /// Service network CIDR.
    pub service_cidr: String,
    /// Cluster DNS domain.
    pub dns_domain: String,
    /// "cilium", or "none" when the user brings their own CNI.
    pub cni: String,
    /// The user's own CNI manifest, applied instead of a rendered one.
    pub cni_manifest: Option<String>,
    /// etcd topology and members.
    pub etcd: EtcdContext,
    /// Node name of the host that runs `kubeadm init`.
    pub init_node: String,
    /// Whether a control-plane host already has admin.conf (init is done).
    pub initialized: bool,
    /// Whether some host of the operation has yet to join.
    pub joins_pending: bool,
    /// Leaf certificate validity in hours (kubeadm v1beta4 `certificateValidityPeriod`).
    pub cert_validity_hours: u64,
    /// CA validity in hours (kubeadm v1beta4 `caCertificateValidityPeriod`).
    pub ca_validity_hours: u64,
    /// Leaf certificate validity in seconds, for the certificates kubegrid issues itself
    /// (kubeadm's config takes whole hours, at least one).
    pub cert_validity_secs: u64,
    /// CA validity in seconds, for the CAs kubegrid issues.
    pub ca_validity_secs: u64,
    /// The secrets joins need. They reach hosts only inside plans (root-only files) and are
    /// redacted from every output.
    pub join: JoinSecrets,
    /// kube-vip image.
    pub kube_vip_image: String,
}

/// etcd as the templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdContext {
    /// "stacked" (kubeadm runs etcd as static pods) or "external" (kubegrid runs it).
    pub topology: String,
    /// External members in spec order; empty when stacked.
    pub members: Vec<EtcdMember>,
    /// Client URLs of the external members ("https://10.0.0.1:2379").
    pub endpoints: Vec<String>,
    /// `name=https://addr:2380,...` for `--initial-cluster`: the spec's members for a new
    /// cluster; for a member joining a running one, the running members and itself.
    pub initial_cluster: String,
    /// `--initial-cluster-state`: "new" when the members start together as a new cluster;
    /// the engine renders "existing" for a member joining a running cluster (only a member's
    /// first start reads it).
    pub initial_cluster_state: String,
}

/// One external etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdMember {
    /// Member name (the Node name).
    pub name: String,
    /// Address it listens on.
    pub address: String,
}

impl EtcdContext {
    /// Stacked etcd: kubeadm manages it.
    pub fn stacked() -> Self {
        EtcdContext {
            topology: "stacked".into(),
            members: Vec::new(),
            endpoints: Vec::new(),
            initial_cluster: String::new(),
            initial_cluster_state: String::new(),
        }
    }

    /// External etcd on these members.
    pub fn external(members: Vec<EtcdMember>) -> Self {
        let endpoints = members
            .iter()
            .map(|m| format!("https://{}:{ETCD_CLIENT_PORT}", url_host(&m.address)))
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| {
                format!(
                    "{}=https://{}:{ETCD_PEER_PORT}",
                    m.name,
                    url_host(&m.address)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        EtcdContext {
            topology: "external".into(),
            members,
            endpoints,
            initial_cluster,
            initial_cluster_state: "new".into(),
        }
    }

    /// Whether kubegrid runs etcd itself.
    pub fn is_external(&self) -> bool {
        self.topology == "external"
    }
}

/// The peer URL of a member at `address`.
pub fn etcd_peer_url(address: &str) -> String {
    format!("https://{}:{ETCD_PEER_PORT}", url_host(address))
}

/// An IPv6 address in a URL needs brackets.
fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// The secrets of one operation's joins.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct JoinSecrets {
    /// Bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: String,
    /// Key that encrypts the control-plane certificates kubeadm uploads (64 hex digits).
    pub certificate_key: String,
    /// `sha256:<hex>` of the cluster CA's public key, for discovery.
    pub ca_cert_hash: String,
}

impl std::fmt::Debug for JoinSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Debug output ends up in logs; the secrets must not.
        f.debug_struct("JoinSecrets")
            .field("token", &"[redacted]")
            .field("certificate_key", &"[redacted]")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .finish()
    }
}

impl JoinSecrets {
    /// The strings every output of a plan carrying them must have redacted.
    pub fn redactions(&self) -> Vec<String> {
        vec![self.token.clone(), self.certificate_key.clone()]
    }
}

impl KubernetesContext {
    /// The port each control-plane Node's API server binds: the endpoint's with kube-vip
    /// (the VIP moves between Nodes and is reached on that port), kubeadm's 6443 otherwise.
    pub fn bind_port(&self) -> u16 {
        if self.vip.is_some() {
            self.endpoint_port
        } else {
            API_SERVER_BIND_PORT
        }
    }

    /// The kubeadm config API for a Kubernetes version: v1beta4 exists from 1.31.
    pub fn kubeadm_api_for(version: &Version) -> String {
        if (version.major, version.minor) >= (1, 31) {
            "kubeadm.k8s.io/v1beta4".into()
        } else {
            "kubeadm.k8s.io/v1beta3".into()
        }
    }

    /// Checks what templates rely on.
    pub fn validate(&self) -> Result<()> {
        let invalid = |problem: String| Err(Error::InvalidContext { problem });
        if !matches!(self.cni.as_str(), "cilium" | "none") {
            return invalid(format!(
                "CNI `{}` is not supported; expected cilium, or none with your own manifest",
                self.cni
            ));
        }
        if self.cni == "none" && self.cni_manifest.is_none() {
            return invalid("CNI `none` needs the user's manifest (network.cniManifest)".into());
        }
        if self.etcd.is_external() && self.etcd.members.is_empty() {
            return invalid("external etcd needs at least one Node with the etcd role".into());
        }
        let token_ok = self.join.token.len() == 23
            && self.join.token.as_bytes()[6] == b'.'
            && self
                .join
                .token
                .chars()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_lowercase() || c.is_ascii_digit());
        if !token_ok {
            return invalid("the bootstrap token is not [a-z0-9]{6}.[a-z0-9]{16}".into());
        }
        Ok(())
    }
}
