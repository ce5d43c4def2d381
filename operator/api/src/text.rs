//! Quoting user input in messages: short, and with nothing a terminal would act on.
//!
//! A spec can hold anything (escape sequences, megabytes of one scalar), and every message
//! quotes some of it back, so each quote goes through [`excerpt`].

/// How many characters of a value a message quotes by default.
pub(crate) const EXCERPT_CHARS: usize = 80;

/// `text` with control and invisible formatting characters escaped (`\n`, `\u{1b}`), cut to
/// `max` characters with a note of how much was left out.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (shown, (index, c)) in text.char_indices().enumerate() {
        if shown >= max {
            let left = text[index..].chars().count();
            out.push_str(&format!("… ({left} more characters)"));
            break;
        }
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters a terminal acts on, or that hide or reorder text: C0 and C1 controls, DEL,
/// zero-width and bidirectional formatting characters.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `bytes` quoted as text: printable ASCII as is, every other byte as `\xNN`, cut to `max`
/// bytes.
pub(crate) fn escape_bytes(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes
        .iter()
        .take(max)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > max {
        out.push_str(&format!("… ({} more bytes)", bytes.len() - max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_escape_controls_and_cut_long_text() {
        assert_eq!(excerpt("a\u{1b}[31mb\n", 80), "a\\u{1b}[31mb\\n");
        assert_eq!(excerpt("abcdef", 3), "abc… (3 more characters)");
        assert_eq!(excerpt("gpu-1", 80), "gpu-1");
        assert_eq!(excerpt("a\u{202e}b", 80), "a\\u{202e}b");
    }

    #[test]
    fn bytes_are_escaped() {
        assert_eq!(escape_bytes(b"ab\xff\x00", 10), "ab\\xff\\x00");
        assert_eq!(escape_bytes(b"abcd", 2), "ab… (2 more bytes)");
    }
}
