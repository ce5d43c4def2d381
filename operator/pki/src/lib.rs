//! kubegrid's PKI: the CAs and leaf certificates kubeadm, external etcd and the bundle
//! registry need, in kubeadm's file layout, plus the inspection the engine uses to decide when
//! to reissue them.
//!
//! Keys are ECDSA P-256, written as PKCS#8 PEM. The engine keeps every CA and leaf as a
//! [`StoredCert`] in its journal so re-applies reuse them, and writes them to hosts as
//! [`PkiFile`]s.

mod ca;
mod error;
mod etcd;
mod inspect;
mod kubeconfig;
mod kubernetes;
pub mod layout;
mod leaf;
mod registry;
mod resign;
mod service_account;
mod trust;

pub use time;

pub use crate::{
    ca::Ca,
    error::{Error, Result},
    etcd::{
        APISERVER_ETCD_CLIENT_COMMON_NAME, ETCD_CA_COMMON_NAME,
        ETCD_HEALTHCHECK_CLIENT_COMMON_NAME, EtcdMember, EtcdMemberCerts,
        apiserver_etcd_client_spec, etcd_healthcheck_client_spec, etcd_peer_spec, etcd_server_spec,
        generate_etcd_ca, issue_etcd_member,
    },
    inspect::{CertInfo, ca_cert_hash, matches_sans, needs_renewal, read_expiry, same_public_key},
    kubeconfig::kubeconfig,
    kubernetes::{
        ADMIN_GROUP, ADMIN_USER, FRONT_PROXY_CA_COMMON_NAME, KUBERNETES_CA_COMMON_NAME,
        admin_client_spec, generate_kubernetes_ca,
    },
    layout::{ExternalEtcdClient, PkiFile, control_plane_ca_files, etcd_member_files},
    leaf::{CLOCK_SKEW_ALLOWANCE, IssuedCert, LeafSpec, StoredCert, Usage},
    registry::{
        REGISTRY_CA_CERT, REGISTRY_CA_COMMON_NAME, REGISTRY_CERT, REGISTRY_KEY,
        generate_registry_ca, registry_ca_files, registry_server_files, registry_server_spec,
    },
    service_account::generate_service_account_key,
    trust::{fingerprint, issued_by, split_pem, trust_bundle},
};
