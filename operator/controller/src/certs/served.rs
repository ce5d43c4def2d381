//! After a renewal: what the API server (6443), etcd (2379) and each kubelet (10250) serve
//! over TLS, compared with what the renewal wrote. A port that does not answer is recorded
//! as not answering, never as verified.

use std::time::Duration;

use base64::Engine as _;
use kubegrid_api::{Node, Role, ServedCertificate};
use kubegrid_engine::certs::CertsReport;
use sha2::{Digest, Sha256};

/// How long one port may take to complete a handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server's port on a control-plane Node.
pub const API_SERVER_PORT: u16 = 6443;
/// etcd's client port.
pub const ETCD_PORT: u16 = 2379;
/// The kubelet's port.
pub const KUBELET_PORT: u16 = 10250;

/// The ports to read on each Node with the catalog name of the certificate each serves:
/// 6443 on control-plane Nodes, 2379 on etcd members (the control-plane Nodes when no Node
/// has the etcd role: etcd is stacked there), 10250 on every Node.
pub fn targets(nodes: &[Node]) -> Vec<(String, String, u16, &'static str)> {
    let stacked = !nodes.iter().any(|n| n.spec.roles.contains(&Role::Etcd));
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let address = node.spec.address.clone();
        let roles = &node.spec.roles;
        let control_plane = roles.contains(&Role::ControlPlane);
        if control_plane {
            out.push((name.clone(), address.clone(), API_SERVER_PORT, "apiserver"));
        }
        if roles.contains(&Role::Etcd) || (stacked && control_plane) {
            out.push((name.clone(), address.clone(), ETCD_PORT, "etcd-server"));
        }
        out.push((name, address, KUBELET_PORT, "kubelet-serving"));
    }
    out
}

/// Reads every target's served certificate and compares it with `after` (the renewal's
/// report, read from the hosts after it wrote) and `before` (the check that led to it).
pub async fn verify(
    nodes: &[Node],
    before: &CertsReport,
    after: &CertsReport,
    timeout: Duration,
) -> Vec<ServedCertificate> {
    let reads = targets(nodes)
        .into_iter()
        .map(|(node, address, port, name)| async move {
            let served = kubegrid_cluster::served_certificate(&address, port, timeout).await;
            compare(
                &node,
                port,
                name,
                served.map_err(|e| e.to_string()),
                before,
                after,
            )
        });
    futures::future::join_all(reads).await
}

/// One port's result: `served` is the presented certificate's DER, or why there was none.
pub fn compare(
    node: &str,
    port: u16,
    name: &str,
    served: Result<Vec<u8>, String>,
    before: &CertsReport,
    after: &CertsReport,
) -> ServedCertificate {
    let der = match served {
        Ok(der) => der,
        Err(why) => {
            return ServedCertificate {
                node: node.into(),
                port,
                answered: false,
                message: crate::status::truncate(
                    &format!("did not answer: {}", super::summary::scrub(&why)),
                    256,
                ),
                ..ServedCertificate::default()
            };
        }
    };
    let fingerprint = format!("sha256:{}", hex::encode(Sha256::digest(&der)));
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let not_after = kubegrid_pki::read_expiry(&pem).ok().and_then(|info| {
        info.not_after
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let rows = |report: &CertsReport| -> Vec<(String, String)> {
        report
            .nodes
            .iter()
            .filter(|n| n.node == node)
            .flat_map(|n| &n.certificates)
            .filter(|r| r.name == name && !r.ca)
            .map(|r| (r.fingerprint.to_ascii_lowercase(), r.not_after.clone()))
            .collect()
    };
    let (written, old) = (rows(after), rows(before));
    let later = |a: &str, b: &str| match (
        a.parse::<k8s_openapi::jiff::Timestamp>(),
        b.parse::<k8s_openapi::jiff::Timestamp>(),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    };
    let (matches, message) = if written.iter().any(|(fp, _)| *fp == fingerprint) {
        if old.iter().any(|(fp, _)| *fp == fingerprint) {
            (
                true,
                format!(
                    "serves the {name} certificate on the host, which the renewal left as it was"
                ),
            )
        } else {
            (true, format!("serves the renewed {name} certificate"))
        }
    } else if let Some(served_until) = &not_after
        && !old.is_empty()
        && old.iter().all(|(_, before)| later(served_until, before))
    {
        (
            true,
            format!("serves a {name} certificate newer than before the renewal"),
        )
    } else if written.is_empty() {
        (
            false,
            format!("the renewal's report has no {name} certificate on {node} to compare with"),
        )
    } else {
        (
            false,
            format!("still serves a certificate other than the renewed {name} one"),
        )
    };
    ServedCertificate {
        node: node.into(),
        port,
        answered: true,
        not_after,
        matches: Some(matches),
        message,
    }
}
