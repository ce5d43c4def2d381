//! The one error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong generating keys, signing, verifying or inspecting a bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `generate_key` found a file where it would write a key.
    #[error(
        "key file {} already exists; kubegrid never overwrites a key; hint: pick another path or remove the old key deliberately",
        path.display()
    )]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The random generator or key parsing inside ring failed while making a key pair.
    #[error("failed to generate an Ed25519 key pair: {problem}")]
    GenerateKey {
        /// What ring reported.
        problem: String,
    },

    /// A key file could not be written.
    #[error("failed to write key file {}", path.display())]
    WriteKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A key file could not be read.
    #[error("failed to read key file {}", path.display())]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A key file was read but is not a key of the expected form.
    #[error("key file {} is malformed: {problem}", path.display())]
    MalformedKey {
        /// The key file.
        path: PathBuf,
        /// What was seen, what was expected, and a hint.
        problem: String,
    },

    /// The bundle's manifest.yaml could not be read.
    #[error("failed to read bundle manifest {}", path.display())]
    ReadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The bundle's manifest.yaml does not parse, or has a version this crate does not read.
    #[error("bundle manifest {} is invalid: {problem}", path.display())]
    ParseManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// The bundle has no manifest.yaml.sig.
    #[error(
        "bundle {} is not signed: {} does not exist; hint: sign it with `kubegrid bundle sign {} --key FILE`",
        dir.display(), path.display(), dir.display()
    )]
    NoSignature {
        /// The bundle directory.
        dir: PathBuf,
        /// The signature file that is missing.
        path: PathBuf,
    },

    /// The signature file could not be read.
    #[error("failed to read signature file {}", path.display())]
    ReadSignature {
        /// The signature file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The signature file is not one `ed25519 <base64>` line.
    #[error("signature file {} is malformed: {problem}", path.display())]
    MalformedSignature {
        /// The signature file.
        path: PathBuf,
        /// What was seen and what was expected.
        problem: String,
    },

    /// The signature is well-formed but does not verify over the manifest with this key.
    #[error(
        "signature {} does not match manifest {} (sha256 {manifest_sha256}) under public key {key_fingerprint} ({}); either the manifest was changed after signing or the bundle was signed with another key; hint: re-copy the bundle, or check which key signed it",
        signature.display(), manifest.display(), key_path.display()
    )]
    SignatureMismatch {
        /// The signature file.
        signature: PathBuf,
        /// The manifest it should cover.
        manifest: PathBuf,
        /// sha256 of the manifest bytes that were checked.
        manifest_sha256: String,
        /// The public key file.
        key_path: PathBuf,
        /// `SHA256:<base64>` of the public key.
        key_fingerprint: String,
    },

    /// manifest.yaml changed between reading it for the signature and verifying artifacts.
    #[error(
        "bundle manifest {} changed while it was being checked; hint: do not modify the bundle during `bundle sign` or `bundle verify`",
        path.display()
    )]
    ManifestChanged {
        /// The manifest file.
        path: PathBuf,
    },

    /// An artifact (or the manifest itself) failed the check that `Bundle::open` makes; the
    /// source names the artifact, its expected and its actual sha256 or size.
    #[error("bundle {} failed verification", dir.display())]
    Artifacts {
        /// The bundle directory.
        dir: PathBuf,
        /// The check that failed.
        #[source]
        source: Box<kubegrid_plan::Error>,
    },

    /// The signature file could not be written.
    #[error("failed to write signature file {}", path.display())]
    WriteSignature {
        /// The signature file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the error is about the input (a key, a bundle, a signature) rather than a
    /// failure of this machine; the CLI exits 2 for those.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            Error::GenerateKey { .. } | Error::WriteKey { .. } | Error::WriteSignature { .. }
        )
    }
}
