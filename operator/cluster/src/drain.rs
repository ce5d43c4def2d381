//! Taking a node out of the cluster: cordon, evict, delete.

use std::time::Duration;

use k8s_openapi::api::{
    core::v1::{Node, Pod},
    policy::v1::Eviction,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use tokio::time::{Instant, sleep};

use crate::{
    FIELD_MANAGER,
    error::{Error, Result, api_code, describe},
};

/// How a drain behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOptions {
    /// How long evictions may take, retries on PodDisruptionBudgets included.
    pub timeout: Duration,
    /// Grace period handed to evicted pods; `None` keeps each pod's own.
    pub grace_period: Option<Duration>,
    /// For [`remove_node`]: delete the Node even when the drain failed.
    pub force: bool,
    /// Pause between eviction retries and between looks at evicted pods.
    pub poll_interval: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            grace_period: None,
            force: false,
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// What a successful drain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// The drained Node.
    pub node: String,
    /// Pods evicted from it, as `namespace/name`.
    pub evicted: Vec<String>,
    /// Pods left in place: DaemonSet-owned and mirror (static) pods, as `namespace/name`.
    pub skipped: Vec<String>,
}

/// What [`remove_node`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalOutcome {
    /// The node was drained and its Node object deleted.
    Removed(DrainReport),
    /// The drain failed but `force` was set, so the Node was deleted anyway.
    ForcedAfterFailedDrain {
        /// The deleted Node.
        node: String,
        /// Pods that were still on the node, as `namespace/name` (empty when the drain failed before listing them).
        pods: Vec<String>,
        /// Why the drain failed.
        reason: String,
    },
    /// There was no Node of that name; nothing to do.
    AlreadyAbsent {
        /// The Node name that was looked up.
        node: String,
    },
}

/// Cordons the node and evicts every pod on it except DaemonSet-owned and
/// mirror pods, through the policy/v1 Eviction API so PodDisruptionBudgets
/// are honoured.
///
/// Evictions refused with 429 (a budget forbids it now) are retried until
/// [`DrainOptions::timeout`]; evicted pods are waited on until they are gone.
/// Returns [`Error::DrainFailed`] naming the pods that remain.
pub async fn drain(client: &Client, node: &str, opts: &DrainOptions) -> Result<DrainReport> {
    let deadline = Instant::now() + opts.timeout;
    let nodes: Api<Node> = Api::all(client.clone());
    let cordon = serde_json::json!({ "spec": { "unschedulable": true } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    nodes
        .patch(node, &params, &Patch::Merge(&cordon))
        .await
        .map_err(|source| Error::CordonNode {
            node: node.into(),
            source,
        })?;

    let all_pods: Api<Pod> = Api::all(client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let pods = all_pods
        .list(&on_node)
        .await
        .map_err(|source| Error::ListNodePods {
            node: node.into(),
            source,
        })?
        .items;
    let (stay, go): (Vec<Pod>, Vec<Pod>) = pods.into_iter().partition(stays_on_node);
    let skipped = stay.iter().map(pod_ref).collect();
    let evicted: Vec<String> = go.iter().map(pod_ref).collect();
    tracing::info!(node, evict = go.len(), skip = stay.len(), "draining node");

    // Pods not yet accepted for eviction, and pods accepted but not yet gone.
    let mut pending: Vec<Pod> = go;
    let mut terminating: Vec<Pod> = Vec::new();
    let mut reason = String::new();
    loop {
        let mut still_pending = Vec::new();
        let mut fatal = None;
        for pod in pending {
            if fatal.is_some() {
                still_pending.push(pod);
                continue;
            }
            // kube's own read timeout is minutes long: one hung request must not carry the
            // drain past its deadline.
            let limit = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(2));
            let attempt = tokio::time::timeout(limit, evict(client, &pod, opts)).await;
            let Ok(result) = attempt else {
                reason = format!("eviction of {} got no answer", pod_ref(&pod));
                still_pending.push(pod);
                continue;
            };
            match result {
                Ok(()) => terminating.push(pod),
                Err(err) if api_code(&err) == Some(404) => {}
                // A budget (429), an apiserver or etcd hiccup (502-504) or no answer at all
                // can clear by itself; they are retried until the deadline.
                Err(err) if matches!(api_code(&err), Some(429 | 502 | 503 | 504) | None) => {
                    reason = format!("eviction of {} refused: {}", pod_ref(&pod), describe(&err));
                    still_pending.push(pod);
                }
                Err(err) => {
                    fatal = Some(format!(
                        "eviction of {} failed: {}",
                        pod_ref(&pod),
                        describe(&err)
                    ));
                    still_pending.push(pod);
                }
            }
        }
        pending = still_pending;
        // Any other refusal (403, 500 for overlapping budgets, ...) will not go away.
        if let Some(reason) = fatal {
            let pods = pending.iter().chain(&terminating).map(pod_ref).collect();
            return Err(Error::DrainFailed {
                node: node.into(),
                pods,
                reason,
            });
        }

        let mut still_there = Vec::new();
        for pod in terminating {
            if is_still_there(client, &pod).await {
                still_there.push(pod);
            }
        }
        terminating = still_there;
        if pending.is_empty() && terminating.is_empty() {
            return Ok(DrainReport {
                node: node.into(),
                evicted,
                skipped,
            });
        }

        let now = Instant::now();
        if now >= deadline {
            if pending.is_empty() {
                reason = "evicted pods did not terminate".into();
            }
            let pods = pending.iter().chain(&terminating).map(pod_ref).collect();
            return Err(Error::DrainFailed {
                node: node.into(),
                pods,
                reason: format!("{reason} (gave up after {:?})", opts.timeout),
            });
        }
        sleep(opts.poll_interval.min(deadline - now)).await;
    }
}

/// Deletes the Node object; a Node that is already gone counts as deleted.
pub async fn delete_node(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(err) if api_code(&err) == Some(404) => Ok(()),
        Err(source) => Err(Error::DeleteNode {
            node: name.into(),
            source,
        }),
    }
}

/// Drains the node and deletes it.
///
/// A node whose drain failed is never deleted unless [`DrainOptions::force`]
/// is set: without it the drain error is returned and the Node stays
/// (cordoned). With it the Node is deleted and the outcome says the drain
/// failed.
pub async fn remove_node(
    client: &Client,
    name: &str,
    opts: &DrainOptions,
) -> Result<RemovalOutcome> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.get_opt(name).await {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(RemovalOutcome::AlreadyAbsent { node: name.into() }),
        Err(source) => {
            return Err(Error::GetNode {
                node: name.into(),
                source,
            });
        }
    }
    match drain(client, name, opts).await {
        Ok(report) => {
            delete_node(client, name).await?;
            Ok(RemovalOutcome::Removed(report))
        }
        Err(err) if opts.force => {
            let (pods, reason) = match err {
                Error::DrainFailed { pods, reason, .. } => (pods, reason),
                other => (Vec::new(), other.to_string()),
            };
            tracing::warn!(node = name, %reason, "drain failed; deleting the node because force is set");
            delete_node(client, name).await?;
            Ok(RemovalOutcome::ForcedAfterFailedDrain {
                node: name.into(),
                pods,
                reason,
            })
        }
        Err(err) => Err(err),
    }
}

/// DaemonSet pods would be recreated on the node at once, and mirror pods
/// belong to the kubelet's static manifests; kubectl drain leaves both too.
fn stays_on_node(pod: &Pod) -> bool {
    let mirror = pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror");
    let daemonset = pod
        .owner_references()
        .iter()
        .any(|owner| owner.kind == "DaemonSet" && owner.controller == Some(true));
    mirror || daemonset
}

fn pod_ref(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

async fn evict(client: &Client, pod: &Pod, opts: &DrainOptions) -> kube::Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let grace = opts
        .grace_period
        .map(|grace| i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    let eviction: Eviction = serde_json::from_value(serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": { "gracePeriodSeconds": grace },
    }))
    .map_err(kube::Error::SerdeError)?;
    let _status: serde_json::Value = api
        .create_subresource("eviction", &name, &PostParams::default(), &eviction)
        .await?;
    Ok(())
}

/// Whether the evicted pod still exists; a pod of the same name with another
/// UID is a replacement, not the pod we evicted. Read errors count as "still
/// there" so the deadline, not a blip, decides.
async fn is_still_there(client: &Client, pod: &Pod) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    match api.get_opt(&pod.name_any()).await {
        Ok(Some(current)) => current.uid() == pod.uid(),
        Ok(None) => false,
        Err(_) => true,
    }
}
