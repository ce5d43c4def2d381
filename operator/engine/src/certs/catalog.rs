//! Where a cluster's certificates live on its Nodes, what each is called, which journal entry
//! issued it, which CA's trust it carries, and what must restart when it changes.

use std::path::PathBuf;

use kubegrid_pki::layout::{external_etcd, kubeadm};

use super::CaKind;

/// Directories whose certificates are read (recursively): kubeadm's PKI, external etcd's and
/// the bundle registry's.
const DIRS: &[&str] = &[
    kubeadm::PKI_DIR,
    external_etcd::PKI_DIR,
    "/etc/kubegrid/pki",
];

/// The kubeconfigs under /etc/kubernetes, whose embedded certificates are read.
pub const KUBECONFIGS: &[&str] = &[
    kubeadm::ADMIN_CONF,
    kubeadm::SUPER_ADMIN_CONF,
    kubeadm::CONTROLLER_MANAGER_CONF,
    kubeadm::SCHEDULER_CONF,
    kubeadm::KUBELET_CONF,
];

/// The kubelet's serving certificate (self-signed by the kubelet unless it bootstraps one).
pub const KUBELET_SERVING: &str = "/var/lib/kubelet/pki/kubelet.crt";
/// The kubelet's client certificate and key, in one file (a link to the current rotation).
pub const KUBELET_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// The bundle registry's serving certificate.
pub const REGISTRY_CERT: &str = kubegrid_pki::REGISTRY_CERT;
/// The bundle registry's CA certificate, on every Node.
pub const REGISTRY_CA_CERT: &str = kubegrid_pki::REGISTRY_CA_CERT;

/// Every path the agent is asked to read certificates from.
pub fn read_paths() -> Vec<PathBuf> {
    DIRS.iter()
        .chain(KUBECONFIGS)
        .chain(&[KUBELET_SERVING, KUBELET_CLIENT])
        .map(PathBuf::from)
        .collect()
}

/// The catalog name of the certificate at `file` (kubeadm's `certs renew` names where they
/// exist); a file outside the catalog goes by its stem.
pub fn name_of(file: &str) -> String {
    let known = [
        (kubeadm::CA_CERT, "ca"),
        (kubeadm::ETCD_CA_CERT, "etcd-ca"),
        (external_etcd::CA_CERT, "etcd-ca"),
        (kubeadm::FRONT_PROXY_CA_CERT, "front-proxy-ca"),
        (kubeadm::APISERVER_CERT, "apiserver"),
        (
            kubeadm::APISERVER_KUBELET_CLIENT_CERT,
            "apiserver-kubelet-client",
        ),
        (kubeadm::APISERVER_ETCD_CLIENT_CERT, "apiserver-etcd-client"),
        (kubeadm::FRONT_PROXY_CLIENT_CERT, "front-proxy-client"),
        (kubeadm::ETCD_SERVER_CERT, "etcd-server"),
        (external_etcd::SERVER_CERT, "etcd-server"),
        (kubeadm::ETCD_PEER_CERT, "etcd-peer"),
        (external_etcd::PEER_CERT, "etcd-peer"),
        (
            kubeadm::ETCD_HEALTHCHECK_CLIENT_CERT,
            "etcd-healthcheck-client",
        ),
        (
            external_etcd::HEALTHCHECK_CLIENT_CERT,
            "etcd-healthcheck-client",
        ),
        (KUBELET_SERVING, "kubelet-serving"),
        (KUBELET_CLIENT, "kubelet-client"),
        (REGISTRY_CERT, "registry"),
        (REGISTRY_CA_CERT, "registry-ca"),
    ];
    if let Some((_, name)) = known.iter().find(|(path, _)| *path == file) {
        return (*name).to_string();
    }
    let base = file.rsplit('/').next().unwrap_or(file);
    if KUBECONFIGS.contains(&file) {
        return base.to_string();
    }
    base.rsplit_once('.')
        .map_or(base, |(stem, _)| stem)
        .to_string()
}

/// The journal entry kubegrid issued the certificate at `file` on `node` as, for the files
/// kubegrid writes itself (its CAs, external etcd's certificates, the apiserver's etcd client,
/// the registry's). Other leaves are kubeadm's or the kubelet's until a renewal records them
/// under [`host_record`].
pub fn journal_name(node: &str, file: &str, external_etcd_topology: bool) -> Option<String> {
    let fixed = match file {
        f if f == kubeadm::CA_CERT => "kubernetes-ca",
        f if f == kubeadm::FRONT_PROXY_CA_CERT => "front-proxy-ca",
        f if f == external_etcd::CA_CERT => "etcd-ca",
        f if f == kubeadm::ETCD_CA_CERT && external_etcd_topology => "etcd-ca",
        f if f == kubeadm::APISERVER_ETCD_CLIENT_CERT && external_etcd_topology => {
            "apiserver-etcd-client"
        }
        f if f == external_etcd::HEALTHCHECK_CLIENT_CERT => "etcd-healthcheck-client",
        f if f == external_etcd::SERVER_CERT => return Some(format!("etcd-server-{node}")),
        f if f == external_etcd::PEER_CERT => return Some(format!("etcd-peer-{node}")),
        f if f == REGISTRY_CERT => return Some(format!("registry-server-{node}")),
        f if f == REGISTRY_CA_CERT => "registry-ca",
        _ => return None,
    };
    Some(fixed.to_string())
}

/// The journal entry a renewal records a leaf it re-signed under, when kubegrid did not issue
/// it in the first place: one per Node, file and kubeconfig field. Only the certificate is
/// kept (the key never leaves the host).
pub fn host_record(node: &str, file: &str, field: Option<&str>) -> String {
    match field {
        Some(field) => format!("host:{node}:{file}#{field}"),
        None => format!("host:{node}:{file}"),
    }
}

/// The key file next to a leaf certificate kubegrid writes with its key (`.crt` → `.key`).
pub fn key_path(cert_file: &str) -> Option<String> {
    cert_file
        .strip_suffix(".crt")
        .map(|stem| format!("{stem}.key"))
}

/// What reads a certificate file and must restart to see it change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reader {
    /// The etcd member (external etcd).
    Etcd,
    /// The static pods: kube-apiserver, controller-manager, scheduler (and stacked etcd).
    ControlPlane,
    /// The kubelet.
    Kubelet,
    /// The bundle registry.
    Registry,
}

impl Reader {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reader::Etcd => "etcd",
            Reader::ControlPlane => "control-plane",
            Reader::Kubelet => "kubelet",
            Reader::Registry => "registry",
        }
    }
}

/// What must restart when `file` changes on a Node with these roles. Clients that read their
/// files on every use (etcdctl, kubectl with admin.conf) need nothing.
pub fn readers(file: &str, control_plane: bool) -> Vec<Reader> {
    if file.starts_with(external_etcd::PKI_DIR) {
        return vec![Reader::Etcd];
    }
    if file == kubeadm::CA_CERT {
        // The API server's client CA and the kubelet's (clientCAFile), on every Node.
        return if control_plane {
            vec![Reader::ControlPlane, Reader::Kubelet]
        } else {
            vec![Reader::Kubelet]
        };
    }
    if file.starts_with(kubeadm::PKI_DIR)
        || file == kubeadm::CONTROLLER_MANAGER_CONF
        || file == kubeadm::SCHEDULER_CONF
    {
        return if control_plane {
            vec![Reader::ControlPlane]
        } else {
            Vec::new()
        };
    }
    if file == kubeadm::KUBELET_CONF || file.starts_with("/var/lib/kubelet/pki") {
        return vec![Reader::Kubelet];
    }
    if file == REGISTRY_CERT {
        return vec![Reader::Registry];
    }
    Vec::new()
}

/// Whether `file` (with kubeconfig `field`) holds trust in `ca`: a CA file its readers verify
/// peers with, or a kubeconfig's certificate-authority-data.
pub fn trusts(ca: CaKind, file: &str, field: Option<&str>, kubeconfig: bool) -> bool {
    match ca {
        CaKind::Etcd => file == external_etcd::CA_CERT || file == kubeadm::ETCD_CA_CERT,
        CaKind::Kubernetes => {
            file == kubeadm::CA_CERT
                || (kubeconfig && field.is_some_and(|f| f.ends_with("certificate-authority-data")))
        }
        CaKind::FrontProxy => file == kubeadm::FRONT_PROXY_CA_CERT,
        CaKind::ServiceAccount => false,
    }
}

/// The CA's private key file on control-plane Nodes, where kubeadm signs with it (none for
/// external etcd: its CA key stays in the journal).
pub fn ca_key_file(ca: CaKind, external_etcd_topology: bool) -> Option<&'static str> {
    match ca {
        CaKind::Kubernetes => Some(kubeadm::CA_KEY),
        CaKind::FrontProxy => Some(kubeadm::FRONT_PROXY_CA_KEY),
        CaKind::Etcd if !external_etcd_topology => Some(kubeadm::ETCD_CA_KEY),
        CaKind::Etcd | CaKind::ServiceAccount => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubeadm_and_fall_back_to_the_stem() {
        assert_eq!(name_of("/etc/etcd/pki/server.crt"), "etcd-server");
        assert_eq!(name_of("/etc/kubernetes/pki/apiserver.crt"), "apiserver");
        assert_eq!(name_of("/etc/kubernetes/admin.conf"), "admin.conf");
        assert_eq!(name_of(KUBELET_CLIENT), "kubelet-client");
        assert_eq!(name_of("/etc/kubernetes/pki/extra/thing.pem"), "thing");
    }

    #[test]
    fn journal_names_cover_what_kubegrid_writes_only() {
        assert_eq!(
            journal_name("lab-2", "/etc/etcd/pki/server.crt", true).as_deref(),
            Some("etcd-server-lab-2")
        );
        assert_eq!(
            journal_name("lab-1", "/etc/kubernetes/pki/etcd/ca.crt", true).as_deref(),
            Some("etcd-ca")
        );
        // Stacked etcd's CA is kubeadm's.
        assert_eq!(
            journal_name("lab-1", "/etc/kubernetes/pki/etcd/ca.crt", false),
            None
        );
        assert_eq!(
            journal_name("lab-1", "/etc/kubernetes/pki/apiserver.crt", true),
            None
        );
    }

    #[test]
    fn restarts_follow_what_reads_the_file() {
        assert_eq!(readers("/etc/etcd/pki/peer.crt", false), [Reader::Etcd]);
        assert_eq!(
            readers("/etc/kubernetes/pki/ca.crt", true),
            [Reader::ControlPlane, Reader::Kubelet]
        );
        assert_eq!(
            readers("/etc/kubernetes/pki/ca.crt", false),
            [Reader::Kubelet]
        );
        assert!(readers("/etc/kubernetes/admin.conf", true).is_empty());
        assert_eq!(readers(KUBELET_CLIENT, false), [Reader::Kubelet]);
    }

    #[test]
    fn trust_files_per_ca() {
        assert!(trusts(
            CaKind::Etcd,
            "/etc/kubernetes/pki/etcd/ca.crt",
            None,
            false
        ));
        assert!(trusts(
            CaKind::Kubernetes,
            "/etc/kubernetes/kubelet.conf",
            Some("clusters[kubernetes].certificate-authority-data"),
            true
        ));
        assert!(!trusts(
            CaKind::Kubernetes,
            "/etc/kubernetes/kubelet.conf",
            Some("users[x].client-certificate-data"),
            true
        ));
    }
}
