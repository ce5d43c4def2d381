//! Private key files checked before any connection: a key that cannot work is bad input,
//! named with what is wrong with it, not a host that "could not be reached".

use std::{
    collections::BTreeSet,
    io::Read as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use super::{SshTarget, load_key};
use crate::error::Error;

/// Key files are a few KiB; anything past this is not a key, and is not read whole.
const MAX_KEY_BYTES: u64 = 1 << 20;

/// First words of the public key formats people mistake for private keys.
const PUBLIC_KEY_STARTS: &[&str] = &[
    "ssh-",
    "ecdsa-sha2-",
    "sk-ssh-",
    "sk-ecdsa-",
    "---- BEGIN SSH2 PUBLIC KEY",
    "-----BEGIN PUBLIC KEY-----",
    "-----BEGIN RSA PUBLIC KEY-----",
];

/// Checks every private key file the targets (and their bastions) name, each once: it must
/// be a regular file, not readable by group or others (OpenSSH refuses those too), not empty,
/// not a public key, and loadable: an encrypted key needs its passphrase in
/// [`super::PASSPHRASE_ENV`].
pub fn check_key_files<'a>(targets: impl IntoIterator<Item = &'a SshTarget>) -> Result<(), Error> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    // In spec order, each host's bastion first (it is connected to first).
    for target in targets {
        let mut chain = vec![target];
        while let Some(b) = chain.last().and_then(|t| t.bastion.as_deref()) {
            chain.push(b);
        }
        for t in chain.into_iter().rev() {
            if let Some(path) = &t.key_file
                && seen.insert(path.clone())
            {
                check_key_file(&t.host, path)?;
            }
        }
    }
    Ok(())
}

/// Whether `text` is a private key (OpenSSH or PEM) that needs a passphrase to open. The
/// operator refuses such keys from Secrets: their passphrase could only come from its own
/// environment, which every tenant would then share.
pub fn key_is_encrypted(text: &str) -> bool {
    matches!(
        russh::keys::decode_secret_key(text, None),
        Err(russh::keys::Error::KeyIsEncrypted)
    )
}

/// [`check_key_files`] for one file, used by `host`.
pub fn check_key_file(host: &str, path: &Path) -> Result<(), Error> {
    let bad = |problem: String, hint: &str| Error::KeyFile {
        host: host.to_string(),
        path: path.to_path_buf(),
        problem,
        hint: hint.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        let problem = if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_string()
        } else {
            format!("cannot be read: {e}")
        };
        bad(
            problem,
            "set ssh.privateKeyFile to the private key that the host's authorized_keys accepts",
        )
    })?;
    if !meta.is_file() {
        return Err(bad(
            "is not a regular file".into(),
            "set ssh.privateKeyFile to the private key file itself",
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(
            format!("is readable by others (mode {mode:04o}); OpenSSH refuses such private keys"),
            &format!("chmod 600 {}", path.display()),
        ));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(bad(
            format!("is {} bytes, too large for a key", meta.len()),
            "set ssh.privateKeyFile to the private key file",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_BYTES).read_to_end(&mut bytes))
        .map_err(|e| {
            bad(
                format!("cannot be read: {e}"),
                "check the file's owner and mode",
            )
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start();
    if text.trim().is_empty() {
        return Err(bad(
            "is empty".into(),
            "set ssh.privateKeyFile to the private key file (ssh-keygen writes it without .pub)",
        ));
    }
    if PUBLIC_KEY_STARTS.iter().any(|p| text.starts_with(p)) {
        return Err(bad(
            "is a public key, not a private key".into(),
            "name the private half (the same path without .pub); the public half goes into the host's authorized_keys",
        ));
    }
    match load_key(host, path) {
        Ok(_) => Ok(()),
        Err(e @ Error::KeyPassphrase { .. }) => Err(e),
        Err(Error::LoadKey { .. })
            if std::env::var_os(super::PASSPHRASE_ENV).is_some()
                && matches!(
                    russh::keys::load_secret_key(path, None),
                    Err(russh::keys::Error::KeyIsEncrypted)
                ) =>
        {
            Err(bad(
                format!(
                    "is encrypted, and the passphrase in ${} does not open it",
                    super::PASSPHRASE_ENV
                ),
                &format!(
                    "export {} with this key's passphrase",
                    super::PASSPHRASE_ENV
                ),
            ))
        }
        Err(Error::LoadKey { reason, .. }) => Err(bad(
            format!("is not a private key kubegrid can read ({reason})"),
            "use an OpenSSH or PEM private key (ed25519, RSA or ECDSA), as ssh-keygen writes",
        )),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests;
