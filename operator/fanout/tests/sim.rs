//! The swarm model at sizes no lab reaches: the seed's upload and the finish time stay near
//! the link bound M/B as the swarm grows, and a dead peer's strip is still delivered.

use kubegrid_fanout::sim::{SimConfig, simulate};

fn run(peers: u32, pieces: u32) -> kubegrid_fanout::sim::SimReport {
    let report = simulate(&SimConfig::new(peers, pieces));
    eprintln!(
        "model: {peers} peers, {pieces} pieces: last peer done in {:?} rounds ({:.2} x M/B), median {} , seed sent {:.2} copies",
        report.rounds,
        report.finish_ratio(pieces).unwrap_or(f64::NAN),
        report.median_round,
        report.seed_copies(pieces)
    );
    report
}

/// Every peer completes within 1.5x of M/B and the seed sends under 1.3 copies.
fn near_the_bound(peers: u32) {
    let r = run(peers, 64);
    assert_eq!(r.complete, peers);
    let ratio = r.finish_ratio(64).expect("every peer completes");
    assert!(ratio < 1.5, "finish {ratio:.2} x M/B");
    let copies = r.seed_copies(64);
    assert!(copies < 1.3, "seed sent {copies:.2} copies");
}

#[test]
fn a_thousand_peers_finish_near_the_link_bound_with_one_seed_copy() {
    near_the_bound(1000);
}

#[test]
fn ten_thousand_peers_finish_near_the_link_bound_with_one_seed_copy() {
    near_the_bound(10_000);
}

#[test]
fn small_swarms_are_bounded_too() {
    for peers in [3, 6, 12] {
        let r = run(peers, 64);
        assert_eq!(r.complete, peers);
        assert!(r.finish_ratio(64).expect("complete") < 1.5);
        assert!(r.seed_copies(64) < 1.3);
    }
}

#[test]
fn dead_strip_owners_leave_no_piece_behind() {
    let mut cfg = SimConfig::new(200, 64);
    cfg.dead = vec![0, 5, 17, 63];
    let r = simulate(&cfg);
    assert_eq!(r.live, 196);
    assert_eq!(r.complete, 196, "{r:?}");
    // The dead peers' strips come from the seed a second time at most.
    assert!(r.seed_copies(64) < 1.5, "{r:?}");
}
