//! The fan-out crate's one error type.

use std::{io, net::SocketAddr, path::PathBuf};

/// What can go wrong distributing a blob, named by the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a blob or partial file failed.
    #[error("read {path}: {source}")]
    ReadBlob {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// Writing, syncing or renaming a partial or stored blob failed.
    #[error("{op} {path}: {source}")]
    WriteBlob {
        /// What was being done: `write`, `sync`, `rename`, ...
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// A piece manifest is inconsistent with itself or with the blob it names.
    #[error("piece manifest for blob {blob}: {reason}")]
    BadManifest {
        /// The blob's sha256 as the manifest gives it.
        blob: String,
        /// What is wrong.
        reason: String,
    },
    /// A signed piece manifest's signature does not verify against the given key.
    #[error(
        "piece manifest for blob {blob}: the signature does not verify with the seed's key; hint: the manifest was altered or signed by another seed"
    )]
    VerifyManifest {
        /// The blob's sha256 as the manifest gives it.
        blob: String,
    },
    /// The peer's server could not listen.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying failure.
        source: io::Error,
    },
    /// No reachable source holds a piece any more: the seed is gone and no peer has it.
    #[error(
        "blob {blob}: piece {piece} (bytes {start}-{end}) is held by no reachable peer and the seed is gone ({sources}); hint: restart the distribution with the seed reachable"
    )]
    FetchPiece {
        /// The blob's sha256.
        blob: String,
        /// The piece's index.
        piece: u32,
        /// The piece's first byte.
        start: u64,
        /// The piece's last byte (inclusive).
        end: u64,
        /// What became of each source, for the message.
        sources: String,
    },
    /// A partial blob was to be stored with pieces still unverified.
    #[error(
        "blob {blob}: {missing} of {total} pieces are not verified, so it was not stored; hint: this is a bug in the caller, which must fetch every piece first"
    )]
    IncompleteBlob {
        /// The blob's sha256.
        blob: String,
        /// Pieces not verified.
        missing: u32,
        /// Pieces in the blob.
        total: u32,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
