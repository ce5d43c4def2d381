//! The immutable-field rules, run in code as well as by the API server's CEL rules: an API
//! server that skips them (an old one, or CRDs installed without the schema) must not let
//! a changed endpoint, network or cluster membership reach the hosts.
//!
//! The operator cannot see an object's old version, so it remembers what it acted on in
//! annotations: the Cluster spec of the last successful operation, and the Cluster a Node
//! was first taken into.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use kubegrid_api::{Cluster, ClusterSpec, Node};
use serde_json::json;

use crate::error::{Error, Result};

/// Annotation on a Cluster: its spec as of the last successful operation (JSON).
pub const APPLIED_SPEC: &str = "kubegrid.io/applied-spec";
/// Annotation on a Node: the Cluster it was first taken into.
pub const TAKEN_BY: &str = "kubegrid.io/cluster-name";

/// Problems with `cluster` and `nodes` against what the operator acted on before, and with
/// `moved`: Nodes this Cluster took that now name another one (left alone, the Cluster would
/// see them leave its spec and reset their hosts). The error lists every changed field.
pub fn check(cluster: &Cluster, nodes: &[Node], moved: &[Node]) -> Result<()> {
    let mut problems = Vec::new();
    let applied = cluster
        .annotations()
        .get(APPLIED_SPEC)
        .and_then(|text| serde_json::from_str::<ClusterSpec>(text).ok());
    if let Some(spec) = applied {
        let mut old = cluster.clone();
        old.spec = spec;
        if let Err(e) = cluster.validate_update(&old) {
            problems.push(e.to_string());
        }
    }
    for node in nodes.iter().chain(moved) {
        if let Some(first) = node.annotations().get(TAKEN_BY) {
            let mut old = node.clone();
            old.spec.cluster_name.clone_from(first);
            if let Err(e) = node.validate_update(&old) {
                problems.push(e.to_string());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidSpec {
            cluster: crate::operation::key(cluster),
            problems: problems.join("\n"),
        })
    }
}

/// Remembers `cluster`'s spec as applied.
pub async fn remember_cluster(api: &Api<Cluster>, cluster: &Cluster) -> Result<()> {
    let spec = serde_json::to_string(&cluster.spec).map_err(|e| Error::Engine {
        cluster: crate::operation::key(cluster),
        reason: format!("encoding the applied spec: {e}"),
    })?;
    let patch = json!({"metadata": {"annotations": {APPLIED_SPEC: spec}}});
    api.patch(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map(drop)
    .map_err(Error::kube(format!(
        "annotate Cluster {}",
        cluster.name_any()
    )))
}

/// The annotation that records which Cluster took `node`, when it lacks one.
pub fn taken_by(node: &Node) -> Option<serde_json::Value> {
    (!node.annotations().contains_key(TAKEN_BY))
        .then(|| json!({ TAKEN_BY: node.spec.cluster_name }))
}
