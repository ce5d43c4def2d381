//! kubegrid's offline bundle tooling, on top of the bundle format that `kubegrid-plan` reads
//! (offline-bundle/README.md).
//!
//! - [`generate_key`] makes an Ed25519 key pair for signing bundles.
//! - [`sign`] writes a detached signature over the exact bytes of `manifest.yaml` into
//!   `manifest.yaml.sig`. The manifest pins every artifact by size and sha256, so signing it
//!   covers the whole bundle.
//! - [`verify`] checks that signature and then every artifact, naming the first bad one.
//! - [`inspect`] and [`diff`] describe one bundle or compare two from their manifests alone.
//! - [`Sources`] models offline-bundle/sources.yaml; [`build`] (or [`prepare`] and
//!   [`Build::finish`]) fetches, verifies and packs a bundle from it.
//! - [`add_agent`] checks a kubegrid-agent (ELF arch, glibc floor) and puts it in `agent/`.
//! - [`pack`], [`unpack`] and [`open_packed`] convert between a bundle directory and its
//!   tar + zstd file.

mod agent;
mod build;
mod error;
mod fsutil;
mod inspect;
mod keys;
mod pack;
mod signature;
mod sources;
mod sources_check;
mod sources_plan;

pub use agent::{
    AGENT_NAME, AgentElf, GLIBC_FLOOR, add_agent, check_agent, inspect_agent, inspect_elf,
};
pub use build::{
    Build, BuildOptions, BuildReport, build, bundle_path, mirror_candidates, parse_mirror, prepare,
};
pub use error::{Error, Result};
pub use inspect::{
    Artifact, ArtifactKey, ArtifactVersion, BundleDiff, Change, Inspection, diff, inspect,
};
pub use keys::{PUBLIC_KEY_PREFIX, PublicKey, generate_key, read_public_key};
pub use pack::{open_packed, pack, unpack};
pub use signature::{
    SIGNATURE_FILE, SIGNATURE_PREFIX, VerifyReport, check_is_bundle, open_verified, sign, verify,
    verify_images,
};
pub use sources::{
    ArtifactKind, ArtifactSource, ChartRender, Checksum, ChecksumFormat, Component,
    DEFAULT_SOURCES, DebPackage, DebRepo, DebRootfs, DebSource, Extract, Release, SOURCES_VERSION,
    SourceImage, Sources, expand,
};
pub use sources_plan::{
    BuildPlan, ExpectedChecksum, KUBERNETES_COMPONENT, PlannedDeb, PlannedDebs, PlannedFile,
    PlannedImage,
};
