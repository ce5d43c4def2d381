//! Where certificates live on hosts, and with which mode. kubeadm finds kubegrid's CAs (and
//! reuses them instead of generating its own) only at exactly these paths.

use std::fmt;

use crate::{ca::Ca, etcd::EtcdMemberCerts, leaf::IssuedCert};

/// kubeadm's files under `/etc/kubernetes`.
pub mod kubeadm {
    /// kubeadm's `certificatesDir`.
    pub const PKI_DIR: &str = "/etc/kubernetes/pki";
    /// Cluster CA certificate.
    pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
    /// Cluster CA key.
    pub const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
    /// apiserver serving certificate (kubeadm-generated).
    pub const APISERVER_CERT: &str = "/etc/kubernetes/pki/apiserver.crt";
    /// apiserver serving key (kubeadm-generated).
    pub const APISERVER_KEY: &str = "/etc/kubernetes/pki/apiserver.key";
    /// apiserver's client certificate towards kubelets (kubeadm-generated).
    pub const APISERVER_KUBELET_CLIENT_CERT: &str =
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt";
    /// apiserver's client key towards kubelets (kubeadm-generated).
    pub const APISERVER_KUBELET_CLIENT_KEY: &str =
        "/etc/kubernetes/pki/apiserver-kubelet-client.key";
    /// apiserver's client certificate towards etcd; kubegrid's for external etcd.
    pub const APISERVER_ETCD_CLIENT_CERT: &str = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    /// apiserver's client key towards etcd; kubegrid's for external etcd.
    pub const APISERVER_ETCD_CLIENT_KEY: &str = "/etc/kubernetes/pki/apiserver-etcd-client.key";
    /// Front-proxy CA certificate (kubeadm-generated).
    pub const FRONT_PROXY_CA_CERT: &str = "/etc/kubernetes/pki/front-proxy-ca.crt";
    /// Front-proxy CA key (kubeadm-generated).
    pub const FRONT_PROXY_CA_KEY: &str = "/etc/kubernetes/pki/front-proxy-ca.key";
    /// Front-proxy client certificate (kubeadm-generated).
    pub const FRONT_PROXY_CLIENT_CERT: &str = "/etc/kubernetes/pki/front-proxy-client.crt";
    /// Front-proxy client key (kubeadm-generated).
    pub const FRONT_PROXY_CLIENT_KEY: &str = "/etc/kubernetes/pki/front-proxy-client.key";
    /// Service-account signing key (kubeadm-generated).
    pub const SERVICE_ACCOUNT_KEY: &str = "/etc/kubernetes/pki/sa.key";
    /// Service-account verification key (kubeadm-generated).
    pub const SERVICE_ACCOUNT_PUB: &str = "/etc/kubernetes/pki/sa.pub";
    /// etcd CA certificate; kubegrid's for external etcd, kubeadm's for stacked.
    pub const ETCD_CA_CERT: &str = "/etc/kubernetes/pki/etcd/ca.crt";
    /// etcd CA key (stacked etcd only; external etcd's stays with kubegrid).
    pub const ETCD_CA_KEY: &str = "/etc/kubernetes/pki/etcd/ca.key";
    /// Stacked etcd's serving certificate.
    pub const ETCD_SERVER_CERT: &str = "/etc/kubernetes/pki/etcd/server.crt";
    /// Stacked etcd's serving key.
    pub const ETCD_SERVER_KEY: &str = "/etc/kubernetes/pki/etcd/server.key";
    /// Stacked etcd's peer certificate.
    pub const ETCD_PEER_CERT: &str = "/etc/kubernetes/pki/etcd/peer.crt";
    /// Stacked etcd's peer key.
    pub const ETCD_PEER_KEY: &str = "/etc/kubernetes/pki/etcd/peer.key";
    /// Stacked etcd's health-check client certificate.
    pub const ETCD_HEALTHCHECK_CLIENT_CERT: &str =
        "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
    /// Stacked etcd's health-check client key.
    pub const ETCD_HEALTHCHECK_CLIENT_KEY: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.key";
    /// Admin kubeconfig written by `kubeadm init`.
    pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
    /// Break-glass kubeconfig (group `system:masters`) written by `kubeadm init`.
    pub const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";
    /// kube-controller-manager's kubeconfig.
    pub const CONTROLLER_MANAGER_CONF: &str = "/etc/kubernetes/controller-manager.conf";
    /// kube-scheduler's kubeconfig.
    pub const SCHEDULER_CONF: &str = "/etc/kubernetes/scheduler.conf";
    /// The kubelet's kubeconfig, written by `kubeadm init` and `kubeadm join`.
    pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
}

/// kubegrid's external etcd files under `/etc/etcd/pki`.
pub mod external_etcd {
    /// Directory of the member's certificates.
    pub const PKI_DIR: &str = "/etc/etcd/pki";
    /// etcd CA certificate (`--trusted-ca-file`, `--peer-trusted-ca-file`).
    pub const CA_CERT: &str = "/etc/etcd/pki/ca.crt";
    /// Serving certificate (`--cert-file`).
    pub const SERVER_CERT: &str = "/etc/etcd/pki/server.crt";
    /// Serving key (`--key-file`).
    pub const SERVER_KEY: &str = "/etc/etcd/pki/server.key";
    /// Peer certificate (`--peer-cert-file`).
    pub const PEER_CERT: &str = "/etc/etcd/pki/peer.crt";
    /// Peer key (`--peer-key-file`).
    pub const PEER_KEY: &str = "/etc/etcd/pki/peer.key";
    /// Client certificate for `etcdctl endpoint health`.
    pub const HEALTHCHECK_CLIENT_CERT: &str = "/etc/etcd/pki/healthcheck-client.crt";
    /// Client key for `etcdctl endpoint health`.
    pub const HEALTHCHECK_CLIENT_KEY: &str = "/etc/etcd/pki/healthcheck-client.key";
}

/// Mode for a private key or a kubeconfig (which embeds one): owner read/write only.
pub const SECRET_MODE: u32 = 0o600;
/// Mode for certificates and public keys.
pub const PUBLIC_MODE: u32 = 0o644;

/// The mode a PKI file at `path` is written with: [`SECRET_MODE`] for private keys (`*.key`)
/// and kubeconfigs (`*.conf`), [`PUBLIC_MODE`] for everything else.
pub fn mode(path: &str) -> u32 {
    if path.ends_with(".key") || path.ends_with(".conf") {
        SECRET_MODE
    } else {
        PUBLIC_MODE
    }
}

/// One file to put on a host.
#[derive(Clone, PartialEq, Eq)]
pub struct PkiFile {
    /// Absolute path on the host.
    pub path: String,
    /// The file's content (PEM).
    pub content: String,
    /// Permission bits, from [`mode`].
    pub mode: u32,
}

impl PkiFile {
    /// A file at `path` with the mode [`mode`] gives it.
    pub fn new(path: &str, content: &str) -> Self {
        PkiFile {
            path: path.to_owned(),
            content: content.to_owned(),
            mode: mode(path),
        }
    }
}

// Keys stay out of logs: show only how much content there is.
impl fmt::Debug for PkiFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkiFile")
            .field("path", &self.path)
            .field("content", &format_args!("[{} bytes]", self.content.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// An external etcd member's files: the etcd CA certificate, its server and peer pairs, and
/// the health-check client pair.
pub fn etcd_member_files(
    etcd_ca_cert_pem: &str,
    member: &EtcdMemberCerts,
    healthcheck_client: &IssuedCert,
) -> Vec<PkiFile> {
    use external_etcd::*;
    vec![
        PkiFile::new(CA_CERT, etcd_ca_cert_pem),
        PkiFile::new(SERVER_CERT, &member.server.cert_pem),
        PkiFile::new(SERVER_KEY, &member.server.key_pem),
        PkiFile::new(PEER_CERT, &member.peer.cert_pem),
        PkiFile::new(PEER_KEY, &member.peer.key_pem),
        PkiFile::new(HEALTHCHECK_CLIENT_CERT, &healthcheck_client.cert_pem),
        PkiFile::new(HEALTHCHECK_CLIENT_KEY, &healthcheck_client.key_pem),
    ]
}

/// What a control-plane node needs to reach an external etcd.
#[derive(Debug, Clone, Copy)]
pub struct ExternalEtcdClient<'a> {
    /// The etcd CA certificate, PEM.
    pub etcd_ca_cert_pem: &'a str,
    /// The apiserver's client certificate for etcd.
    pub apiserver_etcd_client: &'a IssuedCert,
}

/// The files kubeadm init needs before it runs: the cluster CA pair, and with external etcd
/// the etcd CA certificate and the apiserver's etcd client pair.
pub fn control_plane_ca_files(
    kubernetes_ca: &Ca,
    external_etcd: Option<ExternalEtcdClient<'_>>,
) -> Vec<PkiFile> {
    use kubeadm::*;
    let mut files = vec![
        PkiFile::new(CA_CERT, kubernetes_ca.cert_pem()),
        PkiFile::new(CA_KEY, kubernetes_ca.key_pem()),
    ];
    if let Some(etcd) = external_etcd {
        files.extend([
            PkiFile::new(ETCD_CA_CERT, etcd.etcd_ca_cert_pem),
            PkiFile::new(
                APISERVER_ETCD_CLIENT_CERT,
                &etcd.apiserver_etcd_client.cert_pem,
            ),
            PkiFile::new(
                APISERVER_ETCD_CLIENT_KEY,
                &etcd.apiserver_etcd_client.key_pem,
            ),
        ]);
    }
    files
}
