//! Reading upstream checksum files.

use crate::sources::ChecksumFormat;

/// The lower-case hex sha256 that `text` (a checksum file of `format`) gives for `entry`.
pub(crate) fn lookup(text: &str, format: ChecksumFormat, entry: &str) -> Result<String, String> {
    match format {
        ChecksumFormat::Single => {
            let first = text.split_whitespace().next().unwrap_or_default();
            hex(first).ok_or_else(|| {
                format!(
                    "expected a sha256 (64 hex digits) as the first word, found `{}`",
                    abbreviate(first)
                )
            })
        }
        ChecksumFormat::Sha256sum => {
            let mut names = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let Some((hash, name)) = line.split_once(char::is_whitespace) else {
                    return Err(format!(
                        "line `{}` is not `<sha256>  <file name>`",
                        abbreviate(line)
                    ));
                };
                // `*name` marks binary mode in sha256sum output; `./name` comes from
                // `sha256sum ./*`.
                let name = name.trim_start();
                let name = name.strip_prefix('*').unwrap_or(name);
                let name = name.strip_prefix("./").unwrap_or(name);
                if name == entry || name.rsplit('/').next() == Some(entry) {
                    return hex(hash).ok_or_else(|| {
                        format!(
                            "the entry for `{entry}` has `{}`, not a sha256",
                            abbreviate(hash)
                        )
                    });
                }
                names.push(name.to_string());
            }
            let listed = if names.is_empty() {
                "no entries".to_string()
            } else {
                names.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
            };
            Err(format!("no entry for `{entry}`; it lists {listed}"))
        }
    }
}

/// 64 hex digits, lower-cased.
fn hex(word: &str) -> Option<String> {
    (word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| word.to_ascii_lowercase())
}

fn abbreviate(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}
