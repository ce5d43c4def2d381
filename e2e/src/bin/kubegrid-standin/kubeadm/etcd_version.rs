//! kubeadm's `ExternalEtcdVersion` preflight check, as `kubeadm upgrade apply` runs it for a
//! cluster with external etcd: `GET <endpoint>/version` on every endpoint over HTTPS with the
//! ClusterConfiguration's client certificate, and the `etcdserver` version compared with the
//! minimum kubeadm supports for the target Kubernetes version. One blocking request per
//! endpoint over rustls (already the workspace's TLS stack) with loopback-or-lab traffic only.

use std::{
    io::{self, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use serde_json::Value;

use crate::{
    Ctx,
    checks::{KubeVersion, host_port},
    yaml::at,
};

/// How long one endpoint may take to connect and to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A `major.minor.patch` etcd version.
pub type EtcdVersion = (u32, u32, u32);

/// The lowest external etcd kubeadm accepts for a Kubernetes version: 3.5.24 for 1.31 to 1.33,
/// 3.6.0 from 1.34 (kubeadm's `SupportedEtcdVersion` table and external etcd minimum).
pub fn minimum_for(kubernetes: &KubeVersion) -> EtcdVersion {
    if kubernetes.at_least(1, 34) {
        (3, 6, 0)
    } else {
        (3, 5, 24)
    }
}

/// `3.5.16` from an etcd version string.
pub fn parse(s: &str) -> Option<EtcdVersion> {
    let mut parts = s.trim().split(['-', '+']).next()?.split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    Some((next()?, next()?, next()?))
}

/// Formats an [`EtcdVersion`].
pub fn show(v: EtcdVersion) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// ClusterConfiguration's `etcd.external`: endpoints and the client's TLS files.
#[derive(Debug, Clone)]
pub struct External {
    /// `https://host:port` URLs.
    pub endpoints: Vec<String>,
    /// `caFile`.
    pub ca_file: String,
    /// `certFile`.
    pub cert_file: String,
    /// `keyFile`.
    pub key_file: String,
}

impl External {
    /// The external etcd a ClusterConfiguration names; `None` for kubeadm's stacked etcd.
    pub fn from_cluster(doc: &Value) -> Option<External> {
        let ext = at(doc, "etcd.external")?;
        let file = |k: &str| ext[k].as_str().unwrap_or_default().to_string();
        Some(External {
            endpoints: ext["endpoints"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            ca_file: file("caFile"),
            cert_file: file("certFile"),
            key_file: file("keyFile"),
        })
    }

    /// The TLS client configuration from the CA, certificate and key files (host paths).
    pub fn tls(&self, ctx: &Ctx) -> Result<Arc<ClientConfig>, String> {
        let ca = ctx.host_path(&self.ca_file);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&ca)
            .map_err(|e| format!("cannot read the etcd CA {}: {e}", self.ca_file))?
        {
            let cert = cert.map_err(|e| format!("the etcd CA {}: {e}", self.ca_file))?;
            roots
                .add(cert)
                .map_err(|e| format!("the etcd CA {}: {e}", self.ca_file))?;
        }
        let certs = CertificateDer::pem_file_iter(ctx.host_path(&self.cert_file))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "cannot read the etcd client certificate {}: {e}",
                    self.cert_file
                )
            })?;
        let key = PrivateKeyDer::from_pem_file(ctx.host_path(&self.key_file))
            .map_err(|e| format!("cannot read the etcd client key {}: {e}", self.key_file))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("the etcd client certificate {}: {e}", self.cert_file))?;
        Ok(Arc::new(config))
    }
}

/// The `etcdserver` version `endpoint` reports at `/version`.
pub fn query(endpoint: &str, tls: &Arc<ClientConfig>) -> Result<EtcdVersion, String> {
    let rest = endpoint
        .strip_prefix("https://")
        .ok_or_else(|| format!("`{endpoint}` is not an https:// URL"))?;
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = host_port(authority, true)?;
    let addr = (host.as_str(), port.unwrap_or(2379))
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let sock =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("dial tcp {addr}: {e}"))?;
    sock.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| sock.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("socket to {addr}: {e}"))?;
    let name =
        ServerName::try_from(host.clone()).map_err(|e| format!("server name {host}: {e}"))?;
    let conn = ClientConnection::new(Arc::clone(tls), name).map_err(|e| format!("TLS: {e}"))?;
    let mut stream = StreamOwned::new(conn, sock);
    let path = format!("/{}/version", base.trim_matches('/')).replace("//", "/");
    // HTTP/1.0: the reply ends with the connection, never chunked.
    stream
        .write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| format!("TLS request: {e}"))?;
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        // Servers that close without close_notify after a complete HTTP/1.0 reply.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !reply.is_empty() => {}
        Err(e) => return Err(format!("reading the reply: {e}")),
    }
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {path} answered `{status}`, expected 200"));
    }
    let json: Value = serde_json::from_str(body.trim())
        .map_err(|e| format!("GET {path}: the reply is not JSON: {e}"))?;
    let server = json["etcdserver"]
        .as_str()
        .ok_or_else(|| format!("GET {path}: the reply has no etcdserver version"))?;
    parse(server).ok_or_else(|| format!("couldn't parse external etcd version {server:?}"))
}

/// Runs the check on every endpoint; returns the versions found (for the record) and the
/// problems, one per endpoint that is unreachable or too old, each naming it.
pub fn check(
    ctx: &Ctx,
    ext: &External,
    target: &KubeVersion,
) -> (Vec<(String, String)>, Vec<String>) {
    let minimum = minimum_for(target);
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let tls = match ext.tls(ctx) {
        Ok(tls) => tls,
        Err(e) => return (found, vec![e]),
    };
    if ext.endpoints.is_empty() {
        problems.push("etcd.external.endpoints is empty".to_string());
    }
    for endpoint in &ext.endpoints {
        match query(endpoint, &tls) {
            Ok(v) if v < minimum => {
                found.push((endpoint.clone(), show(v)));
                problems.push(format!(
                    "{endpoint}: this version of kubeadm only supports external etcd version >= {} for Kubernetes {target}. Current version: {}; hint: upgrade etcd first",
                    show(minimum),
                    show(v)
                ));
            }
            Ok(v) => found.push((endpoint.clone(), show(v))),
            Err(e) => problems.push(format!(
                "failed to get the etcd version from {endpoint}: {e}"
            )),
        }
    }
    (found, problems)
}
