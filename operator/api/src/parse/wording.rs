//! serde and libyaml messages in plain words: they name Rust types (`expected u16`,
//! `struct NodeSpec`), which mean nothing to someone writing YAML.

/// `message` (serde_yaml's, `field: what`) with Rust type names replaced by what the field
/// takes.
pub(crate) fn plain(message: &str) -> String {
    let (field, _) = message.split_once(": ").unwrap_or(("", message));
    let port = field.rsplit('.').next().is_some_and(|last| {
        let last = last.to_ascii_lowercase();
        last == "port" || last.ends_with("port")
    });
    let mut out = message.to_string();
    let numbers: [(&str, &str); 10] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        (
            "expected u16",
            if port {
                "expected a port number from 1 to 65535"
            } else {
                "expected a whole number from 0 to 65535"
            },
        ),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected unit", "expected no value"),
    ];
    for (rust, words) in numbers {
        out = replace_word(&out, rust, words);
    }
    out = replace_type_names(&out, "expected struct ", "expected a mapping of fields");
    out = replace_type_names(&out, "expected enum ", "expected one of the allowed values");
    out = replace_bare_type_names(&out);
    out = out.replace(
        "data did not match any variant of untagged enum",
        "the value has none of the accepted forms",
    );
    if field.ends_with("CIDR") {
        out = out.replace(
            "invalid IP address syntax",
            "not a CIDR range; expected an address and prefix length such as 10.244.0.0/16 \
             or fd00:10::/56",
        );
    }
    let out = out.replace(
        "recursion limit exceeded",
        "nested more than 128 levels deep; expected a shallower document",
    );
    shorten_quotes(&out)
}

/// The longest quoted value a message keeps whole.
const MAX_QUOTED_CHARS: usize = 60;

/// Cuts every long `"..."` or `` `...` `` value serde quotes, so the rest of the message
/// (what was expected) survives the cap on its length.
fn shorten_quotes(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = &rest[open..open + 1];
        let Some(len) = rest[open + 1..].find(quote) else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..=open]);
        out.push_str(&crate::text::excerpt(inner, MAX_QUOTED_CHARS));
        out.push_str(quote);
        rest = &rest[open + 2 + len..];
    }
    out.push_str(rest);
    out
}

/// Replaces `from` where it is a whole word (not `expected u16x`).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Replaces `prefix` and the Rust type name after it.
fn replace_type_names(text: &str, prefix: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at]);
        out.push_str(to);
        let after = &rest[at + prefix.len()..];
        rest = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    }
    out.push_str(rest);
    out
}

/// Replaces `expected ObjectMeta` (a type's name, as k8s-openapi's types put it) with
/// what such a type is in YAML.
fn replace_bare_type_names(text: &str) -> String {
    const PREFIX: &str = "expected ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at + PREFIX.len()]);
        let after = &rest[at + PREFIX.len()..];
        let word_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let word = &after[..word_len];
        if word.starts_with(|c: char| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase())
        {
            out.push_str("a mapping of fields");
            rest = &after[word_len..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_the_rest_kept() {
        let long = "9".repeat(1000);
        let message = plain(&format!(
            "spec.ssh.port: invalid type: string \"{long}\", expected u16"
        ));
        assert!(message.len() < 200, "{message}");
        assert!(
            message.ends_with("(940 more characters)\", expected a port number from 1 to 65535"),
            "{message}"
        );
    }

    #[test]
    fn rust_types_become_words() {
        assert_eq!(
            plain("spec.ssh.port: invalid value: integer `70000`, expected u16"),
            "spec.ssh.port: invalid value: integer `70000`, expected a port number from 1 to 65535"
        );
        assert_eq!(
            plain("spec.x: invalid type: string \"a\", expected u32"),
            "spec.x: invalid type: string \"a\", expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            plain("metadata: invalid type: sequence, expected struct ObjectMeta"),
            "metadata: invalid type: sequence, expected a mapping of fields"
        );
        assert_eq!(
            plain("metadata: invalid type: sequence, expected ObjectMeta"),
            "metadata: invalid type: sequence, expected a mapping of fields"
        );
        assert_eq!(
            plain("kind: invalid type: map, expected a string"),
            "kind: invalid type: map, expected a string"
        );
        assert_eq!(
            plain("spec.network.podCIDR: invalid IP address syntax"),
            "spec.network.podCIDR: not a CIDR range; expected an address and prefix length \
             such as 10.244.0.0/16 or fd00:10::/56"
        );
    }
}
