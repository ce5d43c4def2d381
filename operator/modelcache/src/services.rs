//! Following LLMServices: the daemon caches the model of every LLMService it can see (all
//! namespaces, or one) and reports this node's copy in each such LLMService's
//! `status.cache` (bytes, size, rate, ETA, ready), and `status.modelCommit` once the model
//! is ready here.
//!
//! Every node writes its own entry of `status.cache`, so writes race: each is a replace of
//! the status carrying the `resourceVersion` it read, and a 409 reads again and retries,
//! so no node's entry (and none of the serving controller's fields) is lost. A spec the
//! serving controller would refuse is not cached: its fields are hostile until checked.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::TryStreamExt as _;
use kube::{
    Api, ResourceExt as _,
    api::PostParams,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use kubegrid_serving::{LLMService, ModelSource, NodeCache};

use crate::{
    daemon::{Daemon, Progress},
    error::{Error, Result},
};

/// What to follow and how often to report.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Only LLMServices in this namespace (default: every namespace).
    pub namespace: Option<String>,
    /// The least time between two reports of one LLMService's entry while copying.
    pub report_every: Duration,
    /// Models (URIs) cached whatever the LLMServices say (`--model`): never forgotten.
    pub keep: Vec<String>,
}

/// Caches the model of every valid LLMService and reports progress, until the watch ends
/// for good (it retries with backoff on its own) or the task is dropped.
pub async fn follow(daemon: Arc<Daemon>, client: kube::Client, cfg: FollowConfig) -> Result<()> {
    let api: Api<LLMService> = match &cfg.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let wanting = Arc::clone(&daemon);
    let watch = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .try_for_each(move |svc| {
            want(&wanting, &svc);
            futures::future::ready(Ok(()))
        });
    let report = async {
        let mut rates = Rates::default();
        let mut tick = tokio::time::interval(cfg.report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The models asked for because an LLMService named them.
        let mut followed: HashMap<String, ModelSource> = HashMap::new();
        loop {
            tick.tick().await;
            let named: HashMap<String, ModelSource> = reader
                .state()
                .iter()
                .filter(|svc| svc.spec.validate().is_empty())
                .map(|svc| (svc.spec.model.uri.clone(), svc.spec.model.clone()))
                .collect();
            // A model no LLMService names any more is no longer in use here: it stays on
            // disk until the capacity needs its room.
            for (uri, model) in std::mem::replace(&mut followed, named.clone()) {
                if !named.contains_key(&uri) && !cfg.keep.contains(&uri) {
                    daemon.forget(&model).await;
                }
            }
            for svc in reader.state() {
                if let Err(e) = report(&daemon, &client, &svc, &mut rates).await {
                    tracing::warn!(llmservice = %key(&svc), "{e}");
                }
            }
        }
    };
    tokio::select! {
        ended = watch => ended.map_err(|e| Error::WatchServices(e.to_string())),
        () = report => Ok(()),
    }
}

fn key(svc: &LLMService) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Starts caching `svc`'s model, when its spec passes the serving controller's checks.
fn want(daemon: &Daemon, svc: &LLMService) {
    let problems = svc.spec.validate();
    if problems.is_empty() {
        daemon.want(&svc.spec.model);
    } else {
        tracing::info!(
            llmservice = %key(svc),
            problems = problems.len(),
            "not caching the model of a refused spec"
        );
    }
}

/// How long bytes may stand still before the rate reads 0.
const STALLED: Duration = Duration::from_secs(30);

/// Bytes seen at a time, per model, for the rate.
#[derive(Default)]
struct Rates(HashMap<String, (Instant, u64, u64)>);

impl Rates {
    /// Bytes per second between the last two changes of `bytes`; 0 once nothing changed
    /// for [`STALLED`].
    fn rate(&mut self, model: &str, bytes: u64) -> u64 {
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

/// Writes this node's entry into `svc`'s status when it changed.
async fn report(
    daemon: &Daemon,
    client: &kube::Client,
    svc: &LLMService,
    rates: &mut Rates,
) -> Result<()> {
    let Some(progress) = daemon.progress(&svc.spec.model) else {
        return Ok(());
    };
    let node = daemon.node();
    let rate = rates.rate(&svc.spec.model.uri, progress.bytes);
    let mine = entry(node, &progress, rate);
    let status = svc.status.clone().unwrap_or_default();
    let current = status.cache.iter().find(|c| c.node == node);
    let commit_known = progress.commit.is_none() || status.model_commit.is_some();
    if current == Some(&mine) && commit_known {
        return Ok(());
    }
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<LLMService> = Api::namespaced(client.clone(), &ns);
    let name = svc.name_any();
    for _ in 0..ATTEMPTS {
        // The freshest object: its resourceVersion makes the replace lose rather than
        // overwrite when another node or the controller wrote in between.
        let mut fresh = api.get_status(&name).await.map_err(|source| Error::Kube {
            action: format!("read LLMService {ns}/{name}"),
            source,
        })?;
        let status = fresh.status.get_or_insert_with(Default::default);
        status.cache.retain(|c| c.node != node);
        status.cache.push(mine.clone());
        status.cache.sort_by(|a, b| a.node.cmp(&b.node));
        if status.model_commit.is_none() {
            status.model_commit.clone_from(&progress.commit);
        }
        match api
            .replace_status(&name, &PostParams::default(), &fresh)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("write the status of LLMService {ns}/{name}"),
                    source,
                });
            }
        }
    }
    Err(Error::Contended {
        service: format!("{ns}/{name}"),
        attempts: ATTEMPTS,
    })
}
