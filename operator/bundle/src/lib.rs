//! kubegrid's offline bundle tooling, on top of the bundle format that `kubegrid-plan` reads
//! (offline-bundle/README.md).
//!
//! - [`generate_key`] makes an Ed25519 key pair for signing bundles.
//! - [`sign`] writes a detached signature over the exact bytes of `manifest.yaml` into
//!   `manifest.yaml.sig`. The manifest pins every artifact by size and sha256, so signing it
//!   covers the whole bundle.
//! - [`verify`] checks that signature and then every artifact, naming the first bad one.
//! - [`inspect`] and [`diff`] describe one bundle or compare two from their manifests alone.

mod error;
mod fsutil;
mod inspect;
mod keys;
mod signature;

pub use error::{Error, Result};
pub use inspect::{
    Artifact, ArtifactKey, ArtifactVersion, BundleDiff, Change, Inspection, diff, inspect,
};
pub use keys::{PUBLIC_KEY_PREFIX, PublicKey, generate_key, read_public_key};
pub use signature::{SIGNATURE_FILE, SIGNATURE_PREFIX, VerifyReport, open_verified, sign, verify};
