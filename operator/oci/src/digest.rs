//! Content digests (`sha256:<64 hex>`), the names of everything in a layout and a registry.

use std::{fmt, str::FromStr};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A validated `sha256:<64 lowercase hex>` content digest.
///
/// Only sha256 is accepted: it is what every registry kubegrid talks to produces, and a single
/// algorithm keeps the layout's `blobs/sha256/` the only blob directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 hex>`; uppercase hex is refused because digests are compared as text.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |problem: &str| Error::ParseDigest {
            digest: text.to_owned(),
            problem: problem.to_owned(),
        };
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("expected the `sha256:` prefix"))?;
        if hex.len() != 64 {
            return Err(bad(&format!("expected 64 hex digits, saw {}", hex.len())));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("expected lowercase hex digits only"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes an incremental hash started by the caller.
    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// The 64 hex digits without the algorithm, the blob's file name in a layout.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_refuses_other_algorithms_lengths_and_case() {
        let good = Digest::of(b"x");
        assert_eq!(Digest::parse(good.as_str()).unwrap(), good);
        for bad in [
            "sha512:abcd",
            "sha256:abcd",
            &good.as_str().to_uppercase().replace("SHA256", "sha256"),
            good.hex(),
        ] {
            let err = Digest::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
