//! The STAND-IN kubelet's HTTPS port (`port`, default 10250, on `address`, default 0.0.0.0)
//! with its serving certificate: the KubeletConfiguration's `tlsCertFile`/`tlsPrivateKeyFile`,
//! else `/var/lib/kubelet/pki/kubelet.crt` and `.key`, generated self-signed at the first start
//! when missing (CN `<hostname>@<unix time>`, as upstream's). The files are read on every
//! handshake, so a certificate kubegrid rewrites is served by the next connection. It answers
//! GET /healthz with 200 `ok` (no authentication: it serves nothing else).

use std::{
    fs,
    net::{IpAddr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    thread,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::{Ctx, Error, kubeadm::write_file, pki, tls};

/// The kubelet's default serving certificate.
pub const DEFAULT_CERT: &str = "/var/lib/kubelet/pki/kubelet.crt";
/// The kubelet's default serving key.
pub const DEFAULT_KEY: &str = "/var/lib/kubelet/pki/kubelet.key";

/// Where the kubelet serves and with which files (host paths, absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// `address`:`port`.
    pub addr: SocketAddr,
    /// `tlsCertFile`.
    pub cert: String,
    /// `tlsPrivateKeyFile`.
    pub key: String,
}

impl Serving {
    /// From a KubeletConfiguration (`Value::Null` when there is none).
    pub fn from_config(config: &Value) -> Serving {
        let address: IpAddr = config["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let port = config["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(10250);
        let file = |k: &str, default: &str| config[k].as_str().unwrap_or(default).to_string();
        Serving {
            addr: SocketAddr::new(address, port),
            cert: file("tlsCertFile", DEFAULT_CERT),
            key: file("tlsPrivateKeyFile", DEFAULT_KEY),
        }
    }
}

/// Generates the self-signed serving pair for `hostname` when either file is missing.
pub fn ensure_certificate(ctx: &Ctx, serving: &Serving, hostname: &str) -> Result<(), Error> {
    if ctx.host_path(&serving.cert).is_file() && ctx.host_path(&serving.key).is_file() {
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (dns, ips) = match hostname.parse::<IpAddr>() {
        Ok(ip) => (Vec::new(), vec![ip]),
        Err(_) => (vec![hostname.to_string()], Vec::new()),
    };
    let (cert, key) =
        pki::self_signed(&format!("{hostname}@{now}"), &dns, &ips, pki::LEAF_VALIDITY)?;
    write_file(ctx, &serving.key, &key, 0o600)?;
    write_file(ctx, &serving.cert, &cert, 0o644)?;
    ctx.say(&format!(
        "generated a self-signed serving certificate {} for {hostname}",
        serving.cert
    ));
    Ok(())
}

/// Listens on the serving address and serves it on a thread for as long as the process runs.
pub fn spawn(ctx: &Ctx, serving: &Serving) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(serving.addr).map_err(|e| {
        Error::Invalid(format!(
            "cannot listen on {} for the kubelet's HTTPS port: {e} (another kubelet running?)",
            serving.addr
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", serving.addr)))?;
    let (cert, key) = (ctx.host_path(&serving.cert), ctx.host_path(&serving.key));
    let label = ctx.tool.label();
    thread::spawn(move || accept(&listener, &cert, &key, &label));
    Ok(local)
}

fn accept(listener: &TcpListener, cert: &Path, key: &Path, label: &str) {
    for tcp in listener.incoming().flatten() {
        let (cert, key, label): (PathBuf, PathBuf, String) =
            (cert.into(), key.into(), label.into());
        thread::spawn(move || {
            let answer = |path: &str| match path {
                "/healthz" => (200, "ok"),
                _ => (
                    404,
                    "the STAND-IN kubelet serves only /healthz on this port",
                ),
            };
            let served =
                tls::server_config(&cert, &key, None).and_then(|c| tls::serve(tcp, c, &answer));
            if let Err(e) = served {
                eprintln!("{label} https: {e}");
            }
        });
    }
}

/// The host name the kubelet registers as: `--hostname-override`, else the kernel's.
pub fn hostname(override_name: Option<&str>) -> String {
    override_name.map_or_else(
        || {
            fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        },
        str::to_lowercase,
    )
}

#[cfg(test)]
mod tests;
