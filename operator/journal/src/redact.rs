//! Redaction of secrets from text that came from hosts, before it is stored.

use std::sync::LazyLock;

use regex::Regex;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are ignored: replacing every "abc" in every log line would
/// destroy the output and protect nothing a guess would not find.
pub const MIN_SECRET_LEN: usize = 4;

/// Builds a pattern that is a compile-time constant; the crate's tests compile each one.
fn pattern(re: &str) -> Regex {
    Regex::new(re)
        .unwrap_or_else(|err| panic!("built-in redaction pattern {re:?} is invalid: {err}"))
}

/// A PEM private key block. An unterminated block (the output was cut) runs to the end.
static PEM_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    )
});

/// The end of a PEM private key block whose beginning was cut off by an output tail: everything
/// before it is key material. Applied after [`PEM_BLOCK`], so any END left is such an orphan.
static PEM_ORPHAN_END: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?s)\A.*?-----END [A-Z0-9 ]*PRIVATE KEY-----"));

/// An `Authorization:` header (or `authorization=`): keeps the scheme, drops the credentials.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r#"(?i)(\bauthorization["']?[ \t]*[:=][ \t]*["']?(?:[a-z]+[ \t]+)?)[^\s"',;]+"#)
});

/// A bearer token anywhere, as in `curl -H "Bearer …"` echoed without the header name.
static BEARER: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)(\bbearer[ \t]+)[a-z0-9._~+/=-]+"));

/// `key=value` or `key: value` where the key names a secret: `password`, `DB_PASSWD`,
/// `--token=…`, `client_secret: …`, `"passphrase": "…"`. The key and separator stay, so the
/// output still says what was there. An unquoted value runs to the next blank or quote:
/// secrets may hold `&`, `,` or `;`, and taking a neighbour along costs less than leaking a
/// secret's tail.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r#"(?i)([a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key)[a-z0-9_.-]*["']?[ \t]*[:=][ \t]*)("[^"\r\n]*"|'[^'\r\n]*'|[^\s"']+)"#,
    )
});

/// A kubeadm bootstrap token (`abcdef.0123456789abcdef`), also when it stands alone as the
/// value of `kubeadm join --token`.
static JOIN_TOKEN: LazyLock<Regex> = LazyLock::new(|| pattern(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"));

/// Removes secrets from text: given secret values (passwords and passphrases the engine holds)
/// plus built-in patterns for private keys, credentials in `key=value` form, authorization
/// headers and kubeadm join tokens. Each match becomes [`REDACTED`].
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the built-in patterns plus `secrets`; values shorter than
    /// [`MIN_SECRET_LEN`] are ignored.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut redactor = Self::default();
        for secret in secrets {
            redactor.add_secret(secret);
        }
        redactor
    }

    /// Adds one secret value; ignored when shorter than [`MIN_SECRET_LEN`] or already known.
    pub fn add_secret(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.chars().count() < MIN_SECRET_LEN || self.secrets.contains(&secret) {
            return;
        }
        self.secrets.push(secret);
        self.secrets
            .sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    }

    /// How many secret values this redactor knows (not counting the built-in patterns).
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        // Literal secrets go first: a pattern could otherwise rewrite part of one and leave
        // the rest where the literal no longer matches.
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        let rules: [(&Regex, &str); 6] = [
            (&PEM_BLOCK, REDACTED),
            (&PEM_ORPHAN_END, REDACTED),
            (&AUTHORIZATION, "${1}[REDACTED]"),
            (&BEARER, "${1}[REDACTED]"),
            (&KEY_VALUE, "${1}[REDACTED]"),
            (&JOIN_TOKEN, REDACTED),
        ];
        for (re, replacement) in rules {
            if re.is_match(&text) {
                text = re.replace_all(&text, replacement).into_owned();
            }
        }
        text
    }
}

/// The last `max` bytes of `text`, starting on a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::default().redact(text)
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        for re in [
            &PEM_BLOCK,
            &PEM_ORPHAN_END,
            &AUTHORIZATION,
            &BEARER,
            &KEY_VALUE,
            &JOIN_TOKEN,
        ] {
            LazyLock::force(re);
        }
    }

    #[test]
    fn pem_blocks_whole_cut_at_the_end_and_cut_at_the_start() {
        let whole = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\nafter";
        assert_eq!(redact(whole), "before\n[REDACTED]\nafter");
        let open = "x -----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA";
        assert_eq!(redact(open), "x [REDACTED]");
        let orphan = "QUJDRA==\nRUZHSA==\n-----END PRIVATE KEY-----\nrest";
        assert_eq!(redact(orphan), "[REDACTED]\nrest");
        let public = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----";
        assert_eq!(redact(public), public);
    }

    #[test]
    fn key_value_pairs_keep_the_key() {
        let cases = [
            ("password=hunter22", "password=[REDACTED]"),
            ("DB_PASSWORD = 'a b c'", "DB_PASSWORD = [REDACTED]"),
            ("passwd: s3cret!", "passwd: [REDACTED]"),
            ("--token=abc123 next", "--token=[REDACTED] next"),
            (
                "client_secret: xy&z,w;v next",
                "client_secret: [REDACTED] next",
            ),
            (r#"{"passphrase": "p w"}"#, r#"{"passphrase": [REDACTED]}"#),
            ("url?api_key=k1&x=2 ok", "url?api_key=[REDACTED] ok"),
            ("PASSWORD=Up", "PASSWORD=[REDACTED]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input {input:?}");
        }
    }

    #[test]
    fn authorization_and_bearer() {
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOi.x.y"),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            redact("authorization: Basic dXNlcjpwdw=="),
            "authorization: Basic [REDACTED]"
        );
        assert_eq!(redact("-H 'bearer abc.def'"), "-H 'bearer [REDACTED]'");
    }

    #[test]
    fn kubeadm_join_tokens() {
        assert_eq!(
            redact(
                "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00ff"
            ),
            "kubeadm join 10.0.0.1:6443 --token [REDACTED] --discovery-token-ca-cert-hash sha256:00ff"
        );
    }

    #[test]
    fn given_secrets_longest_first_and_short_ones_ignored() {
        let redactor = Redactor::new(["abc", "hunter2", "hunter2-extended"]);
        assert_eq!(redactor.secret_count(), 2);
        assert_eq!(
            redactor.redact("x hunter2-extended y hunter2 z abc"),
            "x [REDACTED] y [REDACTED] z abc"
        );
    }

    #[test]
    fn plain_text_is_left_alone() {
        let text = "containerd 1.7.24 installed; 3 sysctls applied; token bucket full";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 10), "hello");
        assert_eq!(tail("hello", 3), "llo");
        // 'é' is two bytes; a cut inside it moves forward.
        assert_eq!(tail("aéb", 2), "b");
    }
}
