//! PEM files and kubeconfigs as the certificate facts and the certificates task read them.
//!
//! PEM is scanned as text rather than decoded and re-encoded, so that a file's other blocks
//! (the private key in kubelet-client-current.pem) and the text between blocks are kept byte
//! for byte when its certificates are replaced. Only CERTIFICATE blocks are ever handed out.

use std::ops::Range;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_yaml::{Mapping, Value};

/// The largest file read as a certificate file or kubeconfig; certificate files are a few
/// KiB, so anything bigger is something else.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// One `-----BEGIN X-----` … `-----END X-----` block of a PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label ("CERTIFICATE", "EC PRIVATE KEY").
    pub label: String,
    /// From the start of the BEGIN line to the end of the END line's newline (when it has
    /// one).
    pub range: Range<usize>,
    /// From the start of the BEGIN line to the last dash of the END line.
    pub core: Range<usize>,
    /// The body holds only base64 characters and whitespace.
    pub well_formed: bool,
}

/// The complete PEM blocks of `text`, in order. A BEGIN line without its END line is not a
/// block (the rest of the text is left as it is).
pub fn blocks(text: &str) -> Vec<PemBlock> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(BEGIN) {
        let start = from + found;
        let after_begin = start + BEGIN.len();
        let Some(label_len) = text[after_begin..].find(DASHES) else {
            break;
        };
        let label = &text[after_begin..after_begin + label_len];
        if label.contains('\n') {
            from = after_begin;
            continue;
        }
        let body_start = after_begin + label_len + DASHES.len();
        let end_marker = format!("-----END {label}-----");
        let Some(end_found) = text[body_start..].find(&end_marker) else {
            break;
        };
        let core_end = body_start + end_found + end_marker.len();
        let mut end = core_end;
        if text[end..].starts_with("\r\n") {
            end += 2;
        } else if text[end..].starts_with('\n') {
            end += 1;
        }
        let body = &text[body_start..body_start + end_found];
        let well_formed = body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b) || b.is_ascii_whitespace());
        out.push(PemBlock {
            label: label.to_string(),
            range: start..end,
            core: start..core_end,
            well_formed,
        });
        from = end;
    }
    out
}

/// The well-formed CERTIFICATE blocks of `text`, each from its BEGIN line to its END line plus
/// one newline. Nothing else of the text is ever returned.
pub fn certificates(text: &str) -> Vec<String> {
    blocks(text)
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE" && b.well_formed)
        .map(|b| format!("{}\n", &text[b.core]))
        .collect()
}

/// Whether `text` is one or more well-formed CERTIFICATE blocks and holds no other block.
/// Some("why not") otherwise.
pub fn only_certificates(text: &str) -> Option<&'static str> {
    let all = blocks(text);
    if all.iter().any(|b| b.label != "CERTIFICATE") {
        return Some("holds a PEM block that is not a CERTIFICATE");
    }
    if all.is_empty() {
        return Some("holds no PEM CERTIFICATE block");
    }
    if all.iter().any(|b| !b.well_formed) {
        return Some("holds a CERTIFICATE block whose body is not base64");
    }
    None
}

/// `text` with its CERTIFICATE blocks replaced by `new` (in the place of the first, the
/// others removed with their line ends) and every other byte kept; None when `text` has no
/// CERTIFICATE block.
pub fn replace_certificates(text: &str, new: &str) -> Option<String> {
    let certs: Vec<PemBlock> = blocks(text)
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .collect();
    if certs.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + new.len());
    let mut at = 0;
    for (i, block) in certs.iter().enumerate() {
        out.push_str(&text[at..block.range.start]);
        if i == 0 {
            out.push_str(new.trim_end());
            out.push('\n');
        }
        at = block.range.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// The document when `text` is a kubeconfig: a YAML mapping with `kind: Config`.
pub fn kubeconfig(text: &str) -> Option<Value> {
    let doc: Value = serde_yaml::from_str(text).ok()?;
    (doc.get("kind").and_then(Value::as_str) == Some("Config")).then_some(doc)
}

/// The entries of a kubeconfig list (`clusters`, `users`) as (name, inner mapping), where
/// `inner` is the key holding the entry's settings (`cluster`, `user`).
pub fn entries<'a>(doc: &'a Value, list: &str, inner: &str) -> Vec<(String, &'a Mapping)> {
    doc.get(list)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
            Some((name.to_string(), entry.get(inner)?.as_mapping()?))
        })
        .collect()
}

/// [`entries`], mutable.
pub fn entries_mut<'a>(
    doc: &'a mut Value,
    list: &str,
    inner: &str,
) -> Vec<(String, &'a mut Mapping)> {
    doc.get_mut(list)
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Some((name, entry.get_mut(inner)?.as_mapping_mut()?))
        })
        .collect()
}

/// A string setting of a kubeconfig entry.
pub fn setting<'a>(entry: &'a Mapping, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

/// The PEM text a `*-data` setting holds (base64 of PEM); None when it is not base64 of text.
pub fn decode_data(value: &str) -> Option<String> {
    let bytes = STANDARD.decode(value.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// `pem` as a kubeconfig `*-data` value.
pub fn encode_data(pem: &str) -> String {
    STANDARD.encode(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_A: &str = "-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----\n";
    const CERT_B: &str = "-----BEGIN CERTIFICATE-----\nQkJC\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n";

    #[test]
    fn finds_blocks_and_hands_out_certificates_only() {
        let text = format!("# head\n{CERT_A}{KEY}{CERT_B}");
        let found = blocks(&text);
        assert_eq!(
            found.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(),
            ["CERTIFICATE", "EC PRIVATE KEY", "CERTIFICATE"]
        );
        assert_eq!(certificates(&text), vec![CERT_A, CERT_B]);
        assert!(certificates(KEY).is_empty());
        assert_eq!(
            only_certificates(&text),
            Some("holds a PEM block that is not a CERTIFICATE")
        );
        assert_eq!(only_certificates(&format!("{CERT_A}{CERT_B}")), None);
        assert_eq!(
            only_certificates("nothing"),
            Some("holds no PEM CERTIFICATE block")
        );
    }

    #[test]
    fn a_certificate_block_that_swallows_a_key_is_not_handed_out() {
        // A BEGIN CERTIFICATE whose END comes only after a key block: the "body" holds the
        // key's dashes, so it is not base64 and is never returned.
        let text = format!("-----BEGIN CERTIFICATE-----\nQUFB\n{KEY}-----END CERTIFICATE-----\n");
        assert!(certificates(&text).is_empty());
        assert!(only_certificates(&text).is_some());
    }

    #[test]
    fn replaces_certificates_in_place_keeping_everything_else() {
        let text = format!("{CERT_A}{KEY}{CERT_B}tail");
        let out = replace_certificates(&text, CERT_B).unwrap();
        assert_eq!(out, format!("{CERT_B}{KEY}tail"));
        let key_first = format!("{KEY}{CERT_A}");
        assert_eq!(
            replace_certificates(&key_first, &format!("{CERT_B}\n\n")).unwrap(),
            format!("{KEY}{CERT_B}")
        );
        assert_eq!(replace_certificates(KEY, CERT_A), None);
        // CRLF line ends after a removed block go with it.
        let crlf = "-----BEGIN CERTIFICATE-----\r\nQUFB\r\n-----END CERTIFICATE-----\r\nrest";
        assert_eq!(
            replace_certificates(crlf, CERT_B).unwrap(),
            format!("{CERT_B}rest")
        );
    }

    #[test]
    fn reads_kubeconfig_entries() {
        let doc = kubeconfig(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://x\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let clusters = entries(&doc, "clusters", "cluster");
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].0, "k");
        assert_eq!(setting(clusters[0].1, "server"), Some("https://x"));
        assert!(kubeconfig("kind: Pod\n").is_none());
        assert!(kubeconfig(CERT_A).is_none());
        assert_eq!(decode_data(&encode_data(CERT_A)).as_deref(), Some(CERT_A));
        assert_eq!(decode_data("%%%"), None);
    }
}
