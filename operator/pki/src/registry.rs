//! The bundle registry's certificates: a CA of its own, so hosts that trust it for image pulls
//! trust nothing else of the cluster's, and the registry host's server certificate.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{
    ca::Ca,
    error::Result,
    layout::PkiFile,
    leaf::{IssuedCert, LeafSpec, Usage},
};

/// Common name of the registry CA.
pub const REGISTRY_CA_COMMON_NAME: &str = "kubegrid-registry-ca";

/// The registry CA certificate on every host; containerd's certs.d `hosts.toml` names it as
/// `ca` for the bundle registry.
pub const REGISTRY_CA_CERT: &str = "/etc/kubegrid/pki/registry-ca.crt";
/// The registry's serving certificate, on the registry host.
pub const REGISTRY_CERT: &str = "/etc/kubegrid/pki/registry.crt";
/// The registry's serving key, on the registry host.
pub const REGISTRY_KEY: &str = "/etc/kubegrid/pki/registry.key";

/// A new registry CA (CN `kubegrid-registry-ca`).
pub fn generate_registry_ca(validity: Duration) -> Result<Ca> {
    Ca::generate(REGISTRY_CA_COMMON_NAME, validity)
}

/// The registry's serving certificate on the Node `node`: CN the Node name; DNS SANs the Node
/// name and `localhost`; IP SANs `addresses` (what other hosts dial) and loopback, so a check
/// on the registry host itself verifies too. Server auth only.
pub fn registry_server_spec(node: &str, addresses: &[IpAddr], validity: Duration) -> LeafSpec {
    let mut dns_names = vec![node.to_owned()];
    if node != "localhost" {
        dns_names.push("localhost".to_owned());
    }
    let mut ip_addresses = addresses.to_vec();
    for lo in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        if !ip_addresses.contains(&lo) {
            ip_addresses.push(lo);
        }
    }
    LeafSpec {
        common_name: node.to_owned(),
        organizations: Vec::new(),
        dns_names,
        ip_addresses,
        usage: Usage::Server,
        validity,
    }
}

/// What every host that pulls through the registry needs: the CA certificate.
pub fn registry_ca_files(ca_cert_pem: &str) -> Vec<PkiFile> {
    vec![PkiFile::new(REGISTRY_CA_CERT, ca_cert_pem)]
}

/// What the registry host needs: the CA certificate (its own health check verifies with it)
/// and the serving pair, the key at 0600.
pub fn registry_server_files(ca_cert_pem: &str, server: &IssuedCert) -> Vec<PkiFile> {
    vec![
        PkiFile::new(REGISTRY_CA_CERT, ca_cert_pem),
        PkiFile::new(REGISTRY_CERT, &server.cert_pem),
        PkiFile::new(REGISTRY_KEY, &server.key_pem),
    ]
}
