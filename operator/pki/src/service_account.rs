//! The ServiceAccount token signing key: kube-apiserver signs tokens with `sa.key`
//! (`--service-account-signing-key-file`) and accepts those any key in `sa.pub` verifies
//! (`--service-account-key-file`), so a rotation can hold two public keys in `sa.pub`.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::error::{Error, Result};

/// A new ServiceAccount signing key: `(private key as PKCS#8 PEM, public key as SPKI PEM)`.
/// ECDSA P-256 (ES256), which kube-apiserver accepts for both flags.
pub fn generate_service_account_key() -> Result<(String, String)> {
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| Error::GenerateKey {
            common_name: "the ServiceAccount signing key".to_owned(),
            source,
        })?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
