//! The coordinator's part: resolve the model, download each file the node lacks from the
//! source, verify it and seed it. A file of more than one piece is published piece by piece
//! while it downloads (`grow`), so followers copy it a few pieces behind the coordinator;
//! a smaller one is published once verified.

use std::sync::Arc;

use kubegrid_fanout::{PeerAddr, PieceManifest, default_piece_size};
use kubegrid_serving::{ModelSource, ModelUri};
use tokio::sync::watch;

use super::{
    Shared,
    control::{Published, PublishedFile},
};
use crate::{
    error::{Error, Result},
    hub::{Check, Resolved},
    layout::ModelDir,
};

/// Coordinates `model` at `epoch` until the task is dropped (leadership lost). Returns only
/// on failure; once every file is published it keeps answering followers.
pub(super) async fn run(
    shared: &Shared,
    model: &ModelSource,
    dir: &ModelDir,
    epoch: i32,
    ready: &watch::Sender<Option<String>>,
) -> Result<()> {
    let key = kubegrid_serving::names::cache_key(&model.uri);
    let publisher = shared.board.publisher(&key);
    let me = PeerAddr {
        id: shared.cfg.node.clone(),
        addr: shared.fanout.addr(),
    };
    if let Some((commit, files)) = super::follow::local_copy(dir) {
        // A verified copy is here already (this node followed, or coordinated before a
        // restart): seed it and publish it whole; the source is not asked again.
        for f in &files {
            seed(shared, &f.manifest, &dir.file(&commit, &f.path))?;
        }
        let size = files.iter().map(|f| f.manifest.size).sum();
        shared.metrics.size(&model.uri, size);
        shared.metrics.cached(&model.uri, size);
        publisher.send_replace(Some(Published {
            epoch,
            coordinator: shared.identity(),
            commit,
            seed: me.addr,
            files,
            complete: true,
            size,
            peers: vec![me],
            version: shared.board.next_version(),
            files_from: 0,
        }));
        return std::future::pending().await;
    }
    let resolved = resolve(shared, model).await?;
    shared.make_room(&key, resolved.size())?;
    shared.metrics.size(&model.uri, resolved.size());
    publisher.send_replace(Some(Published {
        epoch,
        coordinator: shared.identity(),
        commit: resolved.commit.clone(),
        seed: me.addr,
        files: Vec::new(),
        complete: false,
        size: resolved.size(),
        peers: vec![me],
        version: shared.board.next_version(),
        files_from: 0,
    }));
    tracing::info!(model = %model.uri, commit = %resolved.commit, epoch, files = resolved.files.len(), "coordinating");
    let mut published = Vec::new();
    // Bytes of the files before the one under way, all verified.
    let mut done = 0;
    for file in &resolved.files {
        let dest = dir.file(&resolved.commit, &file.path);
        let mut grown = None;
        if !dest.exists() {
            let from_store = match &file.check {
                Check::Sha256(sha) => super::follow::link_from_store(dir, sha, &dest)?,
                Check::GitSha1(_) => false,
            };
            if !from_store {
                let copied = match &file.check {
                    Check::Sha256(sha) => {
                        super::resume::head_start(shared, dir, sha, &dest).await?
                    }
                    Check::GitSha1(_) => 0,
                };
                // Where the source is asked from: the `.part` a download left, or the
                // pieces copied as a follower.
                let from_byte =
                    std::fs::metadata(crate::hub::part_path(&dest)).map_or(0, |m| m.len());
                tracing::info!(model = %model.uri, file = %file.path, from_byte, copied_as_follower = copied, "downloading");
                let downloaded = match &file.check {
                    // More than one piece: followers copy it while it downloads.
                    Check::Sha256(sha)
                        if !shared.cfg.whole_files && file.size > default_piece_size(file.size) =>
                    {
                        let (downloaded, manifest) = super::grow::download(
                            shared, model, &resolved, file, sha, &dest, done, &publisher,
                        )
                        .await?;
                        grown = Some(manifest);
                        downloaded
                    }
                    _ => {
                        let progress = |bytes| shared.metrics.cached(&model.uri, done + bytes);
                        shared
                            .cfg
                            .hub
                            .download(&resolved, file, &dest, &progress)
                            .await?
                    }
                };
                shared
                    .counters
                    .add(&shared.counters.from_source, downloaded.fetched);
                shared
                    .metrics
                    .add_source_bytes(&model.uri, downloaded.fetched);
            }
        }
        done += file.size;
        shared.metrics.cached(&model.uri, done);
        let manifest = match grown {
            // Published and seeded piece by piece already.
            Some(manifest) => manifest,
            None => {
                let path = dest.clone();
                let size = file.size;
                let manifest = tokio::task::spawn_blocking(move || {
                    PieceManifest::build(&path, default_piece_size(size))
                })
                .await
                .map_err(|e| Error::Fanout(e.to_string()))?
                .map_err(|e| Error::Fanout(e.to_string()))?;
                seed(shared, &manifest, &dest)?;
                let entry = PublishedFile {
                    path: file.path.clone(),
                    manifest: manifest.clone(),
                };
                let version = shared.board.next_version();
                publisher.send_modify(|p| {
                    if let Some(p) = p {
                        p.files.push(entry);
                        p.version = version;
                    }
                });
                manifest
            }
        };
        published.push(PublishedFile {
            path: file.path.clone(),
            manifest,
        });
    }
    super::follow::save_local_copy(dir, &resolved.commit, &published)?;
    dir.mark_ready(&resolved.commit)?;
    let version = shared.board.next_version();
    publisher.send_modify(|p| {
        if let Some(p) = p {
            p.complete = true;
            p.version = version;
        }
    });
    shared.made_ready(model, ready, &resolved.commit);
    tracing::info!(model = %model.uri, commit = %resolved.commit, epoch, "ready; seeding");
    std::future::pending().await
}

fn seed(shared: &Shared, manifest: &PieceManifest, path: &std::path::Path) -> Result<()> {
    shared
        .fanout
        .seed(Arc::new(manifest.clone()), path)
        .map_err(|e| Error::Fanout(e.to_string()))
}

async fn resolve(shared: &Shared, model: &ModelSource) -> Result<Resolved> {
    let uri = ModelUri::parse(&model.uri).map_err(|e| Error::Source {
        uri: model.uri.clone(),
        problem: e.to_string(),
    })?;
    let hub = &shared.cfg.hub;
    let resolved = match uri {
        ModelUri::HuggingFace {
            org,
            name,
            revision,
        } => hub.resolve(&org, &name, &revision, &model.files).await?,
        ModelUri::Https { url } => hub.resolve_url(&url, &model.files).await?,
        ModelUri::S3 { bucket, prefix } => hub.resolve_s3(&bucket, &prefix, &model.files).await?,
        ModelUri::Pvc { .. } => {
            return Err(Error::Source {
                uri: model.uri.clone(),
                problem: "a pvc:// model is mounted from its claim by each serving pod and never cached on nodes".into(),
            });
        }
    };
    if let Some(limit) = model
        .size_limit
        .as_deref()
        .and_then(crate::evict::parse_quantity)
        && resolved.size() > limit
    {
        return Err(Error::TooLarge {
            size: resolved.size(),
            repo: resolved.repo,
            commit: resolved.commit,
            limit,
        });
    }
    Ok(resolved)
}
