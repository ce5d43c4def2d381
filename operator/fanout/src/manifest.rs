//! Piece manifests: a blob's whole sha256 plus the sha256 of each fixed-size piece.
//!
//! A peer accepts a piece only when its bytes hash to the manifest's entry, and serves a piece
//! only after that check, so one bad source cannot spread bad bytes. The manifest itself must
//! come from someone the peer trusts: the seed signs it ([`ManifestSigner`]) and peers verify
//! it with the seed's public key, which reaches them on a channel they already trust (the
//! engine's SSH session for the agent; a Secret for an in-cluster cache).

use std::{fs::File, io::Read, path::Path};

use ring::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The smallest piece size accepted.
pub const MIN_PIECE_SIZE: u64 = 64 << 10;
/// The largest piece size accepted: a piece is held in memory while it is verified.
pub const MAX_PIECE_SIZE: u64 = 64 << 20;

/// The piece size for a blob of `size` bytes: about 128 pieces, a power of two between
/// 4 MiB and 16 MiB. Small pieces spread sooner (a peer serves a piece as soon as it holds
/// it, and each peer's download is idle until its first pieces exist somewhere); large ones
/// keep the per-piece overhead (a request, a hash, a have update) small. In the lab, 4 MiB
/// rather than 8 MiB pieces for 512 MiB took the 3- and 6-host times from 1.23× and 1.39×
/// of M/B to 1.14× and 1.24× (docs/distribution.md).
pub fn default_piece_size(size: u64) -> u64 {
    (size / 128).next_power_of_two().clamp(4 << 20, 16 << 20)
}

/// A blob's piece manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PieceManifest {
    /// The whole blob's sha256, lowercase hex: its name in the content store.
    pub sha256: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// Every piece but the last is this long.
    pub piece_size: u64,
    /// Each piece's sha256, lowercase hex, in order.
    pub pieces: Vec<String>,
}

impl PieceManifest {
    /// Reads the file at `path` once and hashes it whole and by piece.
    pub fn build(path: &Path, piece_size: u64) -> Result<Self> {
        let read_err = |source| Error::ReadBlob {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        let mut whole = Sha256::new();
        let mut pieces = Vec::new();
        let mut buf = vec![0u8; piece_size as usize];
        let mut size = 0u64;
        loop {
            let n = read_full(&mut file, &mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            pieces.push(hex::encode(Sha256::digest(&buf[..n])));
            size += n as u64;
            if n < buf.len() {
                break;
            }
        }
        let manifest = Self {
            sha256: hex::encode(whole.finalize()),
            size,
            piece_size,
            pieces,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// A manifest of a blob whose piece hashes are not known yet (a *growing* manifest):
    /// the seed publishes each piece's hash once it holds the piece, so peers copy the blob
    /// while the seed still receives it. `sha256` is the name the blob will have.
    pub fn growing(sha256: &str, size: u64, piece_size: u64) -> Self {
        Self {
            sha256: sha256.to_string(),
            size,
            piece_size,
            pieces: Vec::new(),
        }
    }

    /// Whether every piece's hash is known.
    pub fn is_complete(&self) -> bool {
        self.pieces.len() as u64 == self.size.div_ceil(self.piece_size.max(1))
    }

    /// The pieces whose hashes are known: `0..known_pieces()`.
    pub fn known_pieces(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// Whether this manifest is `earlier` with more piece hashes known: the same blob, size
    /// and piece size, and `earlier`'s hashes as its first ones.
    pub fn extends(&self, earlier: &PieceManifest) -> bool {
        self.sha256 == earlier.sha256
            && self.size == earlier.size
            && self.piece_size == earlier.piece_size
            && self.pieces.starts_with(&earlier.pieces)
    }

    /// Checks a growing manifest: as [`PieceManifest::validate`], except that it may know
    /// fewer piece hashes than the size needs.
    pub fn validate_growing(&self) -> Result<()> {
        self.check(false)
    }

    /// Checks the manifest is consistent: hex names, a piece size in range, and exactly as
    /// many pieces as the size needs.
    pub fn validate(&self) -> Result<()> {
        self.check(true)
    }

    fn check(&self, complete: bool) -> Result<()> {
        let bad = |reason: String| Error::BadManifest {
            blob: self.sha256.clone(),
            reason,
        };
        if !is_sha256(&self.sha256) {
            return Err(bad("the blob's name is not a lowercase hex sha256".into()));
        }
        if !(MIN_PIECE_SIZE..=MAX_PIECE_SIZE).contains(&self.piece_size) {
            return Err(bad(format!(
                "piece size {} is outside {MIN_PIECE_SIZE}..={MAX_PIECE_SIZE}",
                self.piece_size
            )));
        }
        let want = self.size.div_ceil(self.piece_size);
        let known = self.pieces.len() as u64;
        if (complete && known != want) || known > want {
            return Err(bad(format!(
                "{} piece hashes for {} bytes in pieces of {}; expected {want}",
                self.pieces.len(),
                self.size,
                self.piece_size
            )));
        }
        if u32::try_from(want).is_err() {
            return Err(bad(format!("{want} pieces is too many")));
        }
        if let Some(i) = self.pieces.iter().position(|p| !is_sha256(p)) {
            return Err(bad(format!(
                "piece {i}'s hash is not a lowercase hex sha256"
            )));
        }
        Ok(())
    }

    /// The number of pieces the blob's size needs (in a growing manifest, more than the
    /// hashes known so far).
    pub fn piece_count(&self) -> u32 {
        self.size.div_ceil(self.piece_size.max(1)) as u32
    }

    /// Piece `i`'s first byte and length.
    pub fn piece_span(&self, i: u32) -> (u64, u64) {
        let start = u64::from(i) * self.piece_size;
        (start, self.piece_size.min(self.size.saturating_sub(start)))
    }

    /// Whether `bytes` are piece `i`.
    pub fn check_piece(&self, i: u32, bytes: &[u8]) -> bool {
        self.pieces.get(i as usize).is_some_and(|want| {
            bytes.len() as u64 == self.piece_span(i).1
                && hex::encode(Sha256::digest(bytes)) == *want
        })
    }

    /// The bytes a signature covers: the manifest's JSON, whose field order is fixed.
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether `s` is a lowercase hex sha256.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A piece manifest with the seed's Ed25519 signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: PieceManifest,
    /// The signature over its JSON, hex.
    pub signature: String,
}

impl SignedManifest {
    /// The manifest, once its signature verifies with `public_key` (raw 32-byte Ed25519)
    /// and it is consistent.
    pub fn verify(&self, public_key: &[u8]) -> Result<&PieceManifest> {
        let sig = hex::decode(&self.signature).unwrap_or_default();
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&self.manifest.signed_bytes(), &sig)
            .map_err(|_| Error::VerifyManifest {
                blob: self.manifest.sha256.clone(),
            })?;
        self.manifest.validate()?;
        Ok(&self.manifest)
    }
}

/// The seed's signing key: fresh per distribution, never stored.
pub struct ManifestSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestSigner")
            .field("public_key", &hex::encode(self.public_key()))
            .finish()
    }
}

impl ManifestSigner {
    /// A new random key.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        // Generation only fails when the OS random source does, which nothing here can
        // recover from.
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the OS random source works");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key ring just generated");
        Self { key }
    }

    /// The raw 32-byte public key peers verify with.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// Signs `manifest`.
    pub fn sign(&self, manifest: PieceManifest) -> SignedManifest {
        let signature = hex::encode(self.key.sign(&manifest.signed_bytes()));
        SignedManifest {
            manifest,
            signature,
        }
    }
}
