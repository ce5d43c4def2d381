//! Finding the line of a field such as `spec.network.serviceCIDR` or `spec.taints[1].key`
//! in a document's text, so a problem points at the field rather than at the document.
//!
//! This walks block-style YAML by indentation. Where the walk cannot go further (a flow
//! mapping, a key written in an unusual way) it stops at the deepest field it found, which
//! is still nearer than the document's first line.

use crate::{Manifest, SourceLine};

/// One document's text as it was in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DocText {
    /// The line its first content is on (what problems point at without a field).
    pub(crate) first_line: usize,
    /// Lines before the text's first line.
    pub(crate) offset: usize,
    pub(crate) text: String,
}

impl Manifest {
    /// Where `field` is written in the document that starts at `document`, else the
    /// document's start.
    pub(crate) fn locate(&self, document: Option<&SourceLine>, field: &str) -> Option<SourceLine> {
        let document = document?;
        let line = self
            .source_docs()
            .iter()
            .find(|d| d.first_line == document.line)
            .and_then(|d| field_line(&d.text, field).map(|i| d.offset + i + 1))
            .unwrap_or(document.line);
        Some(SourceLine {
            path: document.path.clone(),
            line,
        })
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `spec.taints[1].key` or `spec.labels[example.com/gpu]` into steps.
fn steps(field: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else { break };
            let key = &inner[..close];
            out.push(match key.parse() {
                Ok(n) => Step::Index(n),
                Err(_) => Step::Key(key.trim_matches('"')),
            });
            rest = &inner[close + 1..];
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            out.push(Step::Key(&rest_trimmed[..end]));
            rest = &rest_trimmed[end..];
        }
    }
    out
}

/// The 0-based line of `field` in `text`, or of the deepest part of it found; `None` when
/// not even its first part is there.
pub(crate) fn field_line(text: &str, field: &str) -> Option<usize> {
    // (indent, content) per line; blank and comment lines have no content.
    let mut lines: Vec<(usize, &str)> = text
        .lines()
        .map(|l| {
            let content = l.trim_start_matches(' ');
            let indent = l.len() - content.len();
            let content = content.trim_end();
            if content.is_empty() || content.starts_with('#') {
                (usize::MAX, "")
            } else {
                (indent, content)
            }
        })
        .collect();
    let solid = |line: &(usize, &str)| line.0 != usize::MAX;
    let (mut start, mut end) = (0, lines.len());
    let mut parent: Option<usize> = None;
    let mut found = None;
    for step in steps(field) {
        // A block sequence may sit at its key's own indentation (`taints:` then `- key`).
        let within = |i: usize, lines: &[(usize, &str)]| {
            parent.is_none_or(|p| {
                lines[i].0 > p
                    || (lines[i].0 == p && is_item(lines[i].1) && matches!(step, Step::Index(_)))
            })
        };
        let Some(first) = (start..end).find(|&i| solid(&lines[i])) else {
            break;
        };
        if !within(first, &lines) {
            break;
        }
        let indent = lines[first].0;
        let at = match step {
            Step::Key(key) => {
                (start..end).find(|&i| lines[i].0 == indent && is_key(lines[i].1, key))
            }
            Step::Index(n) => (start..end)
                .filter(|&i| lines[i].0 == indent && is_item(lines[i].1))
                .nth(n),
        };
        let Some(i) = at else { break };
        found = Some(i);
        let next_end = (i + 1..end)
            .find(|&j| {
                let (other, content) = lines[j];
                solid(&lines[j])
                    && (other < indent
                        || (other == indent && !(matches!(step, Step::Key(_)) && is_item(content))))
            })
            .unwrap_or(end);
        match step {
            Step::Key(_) => {
                start = i + 1;
                parent = Some(indent);
            }
            Step::Index(_) => {
                // `- key: value`: the item's first key is on the dash's line.
                let content = lines[i].1[1..].trim_start_matches(' ');
                let item_indent = indent + (lines[i].1.len() - content.len());
                lines[i] = (item_indent, content);
                start = i;
                parent = Some(indent);
            }
        }
        end = next_end;
    }
    found
}

fn is_key(content: &str, key: &str) -> bool {
    [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .any(|k| {
            content
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.trim_start_matches(' ').starts_with(':'))
        })
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata:
  name: a
spec:
  # the host
  address: 10.0.0.1
  labels:
    \"example.com/gpu\": \"yes\"
  taints:
  - key: a
    effect: NoSchedule
  -   key: b
      effect: NoSchedule
  network: {podCIDR: 10.0.0.0/8}
";

    #[test]
    fn fields_are_found_by_their_path() {
        assert_eq!(field_line(DOC, "metadata.name"), Some(3));
        assert_eq!(field_line(DOC, "spec.address"), Some(6));
        assert_eq!(field_line(DOC, "spec.labels[example.com/gpu]"), Some(8));
        assert_eq!(field_line(DOC, "spec.taints[0].key"), Some(10));
        assert_eq!(field_line(DOC, "spec.taints[0].effect"), Some(11));
        assert_eq!(field_line(DOC, "spec.taints[1].effect"), Some(13));
        assert_eq!(field_line(DOC, "spec.taints[1]"), Some(12));
    }

    #[test]
    fn the_walk_stops_at_the_deepest_field_found() {
        assert_eq!(field_line(DOC, "spec.network.podCIDR"), Some(14));
        assert_eq!(field_line(DOC, "spec.taints[5].key"), Some(9));
        assert_eq!(field_line(DOC, "spec.roles"), Some(4));
        assert_eq!(field_line(DOC, "Node spec.roles"), None);
        // A key of the same name deeper down is not the top-level one.
        assert_eq!(field_line(DOC, "key"), None);
    }
}
