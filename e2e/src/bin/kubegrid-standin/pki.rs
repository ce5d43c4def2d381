//! X.509 for the STAND-IN kubeadm and kubelet: a CA loaded from its files on the host (or made
//! fresh), leaves issued under it, leaves re-signed with their own key, and what a certificate
//! says (subject, SANs, validity, issuer). Written on rcgen and x509-parser independently of
//! kubegrid's own PKI crate, so the e2e tests check kubegrid against a second implementation.
//! Keys are ECDSA P-256 (kubeadm's `encryptionAlgorithm: ECDSA-P256`): the ring provider
//! cannot generate RSA keys, which are upstream kubeadm's default.

use std::{net::IpAddr, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    string::{Ia5String, PrintableString},
};
use time::OffsetDateTime;
use x509_parser::{
    asn1_rs::Tag, certificate::X509Certificate, extensions::GeneralName, pem::Pem, x509::X509Name,
};

use crate::{Error, io_error};

/// kubeadm's default leaf validity (`certificateValidityPeriod`): one year.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// kubeadm's default CA validity (`caCertificateValidityPeriod`): ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// A CA that signs: its certificate (PEM), key (PEM) and rcgen's issuer built from them.
pub struct Signer {
    /// The CA certificate, PEM (the first certificate of its file: the signer).
    pub cert_pem: String,
    /// The CA key, PEM.
    pub key_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Signer {
    /// Loads the CA `name` from its certificate and key PEM; with a trust bundle the first
    /// certificate signs, as kubeadm and Go take it.
    pub fn from_pem(name: &str, cert_pem: &str, key_pem: &str) -> Result<Signer, Error> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| invalid(format!("the {name} key is not a usable PEM key: {e}")))?;
        let first = first_cert(cert_pem)
            .ok_or_else(|| invalid(format!("the {name} certificate file holds no certificate")))?;
        let cert = first
            .parse_x509()
            .map_err(|e| invalid(format!("the {name} certificate does not parse: {e}")))?;
        if !CertInfo::of(&cert).is_ca {
            return Err(invalid(format!(
                "the {name} certificate is not a CA certificate (no basicConstraints CA:true)"
            )));
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(invalid(format!(
                "the {name} key does not belong to the first certificate of its certificate file"
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name, cert.subject())?;
        params.key_identifier_method = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let not_after = cert.validity().not_after.to_datetime();
        Ok(Signer {
            cert_pem: pem_of(&first.contents),
            key_pem: key_pem.to_string(),
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// A new self-signed CA named `cn`, valid for `validity`.
    pub fn generate(cn: &str, validity: Duration) -> Result<Signer, Error> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(cn, &[]);
        (params.not_before, params.not_after) = window(validity, None);
        params.serial_number = Some(serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| invalid(format!("cannot sign the CA {cn}: {e}")))?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        Signer::from_pem(cn, &cert_pem, &key_pem)
    }

    /// Issues a leaf for `spec` with a fresh key, valid for `validity` but never past the CA.
    pub fn issue(&self, spec: &LeafSpec, validity: Duration) -> Result<(String, String), Error> {
        let key = new_key()?;
        let cert = self.sign(spec.params(validity, self.not_after)?, &key, &spec.cn)?;
        Ok((cert, key.serialize_pem()))
    }

    /// Re-signs the leaf `cert_pem` for its own key `key_pem`: same subject, SANs and usages,
    /// a new serial and validity window (kubeadm's `certs renew`).
    pub fn resign(
        &self,
        cert_pem: &str,
        key_pem: &str,
        validity: Duration,
    ) -> Result<String, Error> {
        let info = CertInfo::parse(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            invalid(format!(
                "the key of {} is not a usable PEM key: {e}",
                info.cn
            ))
        })?;
        let spec = LeafSpec {
            cn: info.cn.clone(),
            orgs: info.orgs.clone(),
            dns: info.dns.clone(),
            ips: info.ips.clone(),
            server: info.server_auth,
            client: info.client_auth,
        };
        self.sign(spec.params(validity, self.not_after)?, &key, &info.cn)
    }

    fn sign(&self, params: CertificateParams, key: &KeyPair, cn: &str) -> Result<String, Error> {
        params
            .signed_by(key, &self.issuer)
            .map(|c| c.pem())
            .map_err(|e| invalid(format!("cannot sign the certificate {cn}: {e}")))
    }

    /// Whether `cert_pem` (its first certificate) is signed by this CA.
    pub fn signed(&self, cert_pem: &str) -> bool {
        issued_by(cert_pem, &self.cert_pem)
    }
}

/// What a leaf certifies.
#[derive(Debug, Clone, Default)]
pub struct LeafSpec {
    /// Subject common name.
    pub cn: String,
    /// Subject organizations (Kubernetes groups).
    pub orgs: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Extended key usage serverAuth.
    pub server: bool,
    /// Extended key usage clientAuth.
    pub client: bool,
}

impl LeafSpec {
    /// A client certificate for `cn` in the groups `orgs`.
    pub fn client(cn: &str, orgs: &[&str]) -> LeafSpec {
        LeafSpec {
            cn: cn.into(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            client: true,
            ..LeafSpec::default()
        }
    }

    fn params(&self, validity: Duration, cap: OffsetDateTime) -> Result<CertificateParams, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&self.cn, &self.orgs);
        (params.not_before, params.not_after) = window(validity, Some(cap));
        params.serial_number = Some(serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if self.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        for name in &self.dns {
            let ia5 = Ia5String::try_from(name.as_str())
                .map_err(|e| invalid(format!("SAN `{name}` of {} is not ASCII: {e}", self.cn)))?;
            let san = SanType::DnsName(ia5);
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        for ip in &self.ips {
            if !params.subject_alt_names.contains(&SanType::IpAddress(*ip)) {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
        }
        Ok(params)
    }
}

/// A self-signed serving certificate and key for `cn` with the SANs `dns` and `ips` (the
/// kubelet's own when it has no certificate, as upstream's `GenerateSelfSignedCertKey`).
pub fn self_signed(
    cn: &str,
    dns: &[String],
    ips: &[IpAddr],
    validity: Duration,
) -> Result<(String, String), Error> {
    let key = new_key()?;
    let spec = LeafSpec {
        cn: cn.into(),
        dns: dns.to_vec(),
        ips: ips.to_vec(),
        server: true,
        ..LeafSpec::default()
    };
    let far = OffsetDateTime::now_utc() + validity + Duration::from_secs(60);
    let params = spec.params(validity, far)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(format!("cannot sign the certificate {cn}: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a certificate says.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject common name.
    pub cn: String,
    /// Subject organizations.
    pub orgs: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// Extended key usage serverAuth.
    pub server_auth: bool,
    /// Extended key usage clientAuth.
    pub client_auth: bool,
}

impl CertInfo {
    /// Reads the first certificate of `pem`.
    pub fn parse(pem: &str) -> Result<CertInfo, Error> {
        let first = first_cert(pem).ok_or_else(|| invalid("no CERTIFICATE block".into()))?;
        let cert = first
            .parse_x509()
            .map_err(|e| invalid(format!("the certificate does not parse: {e}")))?;
        Ok(CertInfo::of(&cert))
    }

    fn of(cert: &X509Certificate<'_>) -> CertInfo {
        let strings =
            |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
                it.filter_map(|a| a.as_str().ok().map(String::from))
                    .collect::<Vec<_>>()
            };
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                        16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let eku = cert
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|e| e.value.clone());
        CertInfo {
            cn: strings(&mut cert.subject().iter_common_name())
                .into_iter()
                .next()
                .unwrap_or_default(),
            orgs: strings(&mut cert.subject().iter_organization()),
            dns,
            ips,
            not_after: cert.validity().not_after.to_datetime(),
            is_ca: cert.is_ca(),
            server_auth: eku.as_ref().is_some_and(|e| e.server_auth),
            client_auth: eku.as_ref().is_some_and(|e| e.client_auth),
        }
    }
}

/// Whether the first certificate of `cert_pem` is signed by the first of `ca_pem`: the
/// signature verifies with the CA's key and the issuer names the CA's subject.
pub fn issued_by(cert_pem: &str, ca_pem: &str) -> bool {
    let (Some(leaf), Some(ca)) = (first_cert(cert_pem), first_cert(ca_pem)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// The CERTIFICATE blocks of a PEM text, as PEM.
pub fn certificates(pem: &str) -> Vec<String> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| pem_of(&p.contents))
        .collect()
}

fn first_cert(pem: &str) -> Option<Pem> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn new_key() -> Result<KeyPair, Error> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| invalid(format!("cannot generate an ECDSA P-256 key: {e}")))
}

/// A new ECDSA P-256 key: its PKCS#8 PEM and its public key PEM (kubeadm's sa.key/sa.pub).
pub fn key_pair_pem() -> Result<(String, String), Error> {
    let key = new_key()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let path = std::path::Path::new("/dev/urandom");
    let mut buf = vec![0u8; n];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_error("read", path))?;
    Ok(buf)
}

fn serial() -> Result<SerialNumber, Error> {
    let mut bytes = random_bytes(16)?;
    // Positive, without a leading zero octet.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// From a minute ago (clock skew between hosts, as kubeadm back-dates by 5 minutes) until
/// `validity` from now, capped at `cap`; whole seconds.
fn window(validity: Duration, cap: Option<OffsetDateTime>) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let not_after = now + validity;
    (
        now - Duration::from_secs(300),
        cap.map_or(not_after, |c| not_after.min(c)),
    )
}

fn subject(cn: &str, orgs: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    // rcgen keys a name by attribute type: a second O goes in under its OID spelled as a custom
    // type (system:nodes and a second group never occur together in kubeadm's certificates).
    for (i, org) in orgs.iter().take(2).enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 10])
        };
        dn.push(ty, DnValue::Utf8String(org.clone()));
    }
    dn.push(DnType::CommonName, DnValue::Utf8String(cn.to_string()));
    dn
}

/// `name` for rcgen with each attribute's original string type, so the issuer of what this CA
/// signs is byte-identical to its subject (a CA that kubegrid or another tool made).
fn distinguished_name(ca: &str, name: &X509Name<'_>) -> Result<DistinguishedName, Error> {
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .map(Iterator::collect)
            .unwrap_or_default();
        let text = attr
            .as_str()
            .map_err(|e| invalid(format!("the {ca} subject has a non-string attribute: {e}")))?;
        let value = match attr.attr_value().tag() {
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text)
                    .map_err(|e| invalid(format!("the {ca} subject: {e}")))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                Ia5String::try_from(text).map_err(|e| invalid(format!("the {ca} subject: {e}")))?,
            ),
            _ => DnValue::Utf8String(text.to_string()),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests;
