//! The bundle registry's push credential. Hosts pull from a read-only registry anyone on
//! the network may read; the images get in through a second endpoint on the next port that
//! takes pushes only with this credential (HTTP Basic against an htpasswd file). The engine
//! makes it once per cluster and keeps it in the journal beside the registry CA, so
//! re-applies change nothing on the registry host.

use kubegrid_plan::REGISTRY_PUSH_USER;

use crate::{error::Error, kubernetes::pki::Store};

/// The journal's name for the credential (its "certificate" is the htpasswd line, its "key"
/// the password).
const JOURNAL_NAME: &str = "registry-push";

/// bcrypt's work factor. The password is 256 random bits, so no guessing is slowed by a
/// higher one, while the registry checks the hash on every request of a push.
const COST: u32 = 5;

/// The user and password the engine pushes with, and the htpasswd line the push endpoint
/// checks them against.
#[derive(Clone, PartialEq, Eq)]
pub struct PushCredential {
    /// User name.
    pub user: String,
    /// Password (64 hex characters).
    pub password: String,
    /// `user:$2b$…`, the htpasswd file's one line.
    pub htpasswd: String,
}

impl std::fmt::Debug for PushCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCredential")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl PushCredential {
    /// The htpasswd file's content.
    pub fn htpasswd_file(&self) -> String {
        format!("{}\n", self.htpasswd)
    }
}

/// The cluster's push credential from the journal, or a new one (stored by an apply).
pub(crate) async fn credential(store: &Store<'_>) -> Result<PushCredential, Error> {
    if let Some(stored) = store.stored(JOURNAL_NAME).await? {
        let line = stored.cert_pem.trim().to_string();
        if line.starts_with(&format!("{REGISTRY_PUSH_USER}:$2b$")) {
            return Ok(PushCredential {
                user: REGISTRY_PUSH_USER.to_string(),
                password: stored.key_pem,
                htpasswd: line,
            });
        }
    }
    let password = hex::encode(rand::random::<[u8; 32]>());
    let hash = bcrypt(password.as_bytes(), &rand::random::<[u8; 16]>(), COST)?;
    let credential = PushCredential {
        user: REGISTRY_PUSH_USER.to_string(),
        htpasswd: format!("{REGISTRY_PUSH_USER}:{hash}"),
        password,
    };
    store
        .put(JOURNAL_NAME, &credential.htpasswd, &credential.password)
        .await?;
    Ok(credential)
}

/// `$2b$<cost>$<salt><hash>`, as OpenBSD's bcrypt and Go's golang.org/x/crypto/bcrypt (which
/// distribution uses) write it. Passwords past 72 bytes are cut, as bcrypt does.
pub fn bcrypt(password: &[u8], salt: &[u8; 16], cost: u32) -> Result<String, Error> {
    bcrypt::hash_with_salt(password, cost, *salt)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoB))
        .map_err(|e| Error::RegistryCredential {
            reason: format!("hashing the push password: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 16 salt bytes that bcrypt's base64 `text` (22 characters) stands for.
    fn salt(text: &str) -> [u8; 16] {
        let hash = format!("$2b$04${text}{}", "a".repeat(31));
        hash.parse::<bcrypt::HashParts>()
            .expect("a bcrypt hash")
            .get_salt_raw()
    }

    /// Vectors from OpenBSD's bcrypt tests (also John the Ripper's), checked against
    /// libxcrypt's crypt(3).
    #[test]
    fn bcrypt_matches_known_hashes() {
        assert_eq!(
            bcrypt(b"U*U", &salt("CCCCCCCCCCCCCCCCCCCCC."), 5).unwrap(),
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
        );
        assert_eq!(
            bcrypt(b"U*U*", &salt("CCCCCCCCCCCCCCCCCCCCC."), 5).unwrap(),
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"
        );
        assert_eq!(
            bcrypt(b"", &salt("CCCCCCCCCCCCCCCCCCCCC."), 5).unwrap(),
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"
        );
    }

    #[test]
    fn a_credential_never_shows_its_password() {
        let c = PushCredential {
            user: "u".into(),
            password: "secret-password".into(),
            htpasswd: "u:$2b$05$x".into(),
        };
        assert!(!format!("{c:?}").contains("secret-password"));
        assert_eq!(c.htpasswd_file(), "u:$2b$05$x\n");
    }
}
