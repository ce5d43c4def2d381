//! Reading a Cluster's Nodes from the API: every reconcile lists the Nodes of the Cluster's
//! namespace, since Nodes carry no label of their Cluster to select by (`spec.clusterName`
//! names it). The list is read in pages and only the Nodes that concern the Cluster are kept,
//! so a reconcile holds one page of another Cluster's Nodes at a time, not all of them: with
//! many Clusters reconciled at once over a namespace of many Nodes, whole lists held side by
//! side were most of the operator's peak memory.

use kube::{Api, ResourceExt, api::ListParams};
use kubegrid_api::Node;

use crate::{
    error::{Error, Result},
    immutable,
};

/// Nodes per page. The pages of one list are one consistent snapshot, as a single list is.
pub const PAGE: u32 = 100;

/// The Nodes in `api`'s namespace that name Cluster `cluster` in `spec.clusterName`, or that
/// it took and that now name another (see [`immutable::check`]), sorted by name.
pub async fn related(api: &Api<Node>, cluster: &str) -> Result<Vec<Node>> {
    let ns = api.namespace().unwrap_or("default").to_string();
    let mut params = ListParams::default().limit(PAGE);
    let mut kept = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(Error::kube(format!("list Nodes in {ns}")))?;
        kept.extend(page.items.into_iter().filter(|n| {
            n.spec.cluster_name == cluster
                || n.annotations().get(immutable::TAKEN_BY).map(String::as_str) == Some(cluster)
        }));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    kept.sort_by_key(|n| n.name_any());
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    fn node(name: &str, cluster: &str, taken_by: Option<&str>) -> Value {
        let mut node = json!({
            "apiVersion": "kubegrid.io/v1alpha1", "kind": "Node",
            "metadata": {"name": name, "namespace": "fleet"},
            "spec": {"clusterName": cluster, "address": "127.0.0.1", "roles": ["worker"]},
        });
        if let Some(owner) = taken_by {
            node["metadata"]["annotations"] = json!({ immutable::TAKEN_BY: owner });
        }
        node
    }

    /// An API that answers a Node list in two pages, recording each request's query.
    fn two_pages(queries: Arc<Mutex<Vec<String>>>) -> kube::Client {
        let service = tower::service_fn(move |request: Request<Body>| {
            let query = request.uri().query().unwrap_or_default().to_string();
            queries.lock().unwrap().push(query.clone());
            let (items, token) = if query.contains("continue=page-2") {
                (
                    vec![node("b-2", "b", Some("a")), node("a-2", "a", None)],
                    "",
                )
            } else {
                (
                    vec![node("a-1", "a", None), node("b-1", "b", None)],
                    "page-2",
                )
            };
            let list = json!({
                "apiVersion": "kubegrid.io/v1alpha1", "kind": "NodeList",
                "metadata": {"resourceVersion": "7", "continue": token},
                "items": items,
            });
            async move {
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(
                    list.to_string().into_bytes(),
                )))
            }
        });
        kube::Client::new(service, "fleet")
    }

    #[tokio::test]
    async fn the_nodes_of_a_cluster_are_read_page_by_page_and_only_they_are_kept() {
        let queries = Arc::new(Mutex::new(Vec::new()));
        let api: Api<Node> = Api::namespaced(two_pages(Arc::clone(&queries)), "fleet");
        let nodes = related(&api, "a").await.unwrap();
        let names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
        // Its own Nodes from both pages, and the one it took that now names another.
        assert_eq!(names, ["a-1", "a-2", "b-2"]);
        let queries = queries.lock().unwrap().clone();
        assert_eq!(queries.len(), 2, "{queries:?}");
        assert!(
            queries.iter().all(|q| q.contains(&format!("limit={PAGE}"))),
            "every page is limited: {queries:?}"
        );
        assert!(queries[1].contains("continue=page-2"), "{queries:?}");
    }
}
