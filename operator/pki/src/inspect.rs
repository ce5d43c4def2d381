//! Reading existing certificates: expiry, subject, SANs, and the CA hash kubeadm's discovery
//! pins.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::{certificate::X509Certificate, extensions::GeneralName};

use crate::error::{Error, Result};

/// What the engine needs to know about an existing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject CN; empty when the subject has none.
    pub common_name: String,
    /// Subject O values, in order.
    pub organizations: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS subject alternative names, in certificate order.
    pub dns_names: Vec<String>,
    /// IP subject alternative names, in certificate order.
    pub ip_addresses: Vec<IpAddr>,
    /// Whether basic constraints say CA:TRUE.
    pub is_ca: bool,
    /// Whether the extended key usage allows TLS server authentication.
    pub server_auth: bool,
    /// Whether the extended key usage allows TLS client authentication.
    pub client_auth: bool,
    /// Serial number as lowercase hex.
    pub serial_hex: String,
    /// The subject name, attributes in certificate order as OpenSSL prints them
    /// (`O=system:masters, CN=kubernetes-admin`).
    pub subject: String,
    /// The issuer name, written like `subject`.
    pub issuer: String,
    /// `sha256:<hex>` of the certificate's DER (see [`fingerprint`](crate::fingerprint)).
    pub fingerprint: String,
    /// The issuer name equals the subject name (byte for byte): a root CA, or a kubelet's own
    /// serving certificate.
    pub self_signed: bool,
}

/// Parses the first certificate in `cert_pem` and reports its subject, validity, SANs and
/// usages.
pub fn read_expiry(cert_pem: &str) -> Result<CertInfo> {
    with_certificate("certificate", cert_pem, cert_info)
}

/// Whether two certificates carry the same public key (a renewal keeps it; a certificate
/// replaced by hand usually does not, and then its key file was replaced too).
pub fn same_public_key(a_pem: &str, b_pem: &str) -> Result<bool> {
    let a = with_certificate("certificate", a_pem, |c| Ok(c.public_key().raw.to_vec()))?;
    let b = with_certificate("certificate", b_pem, |c| Ok(c.public_key().raw.to_vec()))?;
    Ok(a == b)
}

/// Whether the certificate expires within `renew_before` of `now` (or has expired).
pub fn needs_renewal(cert_pem: &str, renew_before: Duration, now: OffsetDateTime) -> Result<bool> {
    let info = read_expiry(cert_pem)?;
    let horizon = time::Duration::try_from(renew_before)
        .ok()
        .and_then(|span| now.checked_add(span));
    // A horizon past the representable range is past every certificate's expiry.
    Ok(horizon.is_none_or(|horizon| horizon >= info.not_after))
}

/// Whether the certificate's SANs are exactly `dns` and `ips`, ignoring order, duplicates and
/// DNS letter case; a Node whose address changed fails this and gets a new certificate.
pub fn matches_sans(cert_pem: &str, dns: &[String], ips: &[IpAddr]) -> Result<bool> {
    let info = read_expiry(cert_pem)?;
    let lower = |names: &[String]| -> BTreeSet<String> {
        names.iter().map(|n| n.to_ascii_lowercase()).collect()
    };
    let have_ips: BTreeSet<IpAddr> = info.ip_addresses.iter().copied().collect();
    let want_ips: BTreeSet<IpAddr> = ips.iter().copied().collect();
    Ok(lower(&info.dns_names) == lower(dns) && have_ips == want_ips)
}

/// `sha256:<hex>` of the certificate's DER SubjectPublicKeyInfo: the value kubeadm's
/// `--discovery-token-ca-cert-hash` and `caCertHashes` expect.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String> {
    with_certificate("CA certificate", cert_pem, |cert| {
        let digest = Sha256::digest(cert.public_key().raw);
        Ok(format!("sha256:{}", hex::encode(digest)))
    })
}

/// Runs `f` on the first certificate in `cert_pem`; `name` says in errors which one it was.
pub(crate) fn with_certificate<T>(
    name: &str,
    cert_pem: &str,
    f: impl FnOnce(&X509Certificate<'_>) -> Result<T>,
) -> Result<T> {
    let fail = |detail: String| Error::ParseCertificate {
        name: name.to_owned(),
        detail,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| fail(format!("no PEM block found ({e})")))?;
    if pem.label != "CERTIFICATE" {
        return Err(fail(format!(
            "the first PEM block is labelled {:?}, expected \"CERTIFICATE\"",
            pem.label
        )));
    }
    let cert = pem
        .parse_x509()
        .map_err(|e| fail(format!("invalid DER ({e})")))?;
    f(&cert)
}

fn cert_info(cert: &X509Certificate<'_>) -> Result<CertInfo> {
    let fail = |detail: String| Error::ParseCertificate {
        name: "certificate".to_owned(),
        detail,
    };
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .map(|cn| cn.as_str().map(str::to_owned))
        .transpose()
        .map_err(|e| fail(format!("subject CN is not a string ({e})")))?
        .unwrap_or_default();
    let organizations = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("subject O is not a string ({e})")))?;

    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| fail(format!("bad subjectAltName extension ({e})")))?;
    for name in sans.iter().flat_map(|ext| &ext.value.general_names) {
        match name {
            GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
            GeneralName::IPAddress(raw) => {
                ip_addresses.push(ip_from_bytes(raw).ok_or_else(|| {
                    fail(format!(
                        "an IP subjectAltName has {} octets, expected 4 or 16",
                        raw.len()
                    ))
                })?)
            }
            _ => {}
        }
    }

    let eku = cert
        .extended_key_usage()
        .map_err(|e| fail(format!("bad extendedKeyUsage extension ({e})")))?;
    let (server_auth, client_auth) = eku.map_or((false, false), |ext| {
        (
            ext.value.any || ext.value.server_auth,
            ext.value.any || ext.value.client_auth,
        )
    });

    let validity = cert.validity();
    Ok(CertInfo {
        common_name,
        organizations,
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        dns_names,
        ip_addresses,
        is_ca: cert.is_ca(),
        server_auth,
        client_auth,
        serial_hex: hex::encode(cert.raw_serial()),
        subject: subject.to_string(),
        issuer: cert.issuer().to_string(),
        fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(cert.as_raw()))),
        self_signed: cert.issuer().as_raw() == subject.as_raw(),
    })
}

pub(crate) fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    if let Ok(octets) = <[u8; 4]>::try_from(raw) {
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    <[u8; 16]>::try_from(raw)
        .ok()
        .map(|octets| IpAddr::V6(Ipv6Addr::from(octets)))
}
