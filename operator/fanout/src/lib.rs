//! kubegrid's fan-out: peer-to-peer, piece-verified distribution of content-addressed blobs
//! (bundle files, model weights) over HTTP with Range.
//!
//! A blob is named by its sha256 and cut into fixed-size pieces, each with its own sha256 in
//! a [`PieceManifest`] the seed signs. Every peer serves the pieces it has verified while it
//! fetches the rest, so the blob spreads as a pipeline instead of a star, and the seed sends
//! each piece about once. The crate knows nothing of Kubernetes or SSH: callers inject the
//! peer list and the per-operation token, so peers may be lab hosts, bare-metal hosts or pods.

pub mod bitfield;
mod error;
pub mod manifest;
pub mod schedule;
pub mod sim;

pub use bitfield::Bitfield;
pub use error::{Error, Result};
pub use manifest::{ManifestSigner, PieceManifest, SignedManifest, default_piece_size};
mod client;
mod fetch;
mod flush;
mod limit;
mod node;
mod options;
mod server;
mod source;
pub mod store;
#[cfg(feature = "test-liar")]
pub mod testing;
mod wire;

pub use fetch::{FetchEvent, FetchReport};
pub use limit::RateLimit;
pub use node::{GrowingSeed, Node, NodeConfig};
pub use options::{FetchOptions, PeerAddr, Swarm};
pub use schedule::Bounds;
pub use server::ServeStats;
