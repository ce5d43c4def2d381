//! The bundle registry's CA, server certificate and file layout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kubegrid_pki::{
    Ca, REGISTRY_CA_CERT, REGISTRY_CERT, REGISTRY_KEY, generate_registry_ca, read_expiry,
    registry_ca_files, registry_server_files, registry_server_spec,
};

use crate::common::{DAY, assert_verifies, openssl_available, public_keys};

const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 74, 12));

#[test]
fn server_cert_names_the_node_its_address_and_loopback_for_server_auth_only() {
    let ca = generate_registry_ca(3650 * DAY).unwrap();
    let ca_info = read_expiry(ca.cert_pem()).unwrap();
    assert_eq!(ca_info.common_name, "kubegrid-registry-ca");
    let server = ca
        .issue(&registry_server_spec("reg-1", &[ADDRESS], 365 * DAY))
        .unwrap();
    let info = read_expiry(&server.cert_pem).unwrap();
    assert_eq!(info.common_name, "reg-1");
    assert_eq!(info.dns_names, ["reg-1", "localhost"]);
    assert_eq!(
        info.ip_addresses,
        [
            ADDRESS,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    assert!(info.server_auth && !info.client_auth);
    if openssl_available("server_cert_names_the_node_its_address_and_loopback_for_server_auth_only")
    {
        assert_verifies(ca.cert_pem(), &server.cert_pem, Some("sslserver"));
        let (cert_key, key) = public_keys(&server.cert_pem, &server.key_pem);
        assert_eq!(cert_key, key);
    }
}

#[test]
fn a_ca_loaded_back_from_the_journal_form_issues_verifiable_certs() {
    let ca = generate_registry_ca(DAY).unwrap();
    let stored = ca.to_stored("registry-ca");
    let again = Ca::from_stored(&stored).unwrap();
    let server = again
        .issue(&registry_server_spec("reg-1", &[ADDRESS], DAY))
        .unwrap();
    if openssl_available("a_ca_loaded_back_from_the_journal_form_issues_verifiable_certs") {
        assert_verifies(ca.cert_pem(), &server.cert_pem, Some("sslserver"));
    }
}

#[test]
fn every_host_gets_the_ca_and_the_registry_host_the_pair_with_the_key_at_0600() {
    let ca = generate_registry_ca(DAY).unwrap();
    let server = ca
        .issue(&registry_server_spec("reg-1", &[ADDRESS], DAY))
        .unwrap();
    let all = registry_ca_files(ca.cert_pem());
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].path.as_str(), all[0].mode),
        (REGISTRY_CA_CERT, 0o644)
    );
    assert_eq!(all[0].content, ca.cert_pem());
    let files = registry_server_files(ca.cert_pem(), &server);
    let layout: Vec<(&str, u32)> = files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
    assert_eq!(
        layout,
        [
            ("/etc/kubegrid/pki/registry-ca.crt", 0o644),
            ("/etc/kubegrid/pki/registry.crt", 0o644),
            ("/etc/kubegrid/pki/registry.key", 0o600),
        ]
    );
    assert_eq!((REGISTRY_CERT, REGISTRY_KEY), (layout[1].0, layout[2].0));
    assert_eq!(files[1].content, server.cert_pem);
    assert_eq!(files[2].content, server.key_pem);
}
