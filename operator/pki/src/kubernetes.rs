//! The Kubernetes cluster CA and the admin client certificate. kubeadm derives every other
//! control-plane certificate from the CA on its own.

use std::time::Duration;

use crate::{
    ca::Ca,
    error::Result,
    leaf::{LeafSpec, Usage},
};

/// Common name of the cluster CA, as kubeadm names it.
pub const KUBERNETES_CA_COMMON_NAME: &str = "kubernetes";
/// Common name of the front-proxy (aggregation layer) CA, as kubeadm names it.
pub const FRONT_PROXY_CA_COMMON_NAME: &str = "front-proxy-ca";
/// The admin kubeconfig's user, as in kubeadm's `admin.conf`.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The group kubeadm binds to `cluster-admin` (since 1.29) for `admin.conf`'s user.
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";

/// A new cluster CA (CN `kubernetes`).
pub fn generate_kubernetes_ca(validity: Duration) -> Result<Ca> {
    Ca::generate(KUBERNETES_CA_COMMON_NAME, validity)
}

/// The admin client certificate: CN `kubernetes-admin`, O `kubeadm:cluster-admins`.
pub fn admin_client_spec(validity: Duration) -> LeafSpec {
    LeafSpec {
        common_name: ADMIN_USER.to_owned(),
        organizations: vec![ADMIN_GROUP.to_owned()],
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        usage: Usage::Client,
        validity,
    }
}
