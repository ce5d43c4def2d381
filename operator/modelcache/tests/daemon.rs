//! The node daemon's coordination: one download per file, failover at a higher epoch,
//! stale answers refused, a follower's resume, a corrupt source, a file copied while it
//! downloads (setup in `common`).

mod common;

use std::sync::atomic::Ordering;

use sha2::Digest as _;

use common::{Bed, COMMIT, PATIENCE, SHARD, URI, ready, sample, until_metric};
use kubegrid_modelcache::{daemon::Daemon, layout::ModelDir};
use kubegrid_serving::ModelSource;

#[tokio::test]
async fn one_coordinator_downloads_each_file_once_and_every_node_ends_verified() {
    let bed = Bed::new().await;
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        daemons.push(bed.daemon(n).await);
    }
    let model = bed.model();
    let (a, b, c) = tokio::join!(
        ready(&daemons[0], &model),
        ready(&daemons[1], &model),
        ready(&daemons[2], &model)
    );
    assert_eq!([a, b, c], [COMMIT; 3].map(String::from));
    for n in nodes {
        bed.assert_copy(n);
    }
    let log = bed.hub.log();
    assert_eq!(
        log.len(),
        bed.files.len(),
        "one hub request per file: {log:?}"
    );
    assert_eq!(bed.hub.egress(), bed.size(), "hub egress = 1.0 × the model");
    let from_source: Vec<u64> = daemons
        .iter()
        .map(|d| d.counters().from_source.load(Ordering::Relaxed))
        .collect();
    assert_eq!(
        from_source.iter().filter(|b| **b > 0).count(),
        1,
        "only the coordinator asks the hub: {from_source:?}"
    );
    assert_eq!(from_source.iter().sum::<u64>(), bed.size());
    let (coordinator, epoch) = bed.holder().unwrap();
    assert_eq!(epoch, 0);
    for (n, d) in nodes.iter().zip(&daemons) {
        let peers = d.counters().from_peers.load(Ordering::Relaxed);
        if *n == coordinator {
            assert_eq!(peers, 0);
        } else {
            assert_eq!(peers, bed.size(), "{n} copied everything in-cluster");
        }
    }
    // Each follower learnt its coordinator from a watch on the model's Lease, by name; it
    // did not read the Lease again and again (its election still reads it, as candidates do).
    let lease = kubegrid_modelcache::daemon::lease_name(&kubegrid_serving::names::cache_key(URI));
    let requests = bed.fake.state().client_requests.clone();
    for n in nodes.iter().filter(|n| **n != coordinator) {
        let watches = requests
            .iter()
            .filter(|(client, r)| {
                client == n
                    && r.starts_with(
                        "GET /apis/coordination.k8s.io/v1/namespaces/kubegrid-system/leases?",
                    )
                    && r.contains("watch=true")
                    && r.contains(&lease)
            })
            .count();
        assert!(watches >= 1, "{n} watches {lease}: {requests:#?}");
    }
}

#[tokio::test]
async fn a_killed_coordinator_is_replaced_at_a_higher_epoch_that_resumes_without_refetching() {
    let bed = Bed::new().await;
    // 4 MiB/s: the 6 MiB of shards take about 1.5 s, long enough to kill mid-way.
    bed.hub.limit_rate(Some(4 << 20));
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        daemons.push(Some(bed.daemon(n).await));
    }
    let model = bed.model();
    for d in daemons.iter().flatten() {
        d.want(&model);
    }
    // Kill the coordinator once it is half-way through the second shard.
    tokio::time::timeout(PATIENCE, bed.hub.wait_sent((SHARD + SHARD / 2) as u64))
        .await
        .unwrap();
    let (killed, _) = bed.holder().unwrap();
    let index = nodes.iter().position(|n| *n == killed).unwrap();
    daemons[index] = None;
    let survivors: Vec<&Daemon> = daemons.iter().flatten().collect();
    for d in &survivors {
        assert_eq!(ready(d, &model).await, COMMIT);
    }
    let (coordinator, epoch) = bed.holder().unwrap();
    assert_ne!(coordinator, killed);
    assert_eq!(epoch, 1, "the new coordinator's epoch is higher");
    for n in nodes.iter().filter(|n| **n != killed) {
        bed.assert_copy(n);
    }
    // Per file, the hub sent its bytes once, plus at most what the killed download had got.
    for (path, bytes) in &bed.files {
        let requests: Vec<_> = bed
            .hub
            .log()
            .into_iter()
            .filter(|a| &a.path == path)
            .collect();
        let sent: u64 = requests.iter().map(|a| a.sent).sum();
        let interrupted: u64 = requests
            .iter()
            .filter(|a| a.start + a.sent < bytes.len() as u64)
            .map(|a| a.sent)
            .sum();
        assert!(
            sent <= bytes.len() as u64 + interrupted,
            "{path}: {requests:?}"
        );
        assert!(
            interrupted == 0 || requests.len() == 2,
            "{path}: {requests:?}"
        );
    }
}

/// A stand-in for a coordinator that lost its Lease without knowing it: it answers every
/// join with its old epoch. Counts the answers it gave.
async fn stale_coordinator(
    epoch: i32,
) -> (std::net::SocketAddr, tokio::sync::watch::Receiver<u32>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    let body = serde_json::json!({
        "epoch": epoch, "coordinator": format!("gpu-old@{addr}"), "commit": COMMIT,
        "seed": "127.0.0.1:9", "files": [], "complete": false, "peers": [],
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-kubegrid-epoch: {epoch}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
            tx.send_modify(|n| *n += 1);
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn answers_from_an_older_epoch_than_the_leases_are_refused() {
    let bed = Bed::new().await;
    let (addr, mut answered) = stale_coordinator(2).await;
    // The Lease moved on to epoch 3 (held by a node that has not answered yet), but its
    // holder record still points at the old coordinator's address, as a follower may read
    // it in between; the old one answers at epoch 2.
    let key = kubegrid_serving::names::cache_key(URI);
    bed.fake.put(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": kubegrid_modelcache::daemon::lease_name(&key), "namespace": "kubegrid-system"},
        "spec": {
            "holderIdentity": format!("gpu-old@{addr}"),
            "leaseTransitions": 3,
            "leaseDurationSeconds": 3600,
            "renewTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        },
    }));
    let follower = bed.daemon("gpu-b").await;
    follower.want(&bed.model());
    tokio::time::timeout(PATIENCE, answered.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    follower
        .counters()
        .wait_until(|c| c.stale_answers.load(Ordering::Relaxed) >= 2)
        .await;
    let dir = ModelDir::new(&bed.root("gpu-b"), URI);
    assert_eq!(
        dir.ready_commit(),
        None,
        "nothing taken from a stale coordinator"
    );
    assert_eq!(follower.counters().from_peers.load(Ordering::Relaxed), 0);
    assert!(bed.hub.log().is_empty());
}

#[tokio::test]
async fn a_follower_restarted_mid_copy_resumes_with_what_it_had() {
    let bed = Bed::new().await;
    let coordinator = bed.daemon("gpu-a").await;
    let model = bed.model();
    assert_eq!(ready(&coordinator, &model).await, COMMIT);
    let first = bed.daemon_limited("gpu-b", 2 << 20).await;
    first.want(&model);
    // One 2 MiB shard copied (about a second at 2 MiB/s), then the daemon dies.
    tokio::time::timeout(
        PATIENCE,
        first
            .counters()
            .wait_until(|c| c.from_peers.load(Ordering::Relaxed) >= SHARD as u64),
    )
    .await
    .unwrap();
    // Its progress shows what it holds, short of ready.
    let text = first.metrics().render();
    let cached = sample(&text, "kubegrid_model_cache_cached_bytes", "gpu-b").unwrap();
    assert!(
        (SHARD as f64..bed.size() as f64).contains(&cached),
        "{cached}:\n{text}"
    );
    assert_eq!(
        sample(&text, "kubegrid_model_cache_ready", "gpu-b"),
        Some(0.0)
    );
    drop(first);
    let second = bed.daemon("gpu-b").await;
    assert_eq!(ready(&second, &model).await, COMMIT);
    bed.assert_copy("gpu-b");
    let again = second.counters().from_peers.load(Ordering::Relaxed);
    assert!(
        again <= bed.size() - SHARD as u64,
        "copied {again} of {} again",
        bed.size()
    );
    assert_eq!(bed.hub.egress(), bed.size(), "the hub sent the model once");
}

#[tokio::test]
async fn a_corrupt_file_at_the_source_is_refused_and_no_node_marks_the_model_ready() {
    corrupt_shard_refused(SHARD).await;
}

#[tokio::test]
async fn a_corrupt_file_published_piece_by_piece_is_completed_by_no_node() {
    // 12 MiB: published piece by piece, the last piece's hash withheld until it verifies.
    corrupt_shard_refused(12 << 20).await;
}

async fn corrupt_shard_refused(shard: usize) {
    let bed = Bed::with_shards(shard).await;
    bed.hub.corrupt("model-00001-of-00003.safetensors");
    let nodes = ["gpu-a", "gpu-b", "gpu-c"];
    let mut daemons = Vec::new();
    for n in nodes {
        let d = bed.daemon(n).await;
        d.want(&bed.model());
        daemons.push(d);
    }
    // The coordinator's first attempt fails on the corrupt shard.
    let coordinator_failed = daemons.iter().map(|d| {
        d.counters()
            .wait_until(|c| c.failures.load(Ordering::Relaxed) >= 1)
    });
    tokio::time::timeout(PATIENCE, futures_select(coordinator_failed.collect()))
        .await
        .unwrap();
    for n in nodes {
        let dir = ModelDir::new(&bed.root(n), URI);
        assert_eq!(dir.ready_commit(), None, "{n} marked nothing ready");
        assert!(!dir.path().join("current").exists());
        let path = dir.file(COMMIT, "model-00001-of-00003.safetensors");
        assert!(!path.exists(), "{n}: the corrupt shard got no name");
        // Nor does any node's fan-out store hold a blob under the shard's sha256.
        let listed = hex::encode(sha2::Sha256::digest(&bed.files[1].1));
        let stored = dir.path().join(".blobs").join(&listed);
        assert!(!stored.exists(), "{n}: {} exists", stored.display());
    }
}

/// Completes when the first of `futures` does.
async fn futures_select<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    futures::future::select_all(futures).await;
}

/// Shards of three 4 MiB pieces, so each is published piece by piece.
const PIECED_SHARD: usize = 12 << 20;

/// A coordinator `gpu-a` whose download the hub holds two pieces into the first shard, and
/// a follower `gpu-b` that has copied those two pieces.
async fn a_follower_two_pieces_into_a_held_download() -> (Bed, Daemon, Daemon, ModelSource) {
    let bed = Bed::with_shards(PIECED_SHARD).await;
    // The hub stops two pieces into the first shard: the coordinator cannot finish it.
    bed.hub.hold_after(9 << 20);
    let coordinator = bed.daemon("gpu-a").await;
    let model = bed.model();
    coordinator.want(&model);
    tokio::time::timeout(PATIENCE, bed.hub.wait_sent(9 << 20))
        .await
        .unwrap();
    let follower = bed.daemon("gpu-b").await;
    follower.want(&model);
    until_metric(
        &follower,
        "kubegrid_model_cache_cached_bytes",
        "gpu-b",
        (8 << 20) as f64,
    )
    .await;
    (bed, coordinator, follower, model)
}

#[tokio::test]
async fn followers_copy_a_file_while_the_coordinator_still_downloads_it() {
    let (bed, coordinator, follower, model) = a_follower_two_pieces_into_a_held_download().await;
    let shard = PIECED_SHARD;
    let text = follower.metrics().render();
    let cached = sample(&text, "kubegrid_model_cache_cached_bytes", "gpu-b").unwrap();
    assert!(
        bed.hub.egress() < shard as u64 && cached < shard as f64,
        "the follower holds {cached} bytes of a shard the hub sent {} bytes of",
        bed.hub.egress()
    );
    bed.hub.release();
    assert_eq!(ready(&follower, &model).await, COMMIT);
    assert_eq!(ready(&coordinator, &model).await, COMMIT);
    bed.assert_copy("gpu-a");
    bed.assert_copy("gpu-b");
    assert_eq!(bed.hub.egress(), bed.size(), "the hub sent the model once");
}

#[tokio::test]
async fn a_follower_that_takes_over_resumes_the_file_under_way_from_the_pieces_it_copied() {
    let (bed, coordinator, follower, model) = a_follower_two_pieces_into_a_held_download().await;
    // The coordinator goes mid-download; the follower takes the Lease and the hub goes on.
    drop(coordinator);
    bed.hub.release();
    assert_eq!(ready(&follower, &model).await, COMMIT);
    assert_eq!(bed.holder(), Some(("gpu-b".to_string(), 1)));
    bed.assert_copy("gpu-b");
    // The new coordinator asked the hub for the first shard from the end of the two pieces
    // it held, not from its first byte (the log's order is the order requests ended).
    let first = &bed.files[0].0;
    let requests: Vec<_> = bed
        .hub
        .log()
        .into_iter()
        .filter(|a| &a.path == first)
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let resumed = requests
        .iter()
        .find(|a| a.start > 0)
        .unwrap_or_else(|| panic!("no request resumed the shard: {requests:?}"));
    assert_eq!(resumed.start, 8 << 20, "{requests:?}");
    assert_eq!(
        resumed.sent,
        (PIECED_SHARD - (8 << 20)) as u64,
        "{requests:?}"
    );
}
