//! Label and field selectors as list and watch requests carry them.

use serde_json::Value;

use crate::store::Failure;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equal(String, String),
    NotEqual(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// A parsed selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    terms: Vec<Term>,
}

impl Selector {
    /// Parses `a=b,c!=d,e in (x,y),!f`; `what` names the parameter in errors.
    pub(crate) fn parse(text: &str, what: &str) -> Result<Self, Failure> {
        let mut terms = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            terms.push(parse_term(term).ok_or_else(|| {
                Failure::new(
                    400,
                    "BadRequest",
                    format!("unable to parse requirement {term:?} in {what} {text:?}"),
                )
            })?);
        }
        Ok(Self { terms })
    }

    /// Whether the object's labels satisfy the selector.
    pub(crate) fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches(|key| labels.get(key).and_then(Value::as_str).map(str::to_owned))
    }

    /// Whether the object's fields (dotted paths such as `metadata.name`) satisfy it; a
    /// missing field reads as the empty string, as in the apiserver.
    pub(crate) fn matches_fields(&self, object: &Value) -> bool {
        self.matches(|path| {
            let field = path.split('.').try_fold(object, |v, part| v.get(part));
            Some(match field {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
        })
    }

    fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Equal(key, want) => value_of(key).as_deref() == Some(want.as_str()),
            Term::NotEqual(key, want) => value_of(key).as_deref() != Some(want.as_str()),
            Term::In(key, set) => value_of(key).is_some_and(|v| set.contains(&v)),
            Term::NotIn(key, set) => value_of(key).is_none_or(|v| !set.contains(&v)),
            Term::Exists(key) => value_of(key).is_some(),
            Term::Absent(key) => value_of(key).is_none(),
        })
    }
}

/// Splits at commas outside parentheses, so `a in (x,y),b` gives two terms.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_term(term: &str) -> Option<Term> {
    if let Some(key) = term.strip_prefix('!') {
        return Some(Term::Absent(key.trim().to_owned()));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(operator) {
            let set = set.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values = set.split(',').map(|v| v.trim().to_owned()).collect();
            let key = key.trim().to_owned();
            return Some(if negated {
                Term::NotIn(key, values)
            } else {
                Term::In(key, values)
            });
        }
    }
    let pair = |(key, value): (&str, &str)| (key.trim().to_owned(), value.trim().to_owned());
    if let Some((key, value)) = term.split_once("!=").map(pair) {
        return Some(Term::NotEqual(key, value));
    }
    if let Some((key, value)) = term
        .split_once("==")
        .or_else(|| term.split_once('='))
        .map(pair)
    {
        return Some(Term::Equal(key, value));
    }
    Some(Term::Exists(term.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selects_by_labels_and_fields() {
        let object =
            json!({ "metadata": { "name": "a", "labels": { "app": "web", "tier": "1" } } });
        let labels = |s| Selector::parse(s, "labelSelector").unwrap();
        assert!(labels("app=web,tier==1").matches_labels(&object));
        assert!(labels("app in (db, web),!gone").matches_labels(&object));
        assert!(!labels("app notin (web)").matches_labels(&object));
        assert!(!labels("app!=web").matches_labels(&object));
        assert!(labels("tier").matches_labels(&object));
        assert!(labels("").matches_labels(&object));
        let fields = |s| Selector::parse(s, "fieldSelector").unwrap();
        assert!(fields("metadata.name=a").matches_fields(&object));
        assert!(fields("spec.nodeName=").matches_fields(&object));
        assert!(!fields("metadata.name=b").matches_fields(&object));
    }
}
