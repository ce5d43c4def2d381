//! Certificate authorities: generated fresh, or loaded back from the PEM the journal keeps.

use std::{fmt, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
    string::{Ia5String, PrintableString},
};
use time::OffsetDateTime;
use x509_parser::{
    asn1_rs::Tag, certificate::X509Certificate, extensions::ParsedExtension, x509::X509Name,
};

use crate::{
    error::{Error, Result},
    inspect::{ca_cert_hash, with_certificate},
    leaf::{
        IssuedCert, LeafSpec, StoredCert, leaf_params, random_serial, subject, validity_window,
    },
};

/// A CA that can sign leaf certificates: its certificate and key as PEM, and the signer built
/// from them.
pub struct Ca {
    common_name: String,
    cert_pem: String,
    key_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA with an ECDSA P-256 key, valid for `validity` from now.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Self> {
        let key = generate_key(common_name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name, &[])?;
        (params.not_before, params.not_after) =
            validity_window(common_name, validity, OffsetDateTime::now_utc())?;
        params.serial_number = Some(random_serial());
        // No path length limit, as kubeadm's CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|source| Error::SignCertificate {
                common_name: common_name.to_owned(),
                issuer: common_name.to_owned(),
                source,
            })?;
        let not_after = params.not_after;
        Ok(Ca {
            common_name: common_name.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key PEM. Certificates it signs name the
    /// loaded certificate's subject as issuer and carry its key identifier, so they verify
    /// against the original CA certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        Self::load("CA certificate", cert_pem, key_pem)
    }

    /// Loads a CA the engine kept in its journal.
    pub fn from_stored(stored: &StoredCert) -> Result<Self> {
        Self::load(&stored.name, &stored.cert_pem, &stored.key_pem)
    }

    fn load(name: &str, cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| Error::LoadKey {
            name: name.to_owned(),
            source,
        })?;
        let (params, common_name) = with_certificate(name, cert_pem, |cert| {
            let common_name = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_owned();
            if !cert.is_ca() {
                return Err(Error::NotACa {
                    name: name.to_owned(),
                    common_name,
                });
            }
            if cert.public_key().raw != key.subject_public_key_info().as_slice() {
                return Err(Error::CaKeyMismatch {
                    name: name.to_owned(),
                });
            }
            Ok((issuer_params(name, cert)?, common_name))
        })?;
        Ok(Ca {
            common_name,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            not_after: params.not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Signs a new certificate for `spec` with a fresh ECDSA P-256 key. Its `notAfter` is capped
    /// at the CA's own, since no chain is valid past its root.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert> {
        let key = generate_key(&spec.common_name)?;
        let mut params = leaf_params(spec, OffsetDateTime::now_utc())?;
        params.not_after = params.not_after.min(self.not_after);
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| Error::SignCertificate {
                    common_name: spec.common_name.clone(),
                    issuer: self.common_name.clone(),
                    source,
                })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The signer, for the other modules of this crate.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The subject CN.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// End of the CA's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// `sha256:<hex>` of the CA's public key, for kubeadm's discovery (see
    /// [`ca_cert_hash`](crate::ca_cert_hash)).
    pub fn cert_hash(&self) -> Result<String> {
        ca_cert_hash(&self.cert_pem)
    }

    /// The form the engine keeps in its journal, under `name`.
    pub fn to_stored(&self, name: &str) -> StoredCert {
        StoredCert::new(name, &self.cert_pem, &self.key_pem)
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[private key elided]")
            .finish_non_exhaustive()
    }
}

fn generate_key(common_name: &str) -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| Error::GenerateKey {
        common_name: common_name.to_owned(),
        source,
    })
}

/// The parts of a loaded CA certificate that signing needs: its subject exactly as encoded
/// (issuer names are compared with it), its key identifier and its key usages.
fn issuer_params(name: &str, cert: &X509Certificate<'_>) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name, cert.subject())?;
    params.not_after = cert.validity().not_after.to_datetime();
    // Leaves' authority key identifier must equal the CA's subject key identifier; reuse it
    // verbatim rather than re-deriving it, since another tool may have derived it otherwise.
    params.key_identifier_method = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    params.key_usages = key_usages(cert);
    Ok(params)
}

/// The key usages `cert` carries, in rcgen's terms; empty when it has no key usage extension.
pub(crate) fn key_usages(cert: &X509Certificate<'_>) -> Vec<KeyUsagePurpose> {
    let Ok(Some(usage)) = cert.key_usage() else {
        return Vec::new();
    };
    let ku = usage.value;
    let flags = [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ];
    flags
        .into_iter()
        .filter_map(|(set, purpose)| set.then_some(purpose))
        .collect()
}

/// Rebuilds `name` for rcgen with each attribute's original string type, so the issuer field
/// of new certificates is byte-identical to the CA's subject.
pub(crate) fn distinguished_name(
    cert_name: &str,
    name: &X509Name<'_>,
) -> Result<DistinguishedName> {
    let unsupported = |detail: String| Error::ParseCertificate {
        name: cert_name.to_owned(),
        detail: format!("cannot sign with this CA: {detail}"),
    };
    if name.iter_rdn().any(|rdn| rdn.iter().count() > 1) {
        return Err(unsupported(
            "the subject has a multi-valued RDN; expected one attribute per RDN".to_owned(),
        ));
    }
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| {
                unsupported(format!(
                    "subject attribute OID {} is too large",
                    attr.attr_type()
                ))
            })?
            .collect();
        let mut ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            // rcgen keys a name by attribute type; a second value of a known type (the second
            // O of a kubeadm client certificate) goes in under the same OID spelled as a
            // custom type, which encodes identically. A third has no key left.
            let custom = DnType::CustomDnType(oid.clone());
            if custom == ty || dn.get(&custom).is_some() {
                return Err(unsupported(format!(
                    "subject repeats attribute {} more than twice",
                    attr.attr_type()
                )));
            }
            ty = custom;
        }
        let text = attr.as_str().map_err(|e| {
            unsupported(format!(
                "subject attribute {} is not a string ({e})",
                attr.attr_type()
            ))
        })?;
        let value = match attr.attr_value().tag() {
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text).map_err(|e| unsupported(e.to_string()))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                Ia5String::try_from(text).map_err(|e| unsupported(e.to_string()))?,
            ),
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            other => {
                return Err(unsupported(format!(
                    "subject attribute {} has string type {other}; expected PrintableString, IA5String or UTF8String",
                    attr.attr_type()
                )));
            }
        };
        dn.push(ty, value);
    }
    Ok(dn)
}
