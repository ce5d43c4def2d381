//! What a leaf certificate should be ([`LeafSpec`]), what issuing one yields ([`IssuedCert`]) and
//! the form certificates are kept in ([`StoredCert`]); plus the parameter building shared with
//! CA generation.

use std::{fmt, net::IpAddr, time::Duration};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber, string::Ia5String,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// How far back `notBefore` is set, so that a host whose clock is a little behind the engine's
/// accepts a certificate issued a moment ago.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// The extended key usages a leaf certificate is issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// TLS server authentication only.
    Server,
    /// TLS client authentication only.
    Client,
    /// Both; etcd members use one certificate as server and as client of their peers.
    ServerAndClient,
}

impl Usage {
    /// Whether the certificate may authenticate a TLS server.
    pub fn server_auth(self) -> bool {
        matches!(self, Usage::Server | Usage::ServerAndClient)
    }

    /// Whether the certificate may authenticate a TLS client.
    pub fn client_auth(self) -> bool {
        matches!(self, Usage::Client | Usage::ServerAndClient)
    }
}

/// Everything that distinguishes one leaf certificate from another; the key and serial are
/// fresh on every issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject CN; Kubernetes reads it as the user name of a client certificate.
    pub common_name: String,
    /// Subject O values; Kubernetes reads them as groups. At most two (an rcgen limit).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Server auth, client auth or both.
    pub usage: Usage,
    /// How long the certificate is valid from now (capped at the CA's own expiry).
    pub validity: Duration,
}

/// A freshly issued certificate with its private key, both PEM (the key as PKCS#8).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl IssuedCert {
    /// The form the engine keeps in its journal, under `name`.
    pub fn to_stored(&self, name: &str) -> StoredCert {
        StoredCert::new(name, &self.cert_pem, &self.key_pem)
    }
}

// Private keys stay out of logs and panic messages.
impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[private key elided]")
            .finish()
    }
}

/// A certificate and key as the engine keeps them in its journal, one per name per cluster
/// ("etcd-ca", "etcd-server-etcd1", ...), so re-applies reuse them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCert {
    /// The journal's key for this certificate.
    pub name: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl StoredCert {
    /// A stored certificate named `name`.
    pub fn new(name: &str, cert_pem: &str, key_pem: &str) -> Self {
        StoredCert {
            name: name.to_owned(),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        }
    }

    /// The certificate and key without the name.
    pub fn to_issued(&self) -> IssuedCert {
        IssuedCert {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("name", &self.name)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[private key elided]")
            .finish()
    }
}

/// A random positive 128-bit serial: RFC 5280 asks for at most 20 octets and enough entropy
/// that serials are unpredictable.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    // Clear the sign bit so the DER INTEGER stays positive, and set the next one so the serial
    // never has a leading zero octet and keeps its full length.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// `notBefore` and `notAfter` for a certificate valid for `validity` from `now`.
pub(crate) fn validity_window(
    common_name: &str,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    // Certificates hold whole seconds; truncating here keeps the times reported for a CA equal
    // to the ones its certificate carries.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let out_of_range = || Error::ValidityOutOfRange {
        common_name: common_name.to_owned(),
        validity,
    };
    if validity.is_zero() {
        return Err(out_of_range());
    }
    let span = time::Duration::try_from(validity).map_err(|_| out_of_range())?;
    let not_after = now.checked_add(span).ok_or_else(out_of_range)?;
    // GeneralizedTime has four year digits.
    if not_after.year() > 9999 {
        return Err(out_of_range());
    }
    let skew = time::Duration::try_from(CLOCK_SKEW_ALLOWANCE).map_err(|_| out_of_range())?;
    Ok((now - skew, not_after))
}

/// The subject: O entries first, then CN, in the order kubeadm's certificates show them.
pub(crate) fn subject(common_name: &str, organizations: &[String]) -> Result<DistinguishedName> {
    let invalid = |detail: String| Error::InvalidSubject {
        common_name: common_name.to_owned(),
        detail,
    };
    if common_name.is_empty() {
        return Err(invalid("the common name is empty".to_owned()));
    }
    if organizations.iter().any(String::is_empty) {
        return Err(invalid("an organization is empty".to_owned()));
    }
    // rcgen keys a DistinguishedName by attribute type, so one O goes in as the named type and a
    // second under the same OID spelled as a custom type; a third has no key left.
    let org_types = [
        DnType::OrganizationName,
        DnType::CustomDnType(vec![2, 5, 4, 10]),
    ];
    if organizations.len() > org_types.len() {
        return Err(invalid(format!(
            "{} organizations given ({}); at most {} are supported",
            organizations.len(),
            organizations.join(", "),
            org_types.len()
        )));
    }
    let mut dn = DistinguishedName::new();
    for (ty, org) in org_types.into_iter().zip(organizations) {
        dn.push(ty, org.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

/// Certificate parameters for `spec`, not yet tied to a key or issuer.
pub(crate) fn leaf_params(spec: &LeafSpec, now: OffsetDateTime) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&spec.common_name, &spec.organizations)?;
    params.subject_alt_names = subject_alt_names(spec)?;
    (params.not_before, params.not_after) = validity_window(&spec.common_name, spec.validity, now)?;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys sign; they never encipher, so keyEncipherment would be wrong here.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.usage.server_auth() {
        params.insert_extended_key_usage(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.usage.client_auth() {
        params.insert_extended_key_usage(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn subject_alt_names(spec: &LeafSpec) -> Result<Vec<SanType>> {
    let mut sans = Vec::with_capacity(spec.dns_names.len() + spec.ip_addresses.len());
    for name in &spec.dns_names {
        let invalid = |detail: &str| Error::InvalidSan {
            common_name: spec.common_name.clone(),
            value: name.clone(),
            detail: detail.to_owned(),
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(invalid("a DNS name must be non-empty and without spaces"));
        }
        let ia5 = Ia5String::try_from(name.as_str())
            .map_err(|_| invalid("a DNS name must be ASCII (IA5); punycode-encode it"))?;
        let san = SanType::DnsName(ia5);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in &spec.ip_addresses {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}
