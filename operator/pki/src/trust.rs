//! Which CA signed a certificate, certificate fingerprints, and the trust bundles (one or two
//! CA certificates in one file) that CA rotation rolls out.

use sha2::{Digest, Sha256};
use x509_parser::{error::X509Error, oid_registry::Oid};

use crate::{
    error::{Error, Result},
    inspect::with_certificate,
};

const BEGIN_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
const END_CERTIFICATE: &str = "-----END CERTIFICATE-----";

/// Whether the first certificate in `cert_pem` was signed by the CA whose certificate is the
/// first in `ca_cert_pem`: its issuer name equals the CA's subject name (byte for byte) and its
/// signature verifies with the CA's public key. Verifies ECDSA (P-256, P-384), Ed25519 and RSA
/// (PKCS#1 v1.5 and PSS, 2048 bits and up) signatures, so kubeadm's RSA CAs too. Another CA
/// with the same subject name, or a CA whose key type cannot have made the signature, gives
/// false.
pub fn issued_by(cert_pem: &str, ca_cert_pem: &str) -> Result<bool> {
    with_certificate("CA certificate", ca_cert_pem, |ca| {
        with_certificate("certificate", cert_pem, |cert| {
            if cert.issuer().as_raw() != ca.subject().as_raw() {
                return Ok(false);
            }
            match cert.verify_signature(Some(ca.public_key())) {
                Ok(()) => Ok(true),
                Err(X509Error::SignatureVerificationError) => Ok(false),
                // ECDSA signatures are checked on the CA key's curve: an RSA or Ed25519 CA
                // key has none, and cannot have made the signature either.
                Err(X509Error::SignatureUnsupportedAlgorithm)
                    if is_known_signature(&cert.signature_algorithm.algorithm) =>
                {
                    Ok(false)
                }
                Err(e) => Err(Error::VerifySignature {
                    subject: cert.subject().to_string(),
                    detail: format!(
                        "{e} (signature algorithm {})",
                        cert.signature_algorithm.algorithm
                    ),
                }),
            }
        })
    })
}

fn is_known_signature(oid: &Oid<'_>) -> bool {
    // RSASSA-PSS is left out: PSS parameters naming an unsupported hash are a real error,
    // not a key mismatch.
    use x509_parser::oid_registry::{
        OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
    };
    [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ED25519,
    ]
    .contains(oid)
}

/// `sha256:<hex>` of the DER of the first certificate in `cert_pem`: what tells two
/// certificates apart (the same subject and key re-signed still get a new fingerprint).
pub fn fingerprint(cert_pem: &str) -> Result<String> {
    with_certificate("certificate", cert_pem, |cert| {
        Ok(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(cert.as_raw()))
        ))
    })
}

/// A CA file holding `first` and, when given, `second`, each ending with one newline. The
/// signing CA goes first: Go programs and kubeadm take the first certificate of a CA file as
/// the one that signs with its key.
pub fn trust_bundle(first: &str, second: Option<&str>) -> String {
    let mut out = String::new();
    for pem in std::iter::once(first).chain(second) {
        out.push_str(pem.trim_end());
        out.push('\n');
    }
    out
}

/// The CERTIFICATE blocks of `text` (a bundle, or any PEM file), in order, each exactly as
/// written from its BEGIN line to its END line, plus one newline. Other blocks (private keys)
/// and text between blocks are left out.
pub fn split_pem(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN_CERTIFICATE) {
        let block = &rest[start..];
        let Some(end) = block.find(END_CERTIFICATE) else {
            break;
        };
        let end = end + END_CERTIFICATE.len();
        out.push(format!("{}\n", &block[..end]));
        rest = &block[end..];
    }
    out
}
