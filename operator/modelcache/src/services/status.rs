//! This node's entry in the `status.cache` of the resources that name a model (LLMService,
//! ModelPrewarm), and their `status.modelCommit`.
//!
//! Every node writes its own entry, so writes race: each is a replace of the status carrying
//! the `resourceVersion` it read, and a 409 reads again and retries, so no node's entry (and
//! none of the serving controller's fields) is lost.

use std::{
    collections::HashMap,
    fmt::Debug,
    time::{Duration, Instant},
};

use kube::{Api, ResourceExt as _, api::PostParams};
use kubegrid_serving::{LLMService, ModelPrewarm, ModelSource, NodeCache};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    daemon::{Daemon, Progress},
    error::{Error, Result},
};

/// A resource that names a model and carries the nodes' copies in its status.
pub trait Names:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The model it names.
    fn model(&self) -> &ModelSource;
    /// Whether its spec passes the serving layer's checks.
    fn valid(&self) -> bool;
    /// The entries of its `status.cache`.
    fn cache(&self) -> &[NodeCache];
    /// Its `status.modelCommit`.
    fn model_commit(&self) -> Option<&str>;
    /// Puts `mine` in place of this node's entry, and `commit` as `modelCommit` when unset.
    fn record(&mut self, mine: NodeCache, commit: Option<&str>);
}

fn put(cache: &mut Vec<NodeCache>, mine: NodeCache) {
    cache.retain(|c| c.node != mine.node);
    cache.push(mine);
    cache.sort_by(|a, b| a.node.cmp(&b.node));
}

/// The four reads both resources answer alike (their `spec.model`, `validate()` and
/// status fields have the same names).
macro_rules! names_reads {
    () => {
        fn model(&self) -> &ModelSource {
            &self.spec.model
        }
        fn valid(&self) -> bool {
            self.spec.validate().is_empty()
        }
        fn cache(&self) -> &[NodeCache] {
            self.status.as_ref().map_or(&[], |s| s.cache.as_slice())
        }
        fn model_commit(&self) -> Option<&str> {
            self.status.as_ref()?.model_commit.as_deref()
        }
    };
}

impl Names for LLMService {
    names_reads!();
    fn record(&mut self, mine: NodeCache, commit: Option<&str>) {
        let status = self.status.get_or_insert_with(Default::default);
        put(&mut status.cache, mine);
        if status.model_commit.is_none() {
            status.model_commit = commit.map(String::from);
        }
    }
}

impl Names for ModelPrewarm {
    names_reads!();
    fn record(&mut self, mine: NodeCache, commit: Option<&str>) {
        let status = self.status.get_or_insert_with(Default::default);
        put(&mut status.cache, mine);
        let ready = status.cache.iter().filter(|c| c.ready).count();
        status.ready_nodes = i32::try_from(ready).unwrap_or(i32::MAX);
        if status.model_commit.is_none() {
            status.model_commit = commit.map(String::from);
        }
    }
}

/// How long bytes may stand still before the rate reads 0.
const STALLED: Duration = Duration::from_secs(30);

/// Bytes seen at a time, per model, for the rate.
#[derive(Default)]
pub(super) struct Rates(HashMap<String, (Instant, u64, u64)>);

impl Rates {
    /// Bytes per second between the last two changes of `bytes`; 0 once nothing changed
    /// for [`STALLED`].
    pub(super) fn rate(&mut self, model: &str, bytes: u64) -> u64 {
        let now = Instant::now();
        let entry = self.0.entry(model.to_string()).or_insert((now, bytes, 0));
        if bytes == entry.1 && now.duration_since(entry.0) > STALLED {
            entry.2 = 0;
        } else if bytes != entry.1 {
            let seconds = now.duration_since(entry.0).as_secs_f64();
            // Float to integer: a rate of bytes per second; `as` saturates.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rate, bytes per second"
            )]
            let rate = if seconds > 0.0 {
                (bytes.saturating_sub(entry.1) as f64 / seconds) as u64
            } else {
                entry.2
            };
            *entry = (now, bytes, rate);
        }
        entry.2
    }
}

/// This node's entry for a copy.
fn entry(node: &str, p: &Progress, rate: u64) -> NodeCache {
    let ready = p.commit.is_some();
    let bytes = if ready { p.size.max(p.bytes) } else { p.bytes };
    let eta = (!ready && rate > 0).then(|| p.size.saturating_sub(bytes).div_ceil(rate));
    NodeCache {
        node: node.to_string(),
        bytes: as_i64(bytes),
        size: as_i64(p.size),
        bytes_per_second: if ready { 0 } else { as_i64(rate) },
        eta_seconds: eta.map(as_i64),
        ready,
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How many times a write that lost a race reads again.
const ATTEMPTS: usize = 8;

/// Writes this node's entry into `obj`'s status when it changed.
pub(super) async fn report<K: Names>(
    daemon: &Daemon,
    client: &kube::Client,
    obj: &K,
    rates: &mut Rates,
) -> Result<()> {
    let Some(progress) = daemon.progress(obj.model()) else {
        return Ok(());
    };
    let node = daemon.node();
    let rate = rates.rate(&obj.model().uri, progress.bytes);
    let mine = entry(node, &progress, rate);
    let current = obj.cache().iter().find(|c| c.node == node);
    let commit_known = progress.commit.is_none() || obj.model_commit().is_some();
    if current == Some(&mine) && commit_known {
        return Ok(());
    }
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let name = obj.name_any();
    let kind = K::kind(&());
    for _ in 0..ATTEMPTS {
        // The freshest object: its resourceVersion makes the replace lose rather than
        // overwrite when another node or the controller wrote in between.
        let mut fresh = api.get_status(&name).await.map_err(|source| Error::Kube {
            action: format!("read {kind} {ns}/{name}"),
            source,
        })?;
        fresh.record(mine.clone(), progress.commit.as_deref());
        match api
            .replace_status(&name, &PostParams::default(), &fresh)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("write the status of {kind} {ns}/{name}"),
                    source,
                });
            }
        }
    }
    Err(Error::Contended {
        service: format!("{kind} {ns}/{name}"),
        attempts: ATTEMPTS,
    })
}
