//! Tests of the swarm's bookkeeping.

use super::*;

#[test]
fn agent_lines_add_up_per_host_and_become_progress() {
    let mut tally = HostSwarm::default();
    let sha = "ab".repeat(32);
    let stored = FanoutLine::Stored {
        sha256: sha.clone(),
        size: 512 << 20,
        resumed_pieces: 0,
        from_seed: 8 << 20,
        from_peers: 504 << 20,
        seconds: 20.0,
    };
    let Some(Progress::Swarm { stage, rate, .. }) = record(&stored, "lab-1", "p", &mut tally)
    else {
        panic!("stored becomes progress");
    };
    assert_eq!((stage.as_str(), rate), ("stored", (512u64 << 20) / 20));
    let banned = FanoutLine::Source {
        sha256: sha.clone(),
        peer: "lab-4".into(),
        state: "banned".into(),
        message: "piece 3 failed its sha256".into(),
    };
    record(&banned, "lab-1", "p", &mut tally);
    let failed = FanoutLine::Failed {
        sha256: sha.clone(),
        message: "gone".into(),
    };
    record(&failed, "lab-1", "p", &mut tally);
    assert!(
        record(
            &FanoutLine::Finished {
                ok: false,
                served: 7
            },
            "lab-1",
            "p",
            &mut tally
        )
        .is_none()
    );
    assert_eq!(tally.blobs, 1);
    assert_eq!(tally.pieces, 128, "512 MiB in 4 MiB pieces");
    assert_eq!(
        (tally.from_seed, tally.from_peers, tally.served),
        (8 << 20, 504 << 20, 7)
    );
    assert_eq!(tally.banned, ["lab-4"]);
    assert_eq!(tally.failed, [format!("{sha}: gone")]);
}
