//! Ed25519 key files: a PKCS#8 private key in base64 and a one-line public key.

use std::path::Path;

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use ring::{
    rand::SystemRandom,
    signature::{ED25519_PUBLIC_KEY_LEN, Ed25519KeyPair, KeyPair as _},
};
use sha2::{Digest as _, Sha256};

use crate::{
    Error, Result,
    fsutil::{Place, write_atomic},
};

/// First word of a public key file's one line.
pub const PUBLIC_KEY_PREFIX: &str = "kubegrid-bundle-ed25519";

/// The comment line that opens a private key file, so a reader knows what it holds.
const PRIVATE_KEY_HEADER: &str =
    "# kubegrid bundle signing key: Ed25519 PKCS#8, base64. Keep it secret.";

/// A bundle-signing public key, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl PublicKey {
    /// The raw 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; ED25519_PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// `SHA256:<base64 without padding>` of the key bytes, the way ssh prints fingerprints.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(self.bytes))
        )
    }

    /// The public key file's line, without the newline.
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX} {}", STANDARD.encode(self.bytes))
    }
}

/// Generates an Ed25519 key pair: the private key to `private_path` (mode 0600) and the public
/// key to `public_path`. Refuses to overwrite either file. Returns the public key.
pub fn generate_key(private_path: &Path, public_path: &Path) -> Result<PublicKey> {
    for path in [private_path, public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(Error::KeyExists {
                path: path.to_path_buf(),
            });
        }
    }
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| Error::GenerateKey {
            problem: e.to_string(),
        })?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| Error::GenerateKey {
        problem: e.to_string(),
    })?;
    let public = PublicKey {
        bytes: public_bytes(&pair),
    };
    let private_text = format!(
        "{PRIVATE_KEY_HEADER}\n{}\n",
        STANDARD.encode(pkcs8.as_ref())
    );
    write_key(private_path, &private_text, 0o600)?;
    write_key(public_path, &format!("{}\n", public.to_line()), 0o644)?;
    Ok(public)
}

fn write_key(path: &Path, text: &str, mode: u32) -> Result<()> {
    write_atomic(path, text.as_bytes(), mode, Place::NoClobber).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::KeyExists {
                path: path.to_path_buf(),
            }
        } else {
            Error::WriteKey {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn public_bytes(pair: &Ed25519KeyPair) -> [u8; ED25519_PUBLIC_KEY_LEN] {
    let mut bytes = [0u8; ED25519_PUBLIC_KEY_LEN];
    bytes.copy_from_slice(pair.public_key().as_ref());
    bytes
}

/// Reads a private key file written by [`generate_key`].
pub(crate) fn read_private_key(path: &Path) -> Result<Ed25519KeyPair> {
    let text = read(path)?;
    let malformed = |problem: String| Error::MalformedKey {
        path: path.to_path_buf(),
        problem,
    };
    let lines: Vec<&str> = content_lines(&text);
    let [line] = lines.as_slice() else {
        return Err(malformed(format!(
            "expected one base64 line after the `#` comment, found {} non-comment lines; hint: use a file written by `kubegrid bundle keygen --private`",
            lines.len()
        )));
    };
    if line.starts_with(PUBLIC_KEY_PREFIX) {
        return Err(malformed(format!(
            "it holds a public key (`{PUBLIC_KEY_PREFIX} ...`), signing needs the private key; hint: pass the file given to `keygen --private`"
        )));
    }
    let der = STANDARD.decode(line).map_err(|e| {
        // The line is a secret, so the error says where it breaks, not what it holds.
        malformed(format!("the key line is not base64: {e}"))
    })?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
        malformed(format!(
            "the {} decoded bytes are not an Ed25519 PKCS#8 v2 document ({e})",
            der.len()
        ))
    })
}

/// Reads a public key file written by [`generate_key`].
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = read(path)?;
    let malformed = |problem: String| Error::MalformedKey {
        path: path.to_path_buf(),
        problem,
    };
    let lines = content_lines(&text);
    let [line] = lines.as_slice() else {
        return Err(malformed(format!(
            "expected one line `{PUBLIC_KEY_PREFIX} <base64>`, found {} non-comment lines",
            lines.len()
        )));
    };
    let Some(encoded) = line
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .and_then(|rest| rest.strip_prefix(' '))
    else {
        let hint = if text.starts_with("# kubegrid bundle signing key") {
            "; it looks like the private key: pass the file given to `keygen --public`"
        } else {
            ""
        };
        return Err(malformed(format!(
            "expected a line `{PUBLIC_KEY_PREFIX} <base64>`, found `{}`{hint}",
            abbreviate(line)
        )));
    };
    let raw = STANDARD.decode(encoded.trim()).map_err(|e| {
        malformed(format!(
            "the key `{}` is not base64: {e}",
            abbreviate(encoded)
        ))
    })?;
    let bytes: [u8; ED25519_PUBLIC_KEY_LEN] = raw.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "the key decodes to {} bytes, an Ed25519 public key has {ED25519_PUBLIC_KEY_LEN}",
            raw.len()
        ))
    })?;
    Ok(PublicKey { bytes })
}

fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadKey {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| Error::MalformedKey {
        path: path.to_path_buf(),
        problem: format!(
            "it is not text (invalid UTF-8 at byte {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Non-empty lines that are not `#` comments, trimmed.
fn content_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Enough of a line to recognise it in an error, without dumping a whole secret.
pub(crate) fn abbreviate(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}
