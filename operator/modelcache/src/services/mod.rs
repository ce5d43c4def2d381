//! Following LLMServices and ModelPrewarms: the daemon caches the model of every LLMService
//! it can see (all namespaces, or one) and of every ModelPrewarm whose `nodeSelector` its
//! node matches, and reports this node's copy in each one's `status.cache` (bytes, size,
//! rate, ETA, ready), and `status.modelCommit` once the model is ready here (see
//! [`status`]). A spec the serving layer would refuse is not cached: its fields are hostile
//! until checked. A model nothing names any more is forgotten: its task ends and its copy
//! stays, evictable. The node carries `cache.serving.kubegrid.io/<key>=ready` for each model
//! it holds ready and is asked for, which serving pods prefer.

mod status;

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use kubegrid_serving::{LLMService, ModelPrewarm, ModelSource, names::CACHED_LABEL_PREFIX};
use serde::de::DeserializeOwned;

use crate::{daemon::Daemon, error::Result};
pub use status::Names;
use status::{Rates, report};

/// What to follow and how often to report.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Only LLMServices and ModelPrewarms in this namespace (default: every namespace).
    pub namespace: Option<String>,
    /// The least time between two reports of one resource's entry while copying.
    pub report_every: Duration,
    /// Models (URIs) cached whatever the resources say (`--model`): never forgotten.
    pub keep: Vec<String>,
}

/// A watched store of `K`, kept up to date until the returned future is dropped; watch
/// errors (an API server away, a CRD not installed yet) are logged and retried with backoff.
fn watched<K>(
    client: &kube::Client,
    namespace: Option<&str>,
) -> (reflector::Store<K>, impl Future<Output = ()> + use<K>)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let watch = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(kind = %K::kind(&()), "watch: {e}; retrying");
            }
            futures::future::ready(())
        });
    (reader, watch)
}

/// This node's labels; none when the Node cannot be read (then only ModelPrewarms without
/// a `nodeSelector` select it).
async fn node_labels(client: &kube::Client, node: &str) -> BTreeMap<String, String> {
    match Api::<Node>::all(client.clone()).get_opt(node).await {
        Ok(Some(n)) => n.labels().clone(),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            tracing::warn!(%node, "read this node's labels: {e}");
            BTreeMap::new()
        }
    }
}

/// Labels this node `cache.serving.kubegrid.io/<key>=ready` for each model it holds ready
/// and is asked for (serving pods prefer such nodes), and drops the label of any other model
/// (forgotten, so it may be evicted at any time).
async fn label_node(client: &kube::Client, daemon: &Daemon, labels: &BTreeMap<String, String>) {
    let ready: BTreeMap<String, String> = daemon
        .ready_keys()
        .into_iter()
        .map(|key| (format!("{CACHED_LABEL_PREFIX}{key}"), "ready".to_string()))
        .collect();
    let mut patch = serde_json::Map::new();
    for (k, v) in &ready {
        if labels.get(k) != Some(v) {
            patch.insert(k.clone(), v.clone().into());
        }
    }
    for k in labels.keys() {
        if k.starts_with(CACHED_LABEL_PREFIX) && !ready.contains_key(k) {
            patch.insert(k.clone(), serde_json::Value::Null);
        }
    }
    if patch.is_empty() {
        return;
    }
    let body = serde_json::json!({"metadata": {"labels": patch}});
    let api = Api::<Node>::all(client.clone());
    if let Err(e) = api
        .patch(daemon.node(), &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(node = %daemon.node(), "label the node with its cached models: {e}");
    }
}

/// Caches the model of every valid LLMService and every valid ModelPrewarm that selects this
/// node, and reports progress in their status, until the task is dropped.
pub async fn follow(daemon: Arc<Daemon>, client: kube::Client, cfg: FollowConfig) -> Result<()> {
    let ns = cfg.namespace.as_deref();
    let (services, watch_services) = watched::<LLMService>(&client, ns);
    let (prewarms, watch_prewarms) = watched::<ModelPrewarm>(&client, ns);
    let work = async {
        let mut rates = Rates::default();
        let mut tick = tokio::time::interval(cfg.report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The models asked for because a resource named them.
        let mut followed: HashMap<String, ModelSource> = HashMap::new();
        loop {
            tick.tick().await;
            let labels = node_labels(&client, daemon.node()).await;
            // A pvc:// model is mounted from its claim by each pod and never cached here.
            let services: Vec<_> = services
                .state()
                .into_iter()
                .filter(|s| s.valid() && !s.model().uri.starts_with("pvc://"))
                .collect();
            let prewarms: Vec<_> = prewarms
                .state()
                .into_iter()
                .filter(|p| p.valid() && p.spec.selects(&labels))
                .collect();
            let named: HashMap<String, ModelSource> = services
                .iter()
                .map(|s| s.model().clone())
                .chain(prewarms.iter().map(|p| p.model().clone()))
                .map(|m| (m.uri.clone(), m))
                .collect();
            for model in named.values() {
                daemon.want(model);
            }
            // A model nothing names any more is no longer in use here: it stays on disk
            // until the capacity needs its room.
            for (uri, model) in std::mem::replace(&mut followed, named.clone()) {
                if !named.contains_key(&uri) && !cfg.keep.contains(&uri) {
                    daemon.forget(&model).await;
                }
            }
            label_node(&client, &daemon, &labels).await;
            for svc in &services {
                if let Err(e) = report(&daemon, &client, svc.as_ref(), &mut rates).await {
                    tracing::warn!(llmservice = %svc.name_any(), "{e}");
                }
            }
            for p in &prewarms {
                if let Err(e) = report(&daemon, &client, p.as_ref(), &mut rates).await {
                    tracing::warn!(modelprewarm = %p.name_any(), "{e}");
                }
            }
        }
    };
    tokio::select! {
        () = watch_services => {}
        () = watch_prewarms => {}
        () = work => {}
    }
    Ok(())
}
