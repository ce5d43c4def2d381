//! Conditions and status patches.
//!
//! Status is written with JSON merge patches on the `/status` subresource, so the operator
//! never overwrites a user's spec edit made in between, and only the fields it names change.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use kubegrid_api::{Cluster, Condition, Node};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Condition type: the cluster is installed and healthy.
pub const READY: &str = "Ready";
/// Condition type: an operation is running.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: hosts or checks failed.
pub const DEGRADED: &str = "Degraded";

/// Now, RFC 3339 in UTC with second precision, as Kubernetes writes times.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One condition for `generation`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    gen_: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: truncate(message, 1024),
        last_transition_time: None,
        observed_generation: gen_,
    }
}

/// `new` merged over `old`: a condition whose status did not change keeps its transition
/// time; the others get `now`. Conditions in `old` of other types are kept.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &str) -> Vec<Condition> {
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
    out.sort_by_key(|c| match c.type_.as_str() {
        READY => 0,
        PROGRESSING => 1,
        DEGRADED => 2,
        _ => 3,
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

/// Merge-patches the status of Cluster or Node `name`.
async fn patch_status<K>(api: &Api<K>, kind: &str, name: &str, status: Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .map(drop)
    .map_err(Error::kube(format!("patch status of {kind} {name}")))
}

/// Merge-patches a Cluster's status.
pub async fn patch_cluster(api: &Api<Cluster>, name: &str, status: Value) -> Result<()> {
    patch_status(api, "Cluster", name, status).await
}

/// Merge-patches a Node's status, with `roles` (the Node's
/// [`kubegrid_api::NodeSpec::roles_column`]) as `status.roles`, so every status write keeps
/// kubectl's `Roles` column in step with `spec.roles`. `Some(None)` clears it (a Node without
/// roles); `None` leaves it as it is.
pub async fn patch_node(
    api: &Api<Node>,
    name: &str,
    roles: Option<Option<String>>,
    mut status: Value,
) -> Result<()> {
    if let Some(roles) = roles {
        status["roles"] = Value::from(roles);
    }
    patch_status(api, "Node", name, status).await
}

/// Writes `status.roles` on each of `nodes` where it is not its spec's roles: a Node that no
/// operation wrote yet (its Cluster is refused), or one written by an operator from before
/// the field. Every other status write carries it already (see [`patch_node`]), so kubectl's
/// `Roles` column is right also where no operation runs.
pub async fn sync_roles(api: &Api<Node>, nodes: &[Node]) -> Result<()> {
    for node in nodes {
        let want = node.spec.roles_column();
        if node.status.as_ref().and_then(|s| s.roles.as_ref()) != want.as_ref() {
            patch_node(api, &node.name_any(), Some(want), json!({})).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let mut old = condition(READY, true, "Installed", "", Some(1));
        old.last_transition_time = Some("2026-01-01T00:00:00Z".into());
        let merged = merge(
            &[old],
            vec![
                condition(READY, true, "Installed", "again", Some(2)),
                condition(DEGRADED, false, "AsExpected", "", Some(2)),
            ],
            "2026-02-02T00:00:00Z",
        );
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
        let mut old = condition(READY, true, "Installed", "", Some(1));
        old.last_transition_time = Some("2026-01-01T00:00:00Z".into());
        let merged = merge(
            &[old],
            vec![condition(READY, false, "HostsFailed", "", Some(1))],
            "2026-02-02T00:00:00Z",
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
