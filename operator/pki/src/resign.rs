//! Renewal and CA rotation without touching private keys: a certificate found on a host is
//! signed again, with the same subject, SANs, key usages and public key, a fresh serial and a
//! new validity window. The leaf's private key never leaves its host.

use std::time::Duration;

use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, SanType,
    SignatureAlgorithm, string::Ia5String,
};
use time::OffsetDateTime;
use x509_parser::{
    asn1_rs::{FromDer, Oid},
    certificate::X509Certificate,
    extensions::{GeneralName, ParsedExtension},
    oid_registry::OID_X509_EXT_EXTENDED_KEY_USAGE,
    x509::SubjectPublicKeyInfo,
};

use crate::{
    ca::{Ca, distinguished_name, key_usages},
    error::{Error, Result},
    inspect::{ip_from_bytes, with_certificate},
    leaf::{random_serial, validity_window},
};

/// The public key of a certificate on a host, in the form rcgen signs.
struct HostKey {
    /// The subjectPublicKey BIT STRING's bytes.
    bits: Vec<u8>,
    /// The algorithm whose SubjectPublicKeyInfo encoding matches the original exactly.
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for HostKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// What re-signing needs from the original certificate, owned.
struct Original {
    params: CertificateParams,
    key: HostKey,
    subject: String,
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl Ca {
    /// Signs again the certificate `cert_pem` (the first PEM block; a host's file): same
    /// subject (byte for byte), DNS/IP/URI/email SANs, key usage, extended key usage and public
    /// key, a fresh serial, valid for `validity` from now and capped at this CA's own expiry,
    /// with this CA as issuer and its key identifier as authority key identifier. The
    /// certificate may have been issued by any CA, so this also moves a leaf to a new CA.
    /// Its subject key identifier is kept; other extensions (CRL distribution points, name
    /// constraints, private ones) are not copied, and extensions are written non-critical
    /// but for basic constraints, as rcgen writes them. Returns the new certificate, PEM.
    pub fn resign(&self, cert_pem: &str, validity: Duration) -> Result<String> {
        let original = with_certificate("certificate to re-sign", cert_pem, original)?;
        let fail = |detail: String| Error::ResignCertificate {
            subject: original.subject.clone(),
            detail,
        };
        let now = OffsetDateTime::now_utc();
        if self.not_after() <= now {
            return Err(fail(format!(
                "CA {} expired at {}; hint: rotate the CA first",
                self.common_name(),
                self.not_after()
            )));
        }
        let mut params = original.params;
        (params.not_before, params.not_after) = validity_window(&original.subject, validity, now)?;
        params.not_after = params.not_after.min(self.not_after());
        let cert = params
            .signed_by(&original.key, self.issuer())
            .map_err(|source| Error::SignCertificate {
                common_name: original.subject.clone(),
                issuer: self.common_name().to_owned(),
                source,
            })?;
        let pem = cert.pem();
        // The promise is that only the signature, serial and dates change: check it on the
        // result rather than trust the rebuilt parameters.
        with_certificate("re-signed certificate", &pem, |new| {
            if new.subject().as_raw() != original.subject_der.as_slice() {
                return Err(fail(
                    "the re-signed subject would not be byte-identical to the original".to_owned(),
                ));
            }
            if new.public_key().raw != original.spki_der.as_slice() {
                return Err(fail(
                    "the re-signed public key would not be identical to the original".to_owned(),
                ));
            }
            Ok(())
        })?;
        Ok(pem)
    }
}

fn original(cert: &X509Certificate<'_>) -> Result<Original> {
    let subject = cert.subject().to_string();
    let fail = |detail: String| Error::ResignCertificate {
        subject: subject.clone(),
        detail,
    };
    if cert.is_ca() {
        return Err(fail(
            "it is a CA certificate; CAs are generated anew, only leaves are re-signed".to_owned(),
        ));
    }
    let key = host_key(cert.public_key()).ok_or_else(|| {
        fail(format!(
            "its public key algorithm {} is not supported; expected ECDSA P-256/P-384, Ed25519 or RSA",
            cert.public_key().algorithm.algorithm
        ))
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&subject, cert.subject())?;
    params.subject_alt_names = sans(cert).map_err(fail)?;
    params.key_usages = key_usages(cert);
    params.extended_key_usages = extended_key_usages(cert).map_err(fail)?;
    let basic_constraints = cert
        .basic_constraints()
        .map_err(|e| fail(format!("bad basicConstraints extension ({e})")))?;
    params.is_ca = if basic_constraints.is_some() {
        IsCa::ExplicitNoCa
    } else {
        IsCa::NoCa
    };
    // A subject key identifier the original carries is kept as it is (the same key, so the
    // same identifier, whichever way its issuer derived it).
    if let Some(ski) = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
    {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    }
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    Ok(Original {
        params,
        key,
        subject_der: cert.subject().as_raw().to_vec(),
        spki_der: cert.public_key().raw.to_vec(),
        subject,
    })
}

/// The algorithm whose encoding of the key reproduces the certificate's SubjectPublicKeyInfo
/// exactly, so that the re-signed certificate carries the very same key.
fn host_key(spki: &SubjectPublicKeyInfo<'_>) -> Option<HostKey> {
    let candidates: [&'static SignatureAlgorithm; 4] = [
        &PKCS_ECDSA_P256_SHA256,
        &PKCS_ECDSA_P384_SHA384,
        &PKCS_RSA_SHA256,
        &PKCS_ED25519,
    ];
    candidates
        .into_iter()
        .map(|alg| HostKey {
            bits: spki.subject_public_key.data.to_vec(),
            alg,
        })
        .find(|key| key.subject_public_key_info() == spki.raw)
}

fn sans(cert: &X509Certificate<'_>) -> std::result::Result<Vec<SanType>, String> {
    let ext = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension ({e})"))?;
    let ia5 = |kind: &str, value: &str| {
        Ia5String::try_from(value).map_err(|_| format!("its {kind} SAN is not ASCII"))
    };
    let mut out = Vec::new();
    for name in ext.iter().flat_map(|ext| &ext.value.general_names) {
        out.push(match name {
            GeneralName::DNSName(dns) => SanType::DnsName(ia5("DNS", dns)?),
            GeneralName::IPAddress(raw) => {
                SanType::IpAddress(ip_from_bytes(raw).ok_or_else(|| {
                    format!(
                        "an IP subjectAltName has {} octets, expected 4 or 16",
                        raw.len()
                    )
                })?)
            }
            GeneralName::URI(uri) => SanType::URI(ia5("URI", uri)?),
            GeneralName::RFC822Name(email) => SanType::Rfc822Name(ia5("email", email)?),
            other => {
                return Err(format!(
                    "it has a subjectAltName of a kind that cannot be copied ({other}); expected DNS, IP, URI or email names"
                ));
            }
        });
    }
    Ok(out)
}

/// The extended key usages in the certificate's own order, each written back under its own
/// OID (rcgen encodes a custom purpose with exactly the OID given), so the extension's value is
/// byte-identical.
fn extended_key_usages(
    cert: &X509Certificate<'_>,
) -> std::result::Result<Vec<ExtendedKeyUsagePurpose>, String> {
    let Some(ext) = cert
        .iter_extensions()
        .find(|ext| ext.oid == OID_X509_EXT_EXTENDED_KEY_USAGE)
    else {
        return Ok(Vec::new());
    };
    let (_, oids) = <Vec<Oid<'_>>>::from_der(ext.value)
        .map_err(|e| format!("bad extendedKeyUsage extension ({e})"))?;
    oids.iter()
        .map(|oid| {
            let arcs = oid
                .iter()
                .ok_or_else(|| format!("extended key usage OID {oid} is too large"))?;
            Ok(ExtendedKeyUsagePurpose::Other(arcs.collect()))
        })
        .collect()
}
