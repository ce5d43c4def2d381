//! The follower's part: find the coordinator through the Lease, refuse its answers when
//! their epoch is below the Lease's, copy each published file through the fan-out, link it
//! into the commit's directory, and write the ready marker when all are there.

use std::{path::Path, sync::Arc};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
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
const STORE: &str = ".blobs";

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
    loop {
        let (holder, epoch) = current(&api, &lease.name).await?;
        let Some((holder_name, control)) = holder.and_then(|h| {
            let control = h.split_once('@').map(|(_, a)| a.to_string())?;
            Some((h, control))
        }) else {
            tokio::time::sleep(lease.retry_interval).await;
            continue;
        };
        let mut have = 0;
        // The size room was last made for: each answer of a join repeats it, and making room
        // walks the model root.
        let mut room_for = 0;
        loop {
            let url = format!("http://{control}/v1/models/{key}/join?have={have}");
            let join = Join {
                id: shared.cfg.node.clone(),
                addr: shared.fanout.addr(),
            };
            let request = shared
                .http
                .post(&url)
                .bearer_auth(&shared.cfg.token)
                .json(&join)
                .send();
            let answer = tokio::select! {
                answer = request => answer,
                () = holder_changed(&api, &lease.name, &holder_name, lease.retry_interval) => break,
            };
            let answer = match answer {
                Ok(a) if a.status().is_success() => a,
                Ok(a) => {
                    tracing::info!(model = %model.uri, %control, status = %a.status(), "the coordinator does not answer for the model");
                    break;
                }
                Err(e) => {
                    tracing::debug!(model = %model.uri, %control, "the coordinator is unreachable: {e}");
                    break;
                }
            };
            let published: Published = answer.json().await.map_err(|e| Error::Coordinator {
                addr: control.clone(),
                problem: e.to_string(),
            })?;
            if published.epoch < epoch {
                shared.counters.add(&shared.counters.stale_answers, 1);
                shared.metrics.stale_answer(&model.uri);
                tracing::warn!(
                    model = %model.uri,
                    coordinator = %published.coordinator,
                    answer_epoch = published.epoch,
                    lease_epoch = epoch,
                    "refused a coordinator answer from an older epoch"
                );
                break;
            }
            shared.metrics.epoch(&model.uri, published.epoch, false);
            shared.metrics.size(&model.uri, published.size);
            if published.size > 0 && published.size != room_for {
                shared.make_room(&key, published.size)?;
                room_for = published.size;
            }
            // A fetch from a coordinator that died waits on its seed; the Lease moving on
            // ends it (its verified pieces stay on disk for the next try).
            let fetches = async {
                // Bytes of the files before the one under way, all verified.
                let mut done = 0;
                for (i, file) in published.files.iter().enumerate() {
                    if i >= have {
                        fetch(shared, model, dir, &published, file, done).await?;
                    }
                    done += file.manifest.size;
                    shared.metrics.cached(&model.uri, done);
                }
                Ok::<_, Error>(())
            };
            tokio::select! {
                done = fetches => done?,
                () = holder_changed(&api, &lease.name, &holder_name, lease.retry_interval) => {
                    tracing::info!(model = %model.uri, old = %published.coordinator, "the coordinator changed; following the new one");
                    break;
                }
            }
            have = published.files.len();
            if published.complete {
                save_local_copy(dir, &published.commit, &published.files)?;
                dir.mark_ready(&published.commit)?;
                shared.made_ready(model, ready, &published.commit);
                tracing::info!(model = %model.uri, commit = %published.commit, epoch = published.epoch, "ready");
                return Ok(());
            }
        }
        tokio::time::sleep(lease.retry_interval).await;
    }
}

/// The Lease's holder and epoch.
async fn current(api: &Api<Lease>, name: &str) -> Result<(Option<String>, i32)> {
    let lease = api.get_opt(name).await.map_err(|source| Error::Kube {
        action: format!("read Lease {name}"),
        source,
    })?;
    let spec = lease.and_then(|l| l.spec).unwrap_or_default();
    Ok((
        spec.holder_identity.filter(|h| !h.is_empty()),
        spec.lease_transitions.unwrap_or(0),
    ))
}

/// Completes once the Lease names another holder than `holder` (read every `every`).
async fn holder_changed(api: &Api<Lease>, name: &str, holder: &str, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Ok((now, _)) = current(api, name).await
            && now.as_deref() != Some(holder)
        {
            return;
        }
    }
}

/// Copies `file` through the fan-out; `done` bytes of the model are verified before it.
async fn fetch(
    shared: &Shared,
    model: &ModelSource,
    dir: &ModelDir,
    published: &Published,
    file: &PublishedFile,
    done: u64,
) -> Result<()> {
    let dest = dir.file(&published.commit, &file.path);
    if dest.exists() {
        return Ok(());
    }
    let swarm = Swarm {
        peers: published.peers.clone(),
        me: shared.cfg.node.clone(),
        seed: Some(published.seed),
    };
    let store = dir.path().join(STORE);
    let report = shared
        .fanout
        .fetch(
            Arc::new(file.manifest.clone()),
            &swarm,
            &store,
            &FetchOptions::default(),
            &|event| {
                if let FetchEvent::Progress { bytes, .. } = event {
                    shared.metrics.cached(&model.uri, done + bytes);
                }
            },
        )
        .await
        .map_err(|e| Error::Fanout(e.to_string()))?;
    let copied = report.from_seed + report.from_peers;
    shared.counters.add(&shared.counters.from_peers, copied);
    shared.metrics.add_peer_bytes(&model.uri, copied);
    link(&report.path, &dest)?;
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
