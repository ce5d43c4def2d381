//! Building and merging status conditions, shared by every kubegrid controller so that
//! `lastTransitionTime` means the same thing on each resource.

use crate::Condition;

/// Now, RFC 3339 in UTC with second precision, as Kubernetes writes times.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Condition {
    /// A condition of `type_` for `generation`, its message cut to 1 KiB; the transition
    /// time is left for [`merge`] to set.
    pub fn new(
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
        generation: Option<i64>,
    ) -> Self {
        Self {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: truncate(message, 1024),
            last_transition_time: None,
            observed_generation: generation,
        }
    }
}

/// `new` merged over `old`: a condition whose status did not change keeps its transition
/// time; the others get `now`. Conditions in `old` of other types are kept. The result lists
/// the types in `order` first, in that order, then the rest as they came.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &str, order: &[&str]) -> Vec<Condition> {
    let mut out: Vec<Condition> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.type_ == o.type_))
        .cloned()
        .collect();
    for mut c in new {
        let previous = old.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(now.to_string()),
        };
        out.push(c);
    }
    // A stable sort keeps the unlisted types in the order they came.
    out.sort_by_key(|c| {
        order
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(order.len())
    });
    out
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &[&str] = &["Ready", "Progressing", "Degraded"];

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let mut old = Condition::new("Ready", true, "Installed", "", Some(1));
        old.last_transition_time = Some("2026-01-01T00:00:00Z".into());
        let merged = merge(
            &[old],
            vec![
                Condition::new("Degraded", false, "AsExpected", "", Some(2)),
                Condition::new("Ready", true, "Installed", "again", Some(2)),
            ],
            "2026-02-02T00:00:00Z",
            ORDER,
        );
        assert_eq!(merged[0].type_, "Ready");
        assert_eq!(
            merged[0].last_transition_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(merged[0].message, "again");
        assert_eq!(
            merged[1].last_transition_time.as_deref(),
            Some("2026-02-02T00:00:00Z")
        );
    }

    #[test]
    fn changed_status_gets_a_new_transition_time() {
        let mut old = Condition::new("Ready", true, "Installed", "", Some(1));
        old.last_transition_time = Some("2026-01-01T00:00:00Z".into());
        let merged = merge(
            &[old],
            vec![Condition::new("Ready", false, "HostsFailed", "", Some(1))],
            "2026-02-02T00:00:00Z",
            ORDER,
        );
        assert_eq!(
            merged[0].last_transition_time.as_deref(),
            Some("2026-02-02T00:00:00Z")
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo wörld", 8), "héll...");
        assert_eq!(truncate("short", 8), "short");
    }
}
