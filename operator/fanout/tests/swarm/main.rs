//! Real nodes on loopback with limited links: the blob reaches every peer, the seed sends
//! about one copy, and each fault the issue lists is handled.

mod growing;
mod harness;

use std::sync::Arc;

use harness::{PIECE, RATE, Running, Watch, blob, config, fetch, peers, sha256_file, store};
use kubegrid_fanout::{Error, FetchEvent, Node, PeerAddr, PieceManifest};

/// Starts a seed for `manifest`'s blob at `path`.
async fn seed(manifest: &Arc<PieceManifest>, path: &std::path::Path) -> Node {
    let seed = Node::start(config(RATE)).await.expect("seed");
    seed.seed(manifest.clone(), path).expect("seed blob");
    seed
}

/// Starts `n` peers fetching from `seed`, with `extra` sources appended to the swarm.
async fn swarm(
    n: usize,
    manifest: &Arc<PieceManifest>,
    seed: &Node,
    extra: Vec<PeerAddr>,
    watch: &Arc<Watch>,
) -> Vec<Running> {
    let mut ps = peers(n, RATE).await;
    ps.swarm.extend(extra);
    ps.nodes
        .into_iter()
        .map(|(id, node)| {
            let sw = ps.swarm.clone();
            fetch(
                id,
                node,
                manifest.clone(),
                sw,
                Some(seed.addr()),
                watch.clone(),
                store(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_peers_end_with_the_blob_and_the_seed_sends_about_one_copy() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let watch = Arc::new(Watch::default());
    let running = swarm(6, &b.manifest, &seed, Vec::new(), &watch).await;
    let mut done = Vec::new();
    for r in running {
        done.push(r.await.expect("join"));
    }
    for (_, report, _) in &done {
        let report = report.as_ref().expect("fetch");
        assert_eq!(sha256_file(&report.path), b.manifest.sha256);
        assert!(report.from_peers > 0, "{report:?}");
        assert!(report.banned.is_empty());
    }
    let copies = seed.stats().bytes as f64 / b.manifest.size as f64;
    eprintln!("seed sent {copies:.2} copies of the blob to 6 peers");
    assert!(copies < 1.5, "seed sent {copies:.2} copies");
    // Every peer served others: a pipeline, not a star.
    for (node, _, _) in &done {
        assert!(node.stats().bytes > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_dies_mid_transfer_is_routed_around() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let watch = Arc::new(Watch::default());
    let mut running = swarm(5, &b.manifest, &seed, Vec::new(), &watch).await;
    watch
        .until("peer-2 to hold 4 pieces", |w| w.held("peer-2") >= 4)
        .await;
    // Aborting its task drops its node: its server and every connection go with it.
    let dead = running.remove(2);
    dead.abort();
    assert!(dead.await.expect_err("aborted").is_cancelled());
    for r in running {
        let (_node, report, _store) = r.await.expect("join");
        let report = report.expect("fetch");
        assert_eq!(sha256_file(&report.path), b.manifest.sha256);
    }
    let events = watch.events.lock().expect("events");
    let down = events
        .iter()
        .any(|(_, ev)| matches!(ev, FetchEvent::SourceDown { peer, .. } if peer == "peer-2"));
    assert!(down, "some peer saw peer-2 go down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_serving_bad_pieces_is_banned_and_everyone_ends_with_the_right_blob() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let liar =
        kubegrid_fanout::testing::start(b.manifest.clone(), "127.0.0.1:0".parse().expect("addr"))
            .await;
    let extra = vec![PeerAddr {
        id: "liar".into(),
        addr: liar.addr,
    }];
    let watch = Arc::new(Watch::default());
    let running = swarm(4, &b.manifest, &seed, extra, &watch).await;
    let mut banned = 0;
    for r in running {
        let (_node, report, _store) = r.await.expect("join");
        let report = report.expect("fetch");
        assert_eq!(sha256_file(&report.path), b.manifest.sha256);
        banned += usize::from(report.banned == ["liar"]);
    }
    assert!(liar.served() > 0, "the liar was asked");
    assert!(banned > 0, "someone banned the liar");
    // A banned source is asked nothing more: per peer, at most the requests that were in
    // flight to it when its first bad piece failed the hash.
    let per_source = kubegrid_fanout::Bounds::default().per_source as usize;
    assert!(
        liar.served() <= 4 * per_source,
        "liar served {}",
        liar.served()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_peer_resumes_from_its_verified_pieces() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let watch = Arc::new(Watch::default());
    let st = store();
    let node = Node::start(config(RATE)).await.expect("node");
    let me = vec![PeerAddr {
        id: "peer-0".into(),
        addr: node.addr(),
    }];
    let first = fetch(
        "peer-0".into(),
        node,
        b.manifest.clone(),
        me,
        Some(seed.addr()),
        watch.clone(),
        st.clone(),
    );
    watch.until("8 pieces", |w| w.held("peer-0") >= 8).await;
    first.abort();
    let _ = first.await;
    let partial = st
        .path()
        .join(kubegrid_fanout::store::PARTIAL_DIR)
        .join(&b.manifest.sha256);
    // Spoil the first piece on disk: a restarted peer re-verifies what it holds.
    let mut bytes = std::fs::read(&partial).expect("partial");
    bytes[0] ^= 0xff;
    std::fs::write(&partial, &bytes).expect("spoil");
    let held = bytes
        .chunks(PIECE as usize)
        .enumerate()
        .filter(|(i, c)| b.manifest.check_piece(*i as u32, c))
        .count() as u32;
    assert!(held >= 7, "{held} pieces verified on disk");

    let node = Node::start(config(RATE)).await.expect("restart");
    let me = vec![PeerAddr {
        id: "peer-0".into(),
        addr: node.addr(),
    }];
    let again = fetch(
        "peer-0".into(),
        node,
        b.manifest.clone(),
        me,
        Some(seed.addr()),
        watch,
        st.clone(),
    );
    let (_node, report, _store) = again.await.expect("join");
    let report = report.expect("resumed fetch");
    assert_eq!(report.resumed_pieces, held);
    assert_eq!(
        report.from_seed,
        b.manifest.size - u64::from(held) * PIECE,
        "only the missing and spoiled pieces came again"
    );
    assert_eq!(sha256_file(&report.path), b.manifest.sha256);
    assert!(
        !partial.exists(),
        "the partial file was renamed into the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_finish_when_the_seed_dies_after_every_piece_has_spread() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let watch = Arc::new(Watch::default());
    let running = swarm(4, &b.manifest, &seed, Vec::new(), &watch).await;
    // Once the seed has sent a whole copy, every piece is on some peer.
    let size = b.manifest.size;
    let s = &seed;
    watch
        .until("the seed to send one copy", |_| s.stats().bytes >= size)
        .await;
    let sent = seed.stats().bytes;
    drop(seed);
    for r in running {
        let (_node, report, _store) = r.await.expect("join");
        let report = report.expect("fetch without the seed");
        assert_eq!(sha256_file(&report.path), b.manifest.sha256);
    }
    assert!(sent < 2 * size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_piece_lost_everywhere_fails_with_an_error_naming_it() {
    let b = blob(8 << 20);
    let seed = seed(&b.manifest, &b.path).await;
    let watch = Arc::new(Watch::default());
    let running = swarm(2, &b.manifest, &seed, Vec::new(), &watch).await;
    watch
        .until("2 pieces anywhere", |w| {
            w.held("peer-0") + w.held("peer-1") >= 2
        })
        .await;
    drop(seed);
    for r in running {
        let (_, report, store) = r.await.expect("join");
        let err = report.expect_err("a lost piece fails the fetch");
        assert!(matches!(err, Error::FetchPiece { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("is held by no reachable peer and the seed is gone"),
            "{msg}"
        );
        assert!(msg.contains("seed down"), "{msg}");
        // Nothing half-written reached the store; the partial file stays for a resume.
        assert!(!store.path().join(&b.manifest.sha256).exists());
        assert!(
            store
                .path()
                .join(".fanout")
                .join(&b.manifest.sha256)
                .exists()
        );
    }
}
