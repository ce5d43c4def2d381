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

pub use kubegrid_api::conditions::{now, truncate};

/// One condition for `generation`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    gen_: Option<i64>,
) -> Condition {
    Condition::new(type_, status, reason, message, gen_)
}

/// `new` merged over `old` ([`kubegrid_api::conditions::merge`]), Ready, Progressing and
/// Degraded first.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &str) -> Vec<Condition> {
    kubegrid_api::conditions::merge(old, new, now, &[READY, PROGRESSING, DEGRADED])
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
