//! The certificates of an external etcd cluster, named and shaped as kubeadm makes them for
//! its stacked etcd so that both topologies look alike on disk.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{
    ca::Ca,
    error::Result,
    leaf::{IssuedCert, LeafSpec, Usage},
};

/// Common name of the etcd CA, as kubeadm names its own.
pub const ETCD_CA_COMMON_NAME: &str = "etcd-ca";
/// Common name of the client certificate `etcdctl endpoint health` uses.
pub const ETCD_HEALTHCHECK_CLIENT_COMMON_NAME: &str = "kube-etcd-healthcheck-client";
/// Common name of the client certificate the apiserver presents to etcd.
pub const APISERVER_ETCD_CLIENT_COMMON_NAME: &str = "kube-apiserver-etcd-client";

/// One etcd member as its certificates see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// The member name (`--name`), which is also the host name peers and clients dial.
    pub name: String,
    /// The addresses the member listens on for clients and peers.
    pub addresses: Vec<IpAddr>,
}

impl EtcdMember {
    /// The DNS SANs a member's server and peer certificates carry: its name and `localhost`.
    pub fn dns_sans(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        if self.name != "localhost" {
            names.push("localhost".to_owned());
        }
        names
    }

    /// The IP SANs a member's server and peer certificates carry: its addresses, then the
    /// loopback addresses local clients use.
    pub fn ip_sans(&self) -> Vec<IpAddr> {
        let mut ips = self.addresses.clone();
        for lo in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            if !ips.contains(&lo) {
                ips.push(lo);
            }
        }
        ips
    }
}

/// A member's two certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberCerts {
    /// Serves clients (`--cert-file`); server and client auth, as kubeadm issues it.
    pub server: IssuedCert,
    /// Talks to peers (`--peer-cert-file`); server and client auth, since a peer is both.
    pub peer: IssuedCert,
}

/// A new etcd CA (CN `etcd-ca`).
pub fn generate_etcd_ca(validity: Duration) -> Result<Ca> {
    Ca::generate(ETCD_CA_COMMON_NAME, validity)
}

/// The server certificate of `member`: CN the member name, SANs from [`EtcdMember::dns_sans`]
/// and [`EtcdMember::ip_sans`].
pub fn etcd_server_spec(member: &EtcdMember, validity: Duration) -> LeafSpec {
    member_spec(member, validity)
}

/// The peer certificate of `member`: the same subject and SANs as its server certificate.
pub fn etcd_peer_spec(member: &EtcdMember, validity: Duration) -> LeafSpec {
    member_spec(member, validity)
}

/// The client certificate health checks use (CN `kube-etcd-healthcheck-client`).
pub fn etcd_healthcheck_client_spec(validity: Duration) -> LeafSpec {
    client_spec(ETCD_HEALTHCHECK_CLIENT_COMMON_NAME, validity)
}

/// The client certificate the apiserver uses for etcd (CN `kube-apiserver-etcd-client`).
pub fn apiserver_etcd_client_spec(validity: Duration) -> LeafSpec {
    client_spec(APISERVER_ETCD_CLIENT_COMMON_NAME, validity)
}

/// Issues `member`'s server and peer certificates from the etcd CA.
pub fn issue_etcd_member(
    ca: &Ca,
    member: &EtcdMember,
    validity: Duration,
) -> Result<EtcdMemberCerts> {
    Ok(EtcdMemberCerts {
        server: ca.issue(&etcd_server_spec(member, validity))?,
        peer: ca.issue(&etcd_peer_spec(member, validity))?,
    })
}

fn member_spec(member: &EtcdMember, validity: Duration) -> LeafSpec {
    LeafSpec {
        common_name: member.name.clone(),
        organizations: Vec::new(),
        dns_names: member.dns_sans(),
        ip_addresses: member.ip_sans(),
        usage: Usage::ServerAndClient,
        validity,
    }
}

fn client_spec(common_name: &str, validity: Duration) -> LeafSpec {
    LeafSpec {
        common_name: common_name.to_owned(),
        organizations: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        usage: Usage::Client,
        validity,
    }
}
