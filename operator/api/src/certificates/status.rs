//! `status.certificates`: what the operator's last read of the hosts found, and where a
//! renewal or CA rotation stands. It names files, subjects and dates only: no certificate
//! or key material.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The certificates of a Cluster, as the operator last read them from its hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    /// The certificate that expires first, across every Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_expiry: Option<CertificateExpiry>,
    /// When the hosts were last read, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<String>,
    /// When a renewal last finished, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed: Option<String>,
    /// Per Node: how many certificates, the earliest expiry, how many expire within
    /// `warnBefore` and how many are flagged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeCertificates>,
    /// Certificates the journal did not issue as they are (changed by hand, or signed by a
    /// CA kubegrid does not hold), at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<FlaggedCertificate>,
    /// What the servers presented over TLS after the last renewal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<ServedCertificate>,
    /// A CA rotation in progress or just finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    /// One line on the last check, renewal or rotation request that did not go as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A certificate and when it expires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpiry {
    /// Node name.
    pub node: String,
    /// Catalog name, e.g. `apiserver`, `etcd-server`, `admin.conf`.
    pub name: String,
    /// Path on the Node.
    pub file: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

/// One Node's certificates in short.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertificates {
    /// Node name.
    pub node: String,
    /// Whether its files could be read at the last check.
    pub reachable: bool,
    /// Certificates found.
    pub certificates: u32,
    /// The earliest end of validity among them, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_not_after: Option<String>,
    /// How many expire within `warnBefore`.
    pub expiring: u32,
    /// How many are flagged.
    pub flagged: u32,
}

/// A certificate on a host that the journal did not issue as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlaggedCertificate {
    /// Node name.
    pub node: String,
    /// Catalog name.
    pub name: String,
    /// Path on the Node.
    pub file: String,
    /// Why it is flagged.
    pub reason: String,
}

/// The certificate a server presented on one port after a renewal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedCertificate {
    /// Node name.
    pub node: String,
    /// 6443 (API server), 2379 (etcd) or 10250 (kubelet).
    pub port: u16,
    /// Whether the port answered a TLS handshake with a certificate.
    pub answered: bool,
    /// The presented certificate's end of validity, RFC 3339; unset when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Whether it is the certificate the host holds after the renewal (or at least one
    /// newer than before); unset when the port did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<bool>,
    /// What was seen, in a few words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Where a CA rotation stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// `etcd`, `kubernetes`, `front-proxy` or `service-account`.
    pub ca: String,
    /// `new-ca`, `trust-both`, `reissue`, `drop-old` or `done`.
    pub phase: String,
    /// The phases finished, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
}
