//! Growing blobs: peers copy pieces as the seed publishes their hashes, and complete only
//! once the last hash is published.

use std::sync::Arc;

use kubegrid_fanout::{Error, Node, PeerAddr, PieceManifest, Swarm};
use tokio::sync::watch;

use crate::harness::{RATE, Running, Watch, blob, config, options, peers, sha256_file, store};

/// Starts `node`'s download of the blob `feed` describes.
fn fetch_growing(
    id: String,
    node: Node,
    feed: watch::Receiver<Arc<PieceManifest>>,
    peers: Vec<PeerAddr>,
    seed: std::net::SocketAddr,
    watch: Arc<Watch>,
    store: Arc<tempfile::TempDir>,
) -> Running {
    let (keep, swarms) = watch::channel(Swarm {
        peers,
        me: id.clone(),
        seed: Some(seed),
    });
    // Sent once: the swarm stays as it is.
    drop(keep);
    fetch_in(id, node, feed, swarms, watch, store)
}

/// Starts `node`'s download of the blob `feed` describes from the swarm `swarms` carries.
fn fetch_in(
    id: String,
    node: Node,
    feed: watch::Receiver<Arc<PieceManifest>>,
    swarms: watch::Receiver<Swarm>,
    watch: Arc<Watch>,
    store: Arc<tempfile::TempDir>,
) -> Running {
    tokio::spawn(async move {
        let w = watch.clone();
        let report = node
            .fetch_growing(feed, swarms, store.path(), &options(), &move |ev| {
                w.record(&id, ev)
            })
            .await;
        (node, report, store)
    })
}

/// The manifest with the first `n` piece hashes of `whole`.
fn prefix(whole: &PieceManifest, n: usize) -> Arc<PieceManifest> {
    let mut m = PieceManifest::growing(&whole.sha256, whole.size, whole.piece_size);
    m.pieces = whole.pieces[..n].to_vec();
    Arc::new(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_copy_a_growing_blob_as_its_hashes_come_and_finish_only_with_the_last() {
    let b = blob(8 << 20);
    let whole = b.manifest.clone();
    let count = whole.piece_count();
    let seed = Node::start(config(RATE)).await.expect("seed");
    let grown = seed.seed_growing(
        prefix(&whole, 0),
        std::fs::File::open(&b.path).expect("open blob"),
    );
    let (feed, rx) = watch::channel(prefix(&whole, 0));
    let watch = Arc::new(Watch::default());
    let ps = peers(3, RATE).await;
    let running: Vec<Running> = ps
        .nodes
        .into_iter()
        .map(|(id, node)| {
            fetch_growing(
                id,
                node,
                rx.clone(),
                ps.swarm.clone(),
                seed.addr(),
                watch.clone(),
                store(),
            )
        })
        .collect();

    // Half the pieces: their hashes first, then the seed serves them.
    let half = count / 2;
    feed.send_replace(prefix(&whole, half as usize));
    for i in 0..half {
        grown.announce(i);
    }
    watch
        .until("every peer to hold the first half", |w| {
            (0..3).all(|i| w.held(&format!("peer-{i}")) >= half)
        })
        .await;
    assert!(
        (0..3).all(|i| watch.held(&format!("peer-{i}")) == half),
        "a peer holds a piece whose hash was not published"
    );

    // All but the last: every peer gets them and still waits for the last hash.
    feed.send_replace(prefix(&whole, count as usize - 1));
    for i in half..count - 1 {
        grown.announce(i);
    }
    watch
        .until("every peer to hold all but the last piece", |w| {
            (0..3).all(|i| w.held(&format!("peer-{i}")) >= count - 1)
        })
        .await;
    assert!(
        running.iter().all(|r| !r.is_finished()),
        "a download ended before the last piece's hash was published"
    );

    feed.send_replace(whole.clone());
    grown.announce(count - 1);
    for r in running {
        let (_, report, _store) = r.await.expect("join");
        let report = report.expect("fetch");
        assert_eq!(sha256_file(&report.path), whole.sha256);
        assert!(report.banned.is_empty(), "{report:?}");
    }
    let copies = seed.stats().bytes as f64 / whole.size as f64;
    eprintln!("growing seed sent {copies:.2} copies of the blob to 3 peers");
    assert!(copies < 1.5, "seed sent {copies:.2} copies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_whose_hashes_change_ends_the_download_with_an_error() {
    let b = blob(4 << 20);
    let whole = b.manifest.clone();
    let seed = Node::start(config(RATE)).await.expect("seed");
    let grown = seed.seed_growing(
        prefix(&whole, 0),
        std::fs::File::open(&b.path).expect("open blob"),
    );
    let (feed, rx) = watch::channel(prefix(&whole, 2));
    grown.announce(0);
    grown.announce(1);
    let ps = peers(1, RATE).await;
    let (id, node) = ps.nodes.into_iter().next().expect("a peer");
    let watch = Arc::new(Watch::default());
    let running = fetch_growing(id, node, rx, ps.swarm, seed.addr(), watch.clone(), store());
    // Under way with the first manifest before it changes.
    watch
        .until("the peer to hold the two published pieces", |w| {
            w.held("peer-0") >= 2
        })
        .await;
    let mut changed = (*prefix(&whole, 3)).clone();
    changed.pieces[0] = whole.pieces[1].clone();
    feed.send_replace(Arc::new(changed));
    let (_, report, _store) = running.await.expect("join");
    match report {
        Err(Error::BadManifest { blob, reason }) => {
            assert_eq!(blob, whole.sha256);
            assert!(reason.contains("changed under the download"), "{reason}");
        }
        other => panic!("expected a bad-manifest error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_peer_takes_the_pieces_it_held_once_their_hashes_come_again() {
    let b = blob(8 << 20);
    let whole = b.manifest.clone();
    let count = whole.piece_count();
    let half = count / 2;
    let seed = Node::start(config(RATE)).await.expect("seed");
    let grown = seed.seed_growing(
        prefix(&whole, 0),
        std::fs::File::open(&b.path).expect("open blob"),
    );
    for i in 0..count {
        grown.announce(i);
    }
    let kept = store();
    let watch = Arc::new(Watch::default());
    let (_feed, rx) = watch::channel(prefix(&whole, half as usize));
    let ps = peers(1, RATE).await;
    let (id, node) = ps.nodes.into_iter().next().expect("a peer");
    let first = fetch_growing(
        id,
        node,
        rx,
        ps.swarm,
        seed.addr(),
        watch.clone(),
        kept.clone(),
    );
    watch
        .until("the peer to hold the first half", |w| {
            w.held("peer-0") >= half
        })
        .await;
    // Aborting the task drops the node, as a killed peer's process would.
    first.abort();
    let _ = first.await;

    // Restarted while its seed (a new coordinator, say) knows no hash yet.
    let (feed, rx) = watch::channel(prefix(&whole, 0));
    let ps = peers(1, RATE).await;
    let (id, node) = ps.nodes.into_iter().next().expect("a peer");
    let restarted = Arc::new(Watch::default());
    let again = fetch_growing(id, node, rx, ps.swarm, seed.addr(), restarted.clone(), kept);
    restarted
        .until("the restarted peer to report", |w| {
            !w.events.lock().expect("events").is_empty()
        })
        .await;
    feed.send_replace(whole.clone());
    let (_, report, _store) = again.await.expect("join");
    let report = report.expect("fetch");
    assert_eq!(sha256_file(&report.path), whole.sha256);
    assert!(report.resumed_pieces >= half, "{report:?}");
    let fetched = report.from_seed + report.from_peers;
    assert!(
        fetched <= whole.size - u64::from(half) * whole.piece_size,
        "fetched {fetched} bytes again: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_takes_in_peers_that_join_its_swarm_after_it_started() {
    let b = blob(8 << 20);
    let whole = b.manifest.clone();
    let seed = Node::start(config(RATE)).await.expect("seed");
    seed.seed(whole.clone(), &b.path).expect("seed the blob");
    let (_feed, rx) = watch::channel(whole.clone());
    let watch = Arc::new(Watch::default());
    let ps = peers(3, RATE).await;
    let mut nodes = ps.nodes.into_iter();
    // The first peer starts alone: its swarm is itself, so its strip is every piece.
    let (first, node) = nodes.next().expect("a peer");
    let (swarm, swarms) = watch::channel(Swarm {
        peers: ps.swarm[..1].to_vec(),
        me: first.clone(),
        seed: Some(seed.addr()),
    });
    let mut running = vec![fetch_in(
        first.clone(),
        node,
        rx.clone(),
        swarms,
        watch.clone(),
        store(),
    )];
    watch
        .until("the first peer to hold a few pieces", |w| {
            w.held(&first) >= 2
        })
        .await;
    // The others join: the first peer hears of them while it still downloads.
    swarm.send_replace(Swarm {
        peers: ps.swarm.clone(),
        me: first.clone(),
        seed: Some(seed.addr()),
    });
    for (id, node) in nodes {
        running.push(fetch_growing(
            id,
            node,
            rx.clone(),
            ps.swarm.clone(),
            seed.addr(),
            watch.clone(),
            store(),
        ));
    }
    let mut reports = Vec::new();
    for r in running {
        let (_, report, _store) = r.await.expect("join");
        let report = report.expect("fetch");
        assert_eq!(sha256_file(&report.path), whole.sha256);
        reports.push(report);
    }
    // Its strip shrank to a third and it took the rest from the peers that joined, which it
    // could not have done with its first swarm (no peers in it).
    assert!(
        reports[0].from_peers > 0,
        "the first peer never fetched from the peers that joined: {:?}",
        reports[0]
    );
}
