//! Join secrets, fresh per operation.

/// Characters of a bootstrap token (kubeadm's `[a-z0-9]`).
const TOKEN_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters of `[a-z0-9]`, without modulo bias.
fn token_part(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in rand::random::<[u8; 32]>() {
            // 252 = 7 * 36: bytes above it would favour the first characters.
            if b < 252 && out.len() < n {
                out.push(TOKEN_CHARS[usize::from(b) % TOKEN_CHARS.len()] as char);
            }
        }
    }
    out
}

/// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn bootstrap_token() -> String {
    format!("{}.{}", token_part(6), token_part(16))
}

/// A certificate key for kubeadm's `--upload-certs`: 32 random bytes as hex.
pub fn certificate_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_keys_have_kubeadms_shape_and_differ() {
        let t = bootstrap_token();
        assert_eq!(t.len(), 23);
        assert_eq!(&t[6..7], ".");
        assert!(
            t.chars()
                .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(t, bootstrap_token());
        let k = certificate_key();
        assert_eq!(k.len(), 64);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(k, certificate_key());
    }
}
