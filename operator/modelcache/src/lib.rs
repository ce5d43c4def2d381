//! kubegrid's node model cache: the weights of the models LLMServices serve, downloaded
//! once from their source and verified file by file on every GPU node.
//!
//! - [`hub`]: Hugging Face's API: a revision resolved to its commit and file list (with each
//!   file's sha256, or git's blob id for small files), and resumable, verified downloads.

mod error;
pub mod hub;

pub use error::{Error, Result};
