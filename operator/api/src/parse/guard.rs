//! Cheap checks on a YAML text before libyaml sees it.
//!
//! libyaml's scanner does work proportional to the flow nesting depth for every token, so
//! deeply nested `[` or `{` take quadratic time: 300 KB of them ran for minutes, long before
//! serde_yaml's own recursion limit could refuse them. This scan is linear and refuses such
//! input in milliseconds. Binary input is refused here too, so no message quotes it raw.

use crate::text::{escape_bytes, excerpt};

/// The deepest nesting of flow collections (`[...]`, `{...}`) a spec may use. Real specs
/// and manifests nest a handful of levels; serde_yaml refuses more than 128 anyway.
pub(crate) const MAX_FLOW_DEPTH: usize = 64;

/// Why a text was refused, and where.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column, in characters.
    pub(crate) column: usize,
    /// What the text holds there.
    pub(crate) what: String,
    /// What it should hold.
    pub(crate) expected: String,
}

impl Refusal {
    /// "what; expected ...", for a parse error.
    pub(crate) fn message(&self) -> String {
        format!("{}; expected {}", self.what, self.expected)
    }
}

/// The bytes as text, or where the first byte that is not UTF-8 is.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, Refusal> {
    std::str::from_utf8(bytes).map_err(|err| {
        let good = &bytes[..err.valid_up_to()];
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        // The valid prefix is UTF-8, so the column counts characters.
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let near = &bytes[err.valid_up_to()..];
        Refusal {
            line,
            column,
            what: format!(
                "binary data, not UTF-8 text (starting `{}`)",
                escape_bytes(near, 16)
            ),
            expected: "a YAML text file".into(),
        }
    })
}

/// Refuses control characters (YAML allows tab and line breaks only) and flow collections
/// nested deeper than [`MAX_FLOW_DEPTH`].
pub(crate) fn text(text: &str) -> Result<(), Refusal> {
    let mut scan = Scan {
        line_start: true,
        ..Scan::default()
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        scan.column += 1;
        if c == '\n' {
            scan.line += 1;
            scan.column = 0;
            scan.comment = false;
            scan.line_start = true;
            scan.previous = Some(c);
            continue;
        }
        if c.is_control() && c != '\t' && c != '\r' {
            return Err(scan.refuse(
                format!("the control character `{}`", excerpt(&c.to_string(), 1)),
                "printable text (YAML allows only tabs and line breaks)".into(),
            ));
        }
        if scan.comment {
            continue;
        }
        match scan.quote {
            Some('"') if scan.escaped => scan.escaped = false,
            Some('"') if c == '\\' => scan.escaped = true,
            Some('"') if c == '"' => scan.quote = None,
            // `''` is an escaped quote inside a single-quoted scalar.
            Some('\'') if c == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
                scan.column += 1;
            }
            Some('\'') if c == '\'' => scan.quote = None,
            Some(_) => {}
            None => scan.indicator(c)?,
        }
        if !c.is_whitespace() {
            scan.line_start = false;
            scan.last_solid = Some(c);
        }
        scan.previous = Some(c);
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// 0-based; reported 1-based.
    line: usize,
    column: usize,
    depth: usize,
    quote: Option<char>,
    escaped: bool,
    comment: bool,
    line_start: bool,
    previous: Option<char>,
    /// The last character that was not a blank, for finding where tokens start.
    last_solid: Option<char>,
}

impl Scan {
    /// Tracks what an unquoted character does to the nesting.
    fn indicator(&mut self, c: char) -> Result<(), Refusal> {
        let blank_before = self.line_start || self.previous.is_some_and(char::is_whitespace);
        match c {
            '#' if blank_before => self.comment = true,
            '[' | '{' => {
                self.depth += 1;
                if self.depth > MAX_FLOW_DEPTH {
                    return Err(self.refuse(
                        format!(
                            "flow collections (`[` or `{{`) nested more than {MAX_FLOW_DEPTH} \
                             levels deep"
                        ),
                        format!("at most {MAX_FLOW_DEPTH} levels"),
                    ));
                }
            }
            ']' | '}' => self.depth = self.depth.saturating_sub(1),
            // Quotes matter only inside flow collections, where brackets are indicators;
            // in block context a bracket inside a quoted scalar counts, which can only
            // over-count. A quote starts a scalar only where a token starts.
            '"' | '\'' if self.depth > 0 && self.token_start() => self.quote = Some(c),
            _ => {}
        }
        Ok(())
    }

    fn token_start(&self) -> bool {
        // Not the line start: in flow context a new line can continue a plain scalar.
        matches!(
            self.last_solid,
            None | Some('[' | '{' | ',' | ':' | '?' | '-')
        )
    }

    fn refuse(&self, what: String, expected: String) -> Refusal {
        Refusal {
            line: self.line + 1,
            column: self.column,
            what,
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_refused(text: &str) -> bool {
        super::text(text).is_err_and(|r| r.what.contains("nested more than"))
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_its_place() {
        let deep = "a:\n  b: ".to_string() + &"[".repeat(65);
        let refusal = super::text(&deep).unwrap_err();
        assert_eq!((refusal.line, refusal.column), (2, 5 + 65));
        assert!(!depth_refused(&("[".repeat(64) + &"]".repeat(64))));
        // Closed collections do not add up.
        assert!(!depth_refused(&"[[a]]\n".repeat(1000)));
    }

    #[test]
    fn brackets_in_quotes_and_comments_inside_flow_do_not_count() {
        let quoted = format!("a: [\"{}\", '{}', x]\n", "[".repeat(100), "{".repeat(100));
        assert!(!depth_refused(&quoted));
        let escaped = format!(
            "a: ['it''s {}', \"\\\" {}\"]\n",
            "[".repeat(100),
            "[".repeat(100)
        );
        assert!(!depth_refused(&escaped));
        let comment = format!(
            "a: [x, # {}\n  y]\n# {}\n",
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(!depth_refused(&comment));
    }

    #[test]
    fn a_quote_inside_a_plain_scalar_hides_nothing() {
        // `it's` is a plain scalar; had the scan taken its quote as a start, the brackets
        // after it would be skipped.
        let text = format!("a: [it's, {}", "[".repeat(100));
        assert!(depth_refused(&text));
        let text = format!("a: [x\n 'y, {}", "[".repeat(100));
        assert!(depth_refused(&text));
    }

    #[test]
    fn the_scan_is_fast_on_300_kb_of_brackets() {
        let start = std::time::Instant::now();
        for text in ["[".repeat(300_000), "{a: ".repeat(75_000)] {
            assert!(depth_refused(&text));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn control_characters_are_refused_with_an_escaped_quote() {
        let refusal = super::text("a: 1\nb: \u{1b}[31m\n").unwrap_err();
        assert_eq!((refusal.line, refusal.column), (2, 4));
        assert!(refusal.what.contains("`\\u{1b}`"), "{}", refusal.what);
        assert!(super::text("a:\tb\r\n").is_ok());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let refusal = utf8(b"a: 1\nbc\xff\xfe\x00").unwrap_err();
        assert_eq!((refusal.line, refusal.column), (2, 3));
        assert!(
            refusal.what.contains("`\\xff\\xfe\\x00`"),
            "{}",
            refusal.what
        );
        assert_eq!(utf8(b"a: 1").unwrap(), "a: 1");
    }
}
