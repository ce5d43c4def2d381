//! The STAND-IN `kubeadm certs check-expiration` and `kubeadm certs renew <name>|all`. Both read
//! the files on the host (so they show what kubegrid rewrote); `renew` re-signs the present
//! leaves under the CA on the host, keeping each one's subject, SANs and key, as upstream.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::{
    certs::{pki_path, read_optional},
    flags::Flags,
    host::{self, HEADER},
    kubeconfigs::{KUBE_DIR, embedded},
    manifests,
};
use crate::{
    Ctx, Error,
    checks::parse_duration,
    pki::{self, CertInfo, Signer},
};

/// Where one certificate kubeadm manages lives.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// `<PKI_DIR>/<base>.crt` and `.key`.
    Pem(&'static str),
    /// The client certificate embedded in `/etc/kubernetes/<file>`.
    Kubeconfig(&'static str),
}

/// kubeadm's renewable certificates: name, place, CA name and CA base path, and what renew
/// says it renewed.
const CERTS: &[(&str, Place, &str, &str, &str)] = &[
    (
        "admin.conf",
        Place::Kubeconfig("admin.conf"),
        "ca",
        "ca",
        "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    ),
    (
        "apiserver",
        Place::Pem("apiserver"),
        "ca",
        "ca",
        "certificate for serving the Kubernetes API",
    ),
    (
        "apiserver-etcd-client",
        Place::Pem("apiserver-etcd-client"),
        "etcd-ca",
        "etcd/ca",
        "certificate the apiserver uses to access etcd",
    ),
    (
        "apiserver-kubelet-client",
        Place::Pem("apiserver-kubelet-client"),
        "ca",
        "ca",
        "certificate for the API server to connect to kubelet",
    ),
    (
        "controller-manager.conf",
        Place::Kubeconfig("controller-manager.conf"),
        "ca",
        "ca",
        "certificate embedded in the kubeconfig file for the controller manager to use",
    ),
    (
        "etcd-healthcheck-client",
        Place::Pem("etcd/healthcheck-client"),
        "etcd-ca",
        "etcd/ca",
        "certificate for liveness probes to healthcheck etcd",
    ),
    (
        "etcd-peer",
        Place::Pem("etcd/peer"),
        "etcd-ca",
        "etcd/ca",
        "certificate for etcd nodes to communicate with each other",
    ),
    (
        "etcd-server",
        Place::Pem("etcd/server"),
        "etcd-ca",
        "etcd/ca",
        "certificate for serving etcd",
    ),
    (
        "front-proxy-client",
        Place::Pem("front-proxy-client"),
        "front-proxy-ca",
        "front-proxy-ca",
        "certificate for the front proxy client",
    ),
    (
        "scheduler.conf",
        Place::Kubeconfig("scheduler.conf"),
        "ca",
        "ca",
        "certificate embedded in the kubeconfig file for the scheduler manager to use",
    ),
    (
        "super-admin.conf",
        Place::Kubeconfig("super-admin.conf"),
        "ca",
        "ca",
        "certificate embedded in the kubeconfig file for the super-admin",
    ),
];

/// kubeadm's CAs: name and base path.
const CAS: &[(&str, &str)] = &[
    ("ca", "ca"),
    ("etcd-ca", "etcd/ca"),
    ("front-proxy-ca", "front-proxy-ca"),
];

/// `kubeadm certs ARGS` (ARGS after `certs`).
pub fn run(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(
        args.get(1..).unwrap_or_default(),
        &["config", "cert-dir", "kubeconfig"],
        &[],
    )?;
    if flags
        .value("cert-dir")
        .is_some_and(|d| d.trim_end_matches('/') != super::certs::PKI_DIR)
    {
        return Err(Error::Usage(format!(
            "--cert-dir: the stand-in reads only kubeadm's default {}",
            super::certs::PKI_DIR
        )));
    }
    match (
        args.first().map(String::as_str),
        flags.positional.as_slice(),
    ) {
        (Some("check-expiration"), []) => {
            print!("{}", check_expiration(ctx, OffsetDateTime::now_utc())?);
            Ok(())
        }
        (Some("renew"), [name]) => renew(ctx, name),
        _ => Err(Error::Usage(format!(
            "unsupported command line certs {args:?}; the stand-in takes: certs check-expiration, certs renew NAME|all \
             (NAME: {})",
            CERTS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The certificate PEM of a place, `None` when absent.
fn read_cert(ctx: &Ctx, place: Place) -> Result<Option<String>, Error> {
    match place {
        Place::Pem(base) => read_optional(ctx, &pki_path(&format!("{base}.crt"))),
        Place::Kubeconfig(file) => Ok(read_optional(ctx, &format!("{KUBE_DIR}/{file}"))?
            .and_then(|t| embedded(&t, "users", "user", "client-certificate-data"))),
    }
}

fn ca_key_present(ctx: &Ctx, base: &str) -> bool {
    ctx.host_path(&pki_path(&format!("{base}.key"))).is_file()
}

/// `Dec 05, 2027 22:51 UTC`, as kubeadm prints an expiry (Go's `Jan 02, 2006 15:04 MST`).
pub fn expires(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}, {} {:02}:{:02} UTC",
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// kubeadm's short human duration (`364d`, `9y`, `<invalid>`).
pub fn residual(left: time::Duration) -> String {
    let secs = left.whole_seconds();
    match secs {
        ..-1 => "<invalid>".into(),
        -1..0 => "0s".into(),
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ if secs / 3600 < 24 * 365 => format!("{}d", secs / 86400),
        _ => format!("{}y", secs / (86400 * 365)),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0) + 3)
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: String = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// kubeadm's check-expiration tables for the certificates and CAs present on this host.
pub fn check_expiration(ctx: &Ctx, now: OffsetDateTime) -> Result<String, Error> {
    let expiry = |info: &CertInfo| (expires(info.not_after), residual(info.not_after - now));
    let yes_no = |external: bool| if external { "yes" } else { "no" }.to_string();
    let mut leaves = vec![
        [
            "CERTIFICATE",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY",
            "EXTERNALLY MANAGED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (name, place, ca, ca_base, _) in CERTS {
        let Some(pem) = read_cert(ctx, *place)? else {
            continue;
        };
        let info = CertInfo::parse(&pem)
            .map_err(|e| Error::Invalid(format!("certificate {name}: {e}")))?;
        let (expires, left) = expiry(&info);
        leaves.push(vec![
            name.to_string(),
            expires,
            left,
            ca.to_string(),
            yes_no(!ca_key_present(ctx, ca_base)),
        ]);
    }
    let mut cas = vec![
        [
            "CERTIFICATE AUTHORITY",
            "EXPIRES",
            "RESIDUAL TIME",
            "EXTERNALLY MANAGED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (name, base) in CAS {
        let Some(pem) = read_optional(ctx, &pki_path(&format!("{base}.crt")))? else {
            continue;
        };
        let info = CertInfo::parse(&pem)
            .map_err(|e| Error::Invalid(format!("certificate authority {name}: {e}")))?;
        let (expires, left) = expiry(&info);
        cas.push(vec![
            name.to_string(),
            expires,
            left,
            yes_no(!ca_key_present(ctx, base)),
        ]);
    }
    Ok(format!("\n{}\n{}", table(&leaves), table(&cas)))
}

/// The leaf validity kubeadm renews with: the ClusterConfiguration's
/// `certificateValidityPeriod` (the copy `init` kept), else one year.
fn validity(ctx: &Ctx) -> Result<Duration, Error> {
    Ok(manifests::cluster_config(ctx)?
        .as_ref()
        .and_then(|c| c["certificateValidityPeriod"].as_str())
        .and_then(parse_duration)
        .unwrap_or(pki::LEAF_VALIDITY))
}

/// `kubeadm certs renew NAME|all` (also what `upgrade apply`/`node` do unless
/// `--certificate-renewal=false`). Under `all`, a certificate that is absent or whose CA key is
/// not on the host is skipped.
pub fn renew(ctx: &Ctx, name: &str) -> Result<(), Error> {
    let targets: Vec<_> = CERTS
        .iter()
        .filter(|c| name == "all" || c.0 == name)
        .collect();
    if targets.is_empty() {
        return Err(Error::Usage(format!(
            "certs renew: unknown certificate {name:?}; expected all or one of {}",
            CERTS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
        )));
    }
    let validity = validity(ctx)?;
    let mut renewed = 0;
    for (cert_name, place, ca, ca_base, what) in targets {
        let Some(cert_pem) = read_cert(ctx, *place)? else {
            if name != "all" {
                return Err(Error::Invalid(format!(
                    "certs renew: {cert_name} is not on this host"
                )));
            }
            continue;
        };
        let (Some(ca_crt), Some(ca_key)) = (
            read_optional(ctx, &pki_path(&format!("{ca_base}.crt")))?,
            read_optional(ctx, &pki_path(&format!("{ca_base}.key")))?,
        ) else {
            let msg = format!(
                "[renew] {cert_name}: the {ca} key is not on this host (externally managed); not renewed"
            );
            if name != "all" {
                return Err(Error::Invalid(msg));
            }
            ctx.say(&msg);
            continue;
        };
        let signer = Signer::from_pem(ca, &ca_crt, &ca_key)?;
        match place {
            Place::Pem(base) => {
                let key_path = pki_path(&format!("{base}.key"));
                let key = read_optional(ctx, &key_path)?
                    .ok_or_else(|| Error::Invalid(format!("certs renew: {key_path} is missing")))?;
                let new = signer.resign(&cert_pem, &key, validity)?;
                host::write(ctx, &pki_path(&format!("{base}.crt")), &new, 0o644)?;
            }
            Place::Kubeconfig(file) => renew_kubeconfig(ctx, file, &signer, &cert_pem, validity)?,
        }
        println!("{what} renewed");
        renewed += 1;
    }
    println!(
        "\nDone renewing certificates ({renewed}). You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates."
    );
    Ok(())
}

fn renew_kubeconfig(
    ctx: &Ctx,
    file: &str,
    signer: &Signer,
    cert_pem: &str,
    validity: Duration,
) -> Result<(), Error> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let path = format!("{KUBE_DIR}/{file}");
    let text = read_optional(ctx, &path)?.unwrap_or_default();
    let key = embedded(&text, "users", "user", "client-key-data")
        .ok_or_else(|| Error::Invalid(format!("certs renew: {path} has no client-key-data")))?;
    let new = signer.resign(cert_pem, &key, validity)?;
    let mut doc: Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::Invalid(format!("certs renew: {path} is not valid YAML: {e}")))?;
    doc["users"][0]["user"]["client-certificate-data"] = Value::String(STANDARD.encode(new));
    let yaml = serde_yaml::to_string(&doc).unwrap_or_default();
    host::write(ctx, &path, &format!("{HEADER}{yaml}"), 0o600)
}

#[cfg(test)]
mod tests;
