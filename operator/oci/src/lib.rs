//! kubegrid's OCI image handling for offline bundles and the in-cluster registry.
//!
//! - [`Layout`]: an OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`), the
//!   bundle's `images/` directory. Blobs are written atomically and checked against their digest
//!   while written; [`Layout::verify`] re-hashes everything reachable from given images.
//! - [`pull`]: fetch an image pinned by digest from its registry or a mirror into a layout,
//!   keeping only the wanted linux platforms of a multi-platform index.
//! - [`push`]: copy an image from a layout into a registry, e.g. the registry kubegrid runs in an
//!   air-gapped cluster, under the repository naming containerd's mirrors expect.
//! - [`ImageRef`]: image references with Docker Hub's defaults.
//! - [`ping`]: whether a registry is up, e.g. the in-cluster one after it was started.
//! - [`build_image`]: kubegrid's own operator image from a static binary, reproducibly, with
//!   no container engine.
//!
//! Registry traffic goes through the `oci-client` crate (reqwest with rustls on ring).

mod digest;
mod error;
mod image;
mod layout;
pub mod media;
mod ping;
mod pull;
mod push;
mod reference;
mod registry;
mod verify;

pub use digest::Digest;
pub use error::{Error, RegistryError, Result};
pub use image::{
    BuiltImage, IMAGE_BINARY_PATH, IMAGE_CA_PATH, IMAGE_USER_ID, IMAGE_USER_NAME, ImageArch,
    ImageSpec, build_image, check_image_binary,
};
pub use layout::{Layout, LayoutImage};
pub use media::{Descriptor, Platform};
pub use ping::ping;
pub use pull::{PullFrom, PullOptions, PulledImage, pull};
pub use push::{PushOptions, PushedImage, push};
pub use reference::{ImageRef, RepositoryNaming, target_repository};
pub use registry::{RegistryEndpoint, Transport, Trust};
pub use verify::VerifyReport;
