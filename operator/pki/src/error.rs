//! The one error type of the PKI crate.

use std::time::Duration;

/// `Result` with the PKI crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the PKI crate. Messages are lowercase fragments that name the certificate or key
/// concerned; they never quote private key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A new private key could not be generated.
    #[error("failed to generate an ECDSA P-256 key for {common_name}")]
    GenerateKey {
        /// Common name of the certificate the key was for.
        common_name: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },

    /// A certificate could not be built or signed.
    #[error("failed to sign certificate {common_name} with CA {issuer}")]
    SignCertificate {
        /// Common name of the certificate being signed.
        common_name: String,
        /// Common name of the signing CA (the certificate itself when self-signed).
        issuer: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },

    /// A subject alternative name cannot be put in a certificate.
    #[error("invalid subject alternative name {value:?} for certificate {common_name}: {detail}")]
    InvalidSan {
        /// Common name of the certificate.
        common_name: String,
        /// The offending name.
        value: String,
        /// Why it was refused.
        detail: String,
    },

    /// The subject (common name, organizations) cannot be encoded.
    #[error("invalid subject for certificate {common_name}: {detail}")]
    InvalidSubject {
        /// Common name of the certificate.
        common_name: String,
        /// What was wrong and what is accepted.
        detail: String,
    },

    /// The validity period does not fit in a certificate's dates.
    #[error(
        "validity of {validity:?} for certificate {common_name} is out of range; hint: use a period of days or years, not centuries"
    )]
    ValidityOutOfRange {
        /// Common name of the certificate.
        common_name: String,
        /// The requested validity.
        validity: Duration,
    },

    /// A PEM certificate could not be parsed.
    #[error("failed to parse {name} as a PEM X.509 certificate: {detail}")]
    ParseCertificate {
        /// What the certificate is ("etcd-ca", "certificate").
        name: String,
        /// What the parser saw.
        detail: String,
    },

    /// A PEM private key could not be loaded.
    #[error(
        "failed to load the private key of {name}; expected an unencrypted PKCS#8 PEM block (\"PRIVATE KEY\") holding an ECDSA, Ed25519 or RSA key"
    )]
    LoadKey {
        /// Which certificate the key belongs to.
        name: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },

    /// A CA certificate and the key given with it do not belong together.
    #[error(
        "the private key given for CA {name} does not match its certificate's public key; hint: the stored key and certificate come from different CAs"
    )]
    CaKeyMismatch {
        /// The CA.
        name: String,
    },

    /// A certificate given as a CA is not one.
    #[error(
        "certificate {name} (subject CN {common_name:?}) is not a CA: its basic constraints lack CA:TRUE"
    )]
    NotACa {
        /// Which certificate was loaded.
        name: String,
        /// The certificate's subject common name.
        common_name: String,
    },

    /// A kubeconfig could not be rendered.
    #[error("failed to render the kubeconfig for user {user} of cluster {cluster}")]
    RenderKubeconfig {
        /// The kubeconfig's cluster name.
        cluster: String,
        /// The kubeconfig's user.
        user: String,
        /// The cause.
        #[source]
        source: serde_yaml::Error,
    },

    /// A certificate found on a host cannot be signed again as it is.
    #[error("cannot re-sign certificate {subject:?}: {detail}")]
    ResignCertificate {
        /// The certificate's subject.
        subject: String,
        /// Why, and what is expected.
        detail: String,
    },

    /// A certificate's signature could not be checked at all (as opposed to not verifying).
    #[error("cannot check the signature of certificate {subject:?}: {detail}")]
    VerifySignature {
        /// The certificate's subject.
        subject: String,
        /// What the verifier said.
        detail: String,
    },
}
