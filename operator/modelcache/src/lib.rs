//! kubegrid's node model cache: the weights of the models LLMServices serve, downloaded
//! once from their source and verified file by file on every GPU node.
//!
//! - [`hub`]: Hugging Face's API: a revision resolved to its commit and file list (with each
//!   file's sha256, or git's blob id for small files), and resumable, verified downloads;
//! - [`layout`]: a model's directory on a node, its `current` link and `ready` marker, the
//!   contract with the serving pods that mount it.
//! - [`daemon`]: the per-node daemon, with one Lease-fenced coordinator per model and the
//!   copy to the other nodes through `kubegrid-fanout`;
//! - [`evict`]: keeping the node's models within the cache's capacity, least recently used
//!   first, never a model in use;
//! - [`services`]: the daemon following LLMServices, caching their models and writing each
//!   node's progress into their status.

pub mod daemon;
mod error;
pub mod evict;
pub mod hub;
pub mod layout;
pub mod services;

pub use error::{Error, Result};
