//! The follower's part: find the coordinator through the Lease (watched, not read again and
//! again), refuse its answers when their epoch is below the Lease's, copy each published file
//! through the fan-out (the file under way while its piece hashes arrive), link it into the
//! commit's directory, and write the ready marker when all are there.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use futures::{StreamExt as _, stream::FuturesUnordered};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    runtime::{WatchStreamExt as _, watcher},
};
use kubegrid_fanout::{FetchEvent, FetchOptions, Swarm};
use kubegrid_lease::LeaseConfig;
use kubegrid_serving::ModelSource;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{
    Shared,
    control::{Join, Published, PublishedFile},
};
use crate::{
    error::{Error, Result},
    layout::ModelDir,
};

/// Where a node's fan-out keeps a model's blobs (the commit directories hard-link them).
pub(super) const STORE: &str = ".blobs";

/// The Lease's holder (when it names one) and epoch, once the watch has listed it.
type Seen = Option<(Option<String>, i32)>;

/// Follows until this node's copy is ready; then stays idle (the fan-out keeps serving it).
pub(super) async fn run(
    shared: &Shared,
    model: &ModelSource,
    dir: &ModelDir,
    lease: &LeaseConfig,
    ready: &watch::Sender<Option<String>>,
) -> Result<()> {
    if ready.borrow().is_some() {
        return std::future::pending().await;
    }
    let key = kubegrid_serving::names::cache_key(&model.uri);
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), &lease.namespace);
    // A watch, not a read every retry interval: every follower of every model would cost
    // the API server a read each interval, and a new holder is seen as soon as it writes.
    let (seen_tx, mut seen) = watch::channel(None);
    let _watch = super::AbortOnDrop(tokio::spawn(watch_lease(api, lease.name.clone(), seen_tx)));
    loop {
        // The holder, once the Lease names one.
        let (holder_name, epoch) = loop {
            if let Some((Some(holder), epoch)) = seen.borrow_and_update().as_ref() {
                break (holder.clone(), *epoch);
            }
            seen.changed().await.map_err(|_| Error::Kube {
                action: format!("watch Lease {}", lease.name),
                source: kube::Error::Service("the Lease's watch ended".into()),
            })?;
        };
        let Some(control) = holder_name.split_once('@').map(|(_, a)| a.to_string()) else {
            tracing::warn!(model = %model.uri, holder = %holder_name, "the Lease's holder names no control address; waiting for another");
            holder_changed(&mut seen, &holder_name).await;
            continue;
        };
        // The coordinator's answers feed the copy as they come; the copy keeps going from
        // peers while the coordinator is unreachable, and ends when the Lease moves on (its
        // verified pieces stay on disk for the next try).
        let (news, answers) = watch::channel(None);
        let poll = Poll {
            shared,
            model,
            key: &key,
            control: &control,
            epoch,
            seen: seen.clone(),
            retry: lease.retry_interval,
        };
        tokio::select! {
            polled = poll.run(&news) => polled?,
            copied = copy(shared, model, dir, answers) => {
                let commit = copied?;
                shared.made_ready(model, ready, &commit);
                tracing::info!(model = %model.uri, %commit, epoch, "ready");
                return Ok(());
            }
            () = holder_changed(&mut seen, &holder_name) => {
                tracing::info!(model = %model.uri, old = %holder_name, "the coordinator changed; following the new one");
            }
        }
        tokio::time::sleep(lease.retry_interval).await;
    }
}

/// The long poll of one coordinator's control API.
struct Poll<'a> {
    shared: &'a Shared,
    model: &'a ModelSource,
    key: &'a str,
    control: &'a str,
    /// The Lease's epoch when the coordinator was looked up: answers below it are refused.
    epoch: i32,
    /// The Lease as watched since: answers below a newer epoch seen there are refused too.
    seen: watch::Receiver<Seen>,
    retry: std::time::Duration,
}

impl Poll<'_> {
    /// Passes each answer of the coordinator to `news`; returns when the coordinator says
    /// it does not coordinate the model, or answers from an older epoch than the Lease's.
    async fn run(&self, news: &watch::Sender<Option<Published>>) -> Result<()> {
        let (shared, model, control) = (self.shared, self.model, self.control);
        let (mut have, mut since) = (0, 0);
        // The size room was last made for: each answer repeats it, and making room walks
        // the model root.
        let mut room_for = 0;
        loop {
            // `have` for a coordinator that predates `since` (it then publishes whole files).
            let url = format!(
                "http://{control}/v1/models/{}/join?have={have}&since={since}",
                self.key
            );
            let join = Join {
                id: shared.cfg.node.clone(),
                addr: shared.fanout.addr(),
            };
            let answer = shared
                .http
                .post(&url)
                .bearer_auth(&shared.cfg.token)
                .json(&join)
                .send()
                .await;
            let answer = match answer {
                Ok(a) if a.status().is_success() => a,
                Ok(a) => {
                    tracing::info!(model = %model.uri, %control, status = %a.status(), "the coordinator does not answer for the model");
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(model = %model.uri, %control, "the coordinator is unreachable: {e}");
                    tokio::time::sleep(self.retry).await;
                    continue;
                }
            };
            let answer: Published = answer.json().await.map_err(|e| Error::Coordinator {
                addr: control.to_string(),
                problem: e.to_string(),
            })?;
            let from = answer.files_from;
            let Some(published) = answer.merged_onto(news.borrow().as_ref()) else {
                return Err(Error::Coordinator {
                    addr: control.to_string(),
                    problem: format!(
                        "its answer starts at file {from}, after files this node was not told of"
                    ),
                });
            };
            let lease_epoch = match self.seen.borrow().as_ref() {
                Some((_, seen)) => self.epoch.max(*seen),
                None => self.epoch,
            };
            if published.epoch < lease_epoch {
                shared.counters.add(&shared.counters.stale_answers, 1);
                shared.metrics.stale_answer(&model.uri);
                tracing::warn!(
                    model = %model.uri,
                    coordinator = %published.coordinator,
                    answer_epoch = published.epoch,
                    lease_epoch,
                    "refused a coordinator answer from an older epoch"
                );
                return Ok(());
            }
            shared.metrics.epoch(&model.uri, published.epoch, false);
            shared.metrics.size(&model.uri, published.size);
            if published.size > 0 && published.size != room_for {
                shared.make_room(self.key, published.size)?;
                room_for = published.size;
            }
            have = published.whole_prefix();
            since = published.version;
            news.send_replace(Some(published));
        }
    }
}

/// Copies every published file as soon as it is published, while its manifest grows, and
/// marks the commit ready once the coordinator says every file is published; the commit.
/// Files copy side by side: a file waiting for its last piece (the coordinator publishes
/// its hash once the whole file verifies) does not hold up the next one's pieces.
async fn copy(
    shared: &Shared,
    model: &ModelSource,
    dir: &ModelDir,
    mut answers: watch::Receiver<Option<Published>>,
) -> Result<String> {
    // Verified bytes of each file, for the model's progress.
    let held = Mutex::new(Vec::new());
    let mut copies = FuturesUnordered::new();
    let (mut started, mut finished) = (0, 0);
    loop {
        let now = answers.borrow_and_update().clone();
        if let Some(p) = now {
            while started < p.files.len() {
                let copy = fetch(
                    shared,
                    model,
                    dir,
                    p.clone(),
                    started,
                    answers.clone(),
                    &held,
                );
                copies.push(copy);
                started += 1;
            }
            if p.complete && finished == p.files.len() {
                save_local_copy(dir, &p.commit, &p.files)?;
                dir.mark_ready(&p.commit)?;
                return Ok(p.commit);
            }
        }
        tokio::select! {
            Some(copied) = copies.next(), if !copies.is_empty() => {
                copied?;
                finished += 1;
            }
            changed = answers.changed() => changed
                .map_err(|_| Error::Fanout("the coordinator's answers ended".into()))?,
        }
    }
}

/// Records that file `i` holds `bytes` verified bytes, and the model's sum in the metrics.
fn progress(shared: &Shared, model: &ModelSource, held: &Mutex<Vec<u64>>, i: usize, bytes: u64) {
    let mut held = held.lock().expect("progress lock");
    if held.len() <= i {
        held.resize(i + 1, 0);
    }
    held[i] = bytes;
    shared.metrics.cached(&model.uri, held.iter().sum());
}

/// Keeps `seen` at the holder and epoch of the Lease `name`, from a watch on it. While the
/// API server is unreachable the watch retries with backoff and `seen` keeps what it last
/// showed, as a follower keeps its coordinator until it learns of another.
async fn watch_lease(api: Api<Lease>, name: String, seen: watch::Sender<Seen>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    // Whether the listing under way has shown the Lease: a listing without it means none.
    let mut listed = false;
    while let Some(event) = events.next().await {
        let lease = match event {
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(lease)) => {
                listed = true;
                Some(lease)
            }
            Ok(watcher::Event::InitDone) if listed => continue,
            Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => None,
            Ok(watcher::Event::Apply(lease)) => Some(lease),
            Err(e) => {
                tracing::debug!(lease = %name, "watching the Lease: {e}");
                continue;
            }
        };
        let spec = lease.and_then(|l| l.spec).unwrap_or_default();
        let now = (
            spec.holder_identity.filter(|h| !h.is_empty()),
            spec.lease_transitions.unwrap_or(0),
        );
        // Renewals change only the renew time: no wake-up for them.
        seen.send_if_modified(|s| {
            let changed = s.as_ref() != Some(&now);
            if changed {
                *s = Some(now);
            }
            changed
        });
    }
}

/// Completes once the Lease names another holder than `holder` (or none), or its watch ends.
async fn holder_changed(seen: &mut watch::Receiver<Seen>, holder: &str) {
    let _ = seen
        .wait_for(|s| !matches!(s, Some((Some(h), _)) if h == holder))
        .await;
}

/// Copies file `i` of `published` through the fan-out, its manifest following later
/// answers while it grows; `held` tracks each file's verified bytes.
async fn fetch(
    shared: &Shared,
    model: &ModelSource,
    dir: &ModelDir,
    published: Published,
    i: usize,
    mut answers: watch::Receiver<Option<Published>>,
    held: &Mutex<Vec<u64>>,
) -> Result<()> {
    let file = &published.files[i];
    let dest = dir.file(&published.commit, &file.path);
    if dest.exists() {
        progress(shared, model, held, i, file.manifest.size);
        return Ok(());
    }
    let store = dir.path().join(STORE);
    let (manifests, feed) = watch::channel(Arc::new(file.manifest.clone()));
    super::resume::copying(shared, &manifests.borrow());
    // Followers that join later are in later answers: the copy takes them in as they come,
    // or the strips each follower takes from the seed would be cut over different swarms
    // and leave pieces nobody takes until the end.
    let (swarms, swarm) = watch::channel(swarm_of(shared, &published));
    let follow_answers = async {
        while answers.changed().await.is_ok() {
            // Only this file's manifest, and only when it changed, is copied out of the
            // answer: every published piece brings one, and the answer holds every file's.
            let (manifest, grown) = {
                let next = answers.borrow_and_update();
                let Some(next) = next.as_ref() else {
                    continue;
                };
                let manifest = next
                    .files
                    .get(i)
                    .filter(|f| **manifests.borrow() != f.manifest)
                    .map(|f| Arc::new(f.manifest.clone()));
                (manifest, swarm_of(shared, next))
            };
            if let Some(m) = manifest {
                super::resume::copying(shared, &m);
                manifests.send_replace(m);
            }
            swarms.send_if_modified(|s| {
                let changed = *s != grown;
                if changed {
                    *s = grown;
                }
                changed
            });
        }
        std::future::pending::<()>().await;
    };
    let options = FetchOptions::default();
    let events = |event| {
        if let FetchEvent::Progress { bytes, .. } = event {
            progress(shared, model, held, i, bytes);
        }
    };
    let copying = shared
        .fanout
        .fetch_growing(feed, swarm, &store, &options, &events);
    let report = tokio::select! {
        report = copying => report.map_err(|e| Error::Fanout(e.to_string()))?,
        () = follow_answers => unreachable!("follows until the copy ends"),
    };
    super::resume::copied(shared, &file.manifest.sha256);
    let copied = report.from_seed + report.from_peers;
    shared.counters.add(&shared.counters.from_peers, copied);
    shared.metrics.add_peer_bytes(&model.uri, copied);
    link(&report.path, &dest)?;
    progress(shared, model, held, i, file.manifest.size);
    tracing::info!(
        file = %file.path,
        resumed_pieces = report.resumed_pieces,
        from_seed = report.from_seed,
        from_peers = report.from_peers,
        seconds = report.seconds,
        "copied"
    );
    Ok(())
}

/// The swarm a published model spreads through.
fn swarm_of(shared: &Shared, published: &Published) -> Swarm {
    // The coordinator is the seed, not one of the peers: listed as a peer too, it would hold
    // every new piece alone, so every follower would ask it for the same piece at once
    // instead of each taking its strip of the pieces from the seed and passing it on.
    Swarm {
        peers: published
            .peers
            .iter()
            .filter(|p| p.addr != published.seed)
            .cloned()
            .collect(),
        me: shared.cfg.node.clone(),
        seed: Some(published.seed),
    }
}

/// Links the blob `sha256` from the node's fan-out store to `dest`, when the store has it
/// whole; whether it did.
pub(super) fn link_from_store(dir: &ModelDir, sha256: &str, dest: &Path) -> Result<bool> {
    let blob = kubegrid_fanout::store::stored_path(&dir.path().join(STORE), sha256);
    if !blob.exists() {
        return Ok(false);
    }
    link(&blob, dest)?;
    Ok(true)
}

fn link(blob: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    }
    match std::fs::hard_link(blob, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("link", dest)(e)),
    }
}

/// What a node keeps beside a verified commit, to seed it again without the source.
#[derive(Serialize, Deserialize)]
struct LocalCopy {
    commit: String,
    files: Vec<PublishedFile>,
}

fn local_copy_path(dir: &ModelDir) -> std::path::PathBuf {
    dir.path().join("manifest.json")
}

/// Records `files` of `commit` as verified on this node.
pub(super) fn save_local_copy(dir: &ModelDir, commit: &str, files: &[PublishedFile]) -> Result<()> {
    let path = local_copy_path(dir);
    let staged = dir.path().join(".manifest.json.new");
    let text = serde_json::to_vec(&LocalCopy {
        commit: commit.into(),
        files: files.to_vec(),
    })
    .map_err(|e| Error::io("encode", &path)(std::io::Error::other(e)))?;
    std::fs::write(&staged, text).map_err(Error::io("write", &staged))?;
    std::fs::rename(&staged, &path).map_err(Error::io("rename", &staged))
}

/// The ready commit on this node and its files, when its record and every file are there.
pub(super) fn local_copy(dir: &ModelDir) -> Option<(String, Vec<PublishedFile>)> {
    let ready = dir.ready_commit()?;
    let copy: LocalCopy =
        serde_json::from_slice(&std::fs::read(local_copy_path(dir)).ok()?).ok()?;
    (copy.commit == ready
        && copy
            .files
            .iter()
            .all(|f| dir.file(&ready, &f.path).exists()))
    .then_some((copy.commit, copy.files))
}
