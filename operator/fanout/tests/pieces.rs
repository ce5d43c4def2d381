//! Piece manifests, signatures, the picker's invariants, the rate limit and the token.

use std::sync::Arc;

use kubegrid_fanout::{
    Bitfield, Bounds, ManifestSigner, PieceManifest, RateLimit,
    manifest::default_piece_size,
    schedule::{Picker, SourceView, neighbours},
    store::{PARTIAL_DIR, PartialBlob, stored_path},
};
use proptest::prelude::*;

fn manifest_of(bytes: &[u8], piece: u64) -> (tempfile::TempDir, PieceManifest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b");
    std::fs::write(&path, bytes).expect("write");
    let m = PieceManifest::build(&path, piece).expect("build");
    (dir, m)
}

proptest! {
    #[test]
    fn a_manifest_covers_the_blob_exactly(len in 0usize..600_000, seed in any::<u8>()) {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let (_d, m) = manifest_of(&bytes, 64 << 10);
        prop_assert_eq!(m.piece_count() as usize, len.div_ceil(64 << 10));
        let mut covered = 0u64;
        for i in 0..m.piece_count() {
            let (start, n) = m.piece_span(i);
            prop_assert_eq!(start, covered);
            let piece = &bytes[start as usize..(start + n) as usize];
            prop_assert!(m.check_piece(i, piece));
            let mut bad = piece.to_vec();
            bad[0] ^= 1;
            prop_assert!(!m.check_piece(i, &bad));
            prop_assert!(!m.check_piece(i, &piece[..piece.len() - 1]));
            covered += n;
        }
        prop_assert_eq!(covered, len as u64);
        prop_assert!(m.validate().is_ok());
    }
}

#[test]
fn a_partial_blob_enters_the_store_only_with_every_piece_verified() {
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (src, m) = manifest_of(&bytes, 64 << 10);
    let store = src.path().join("store");
    let m = Arc::new(m);
    let opened = PartialBlob::open(&store, m.clone()).expect("open the partial blob");
    assert_eq!(opened.have.count(), 0, "a new partial file holds no piece");
    let (blob, mut have) = (opened.blob, opened.have);
    for i in 0..m.piece_count() {
        let (start, len) = m.piece_span(i);
        blob.write_at(&bytes[start as usize..(start + len) as usize], start)
            .expect("write a piece");
    }
    for i in 1..m.piece_count() {
        have.set(i);
    }
    // Piece 0 is written but was never verified: the blob stays out of the store.
    let err = blob
        .finish(&have)
        .expect_err("a piece is unverified")
        .to_string();
    assert!(
        err.contains(&format!("1 of {} pieces are not verified", m.piece_count())),
        "{err}"
    );
    assert!(!stored_path(&store, &m.sha256).exists());

    // Reopened, the partial file's pieces verify from disk, and then it is stored whole.
    let opened = PartialBlob::open(&store, m.clone()).expect("reopen the partial blob");
    assert!(opened.have.is_full(), "every written piece re-verifies");
    let path = opened.blob.finish(&opened.have).expect("store the blob");
    assert_eq!(path, stored_path(&store, &m.sha256));
    assert_eq!(std::fs::read(&path).expect("read the stored blob"), bytes);
    assert!(
        !store.join(PARTIAL_DIR).join(&m.sha256).exists(),
        "no partial file is left"
    );
}

#[test]
fn piece_sizes_stay_between_4_and_16_mib() {
    assert_eq!(default_piece_size(1 << 20), 4 << 20);
    assert_eq!(default_piece_size(512 << 20), 4 << 20);
    assert_eq!(default_piece_size(1 << 30), 8 << 20);
    assert_eq!(default_piece_size(140 << 30), 16 << 20);
}

#[test]
fn inconsistent_manifests_are_refused_naming_the_problem() {
    let (_d, m) = manifest_of(&[7u8; 200_000], 64 << 10);
    let mut short = m.clone();
    short.pieces.pop();
    let e = short.validate().expect_err("too few pieces").to_string();
    assert!(
        e.contains("3 piece hashes for 200000 bytes in pieces of 65536; expected 4"),
        "{e}"
    );
    let mut tiny = m.clone();
    tiny.piece_size = 1024;
    assert!(
        tiny.validate()
            .expect_err("tiny")
            .to_string()
            .contains("piece size 1024 is outside")
    );
    let mut upper = m;
    upper.pieces[1] = upper.pieces[1].to_uppercase();
    assert!(
        upper
            .validate()
            .expect_err("hex")
            .to_string()
            .contains("piece 1's hash")
    );
}

#[test]
fn a_signed_manifest_verifies_only_with_the_seeds_key_and_unaltered() {
    let (_d, m) = manifest_of(&[1u8; 300_000], 64 << 10);
    let signer = ManifestSigner::generate();
    let signed = signer.sign(m.clone());
    assert_eq!(signed.verify(&signer.public_key()).expect("verifies"), &m);
    let other = ManifestSigner::generate();
    assert!(signed.verify(&other.public_key()).is_err());
    let mut altered = signed.clone();
    altered.manifest.pieces[0] = "0".repeat(64);
    let e = altered.verify(&signer.public_key()).expect_err("altered");
    assert!(e.to_string().contains("signature does not verify"), "{e}");
    // The wire form round-trips.
    let json = serde_json::to_string(&signed).expect("json");
    let back: kubegrid_fanout::SignedManifest = serde_json::from_str(&json).expect("parse");
    assert!(back.verify(&signer.public_key()).is_ok());
}

fn views<'a>(
    haves: &'a [Bitfield],
    seed: &'a Bitfield,
    busy: &[u32],
    usable: &[bool],
) -> Vec<SourceView<'a>> {
    let mut v: Vec<SourceView<'a>> = haves
        .iter()
        .enumerate()
        .map(|(i, h)| SourceView {
            have: h,
            busy: busy[i],
            seed: false,
            usable: usable[i],
        })
        .collect();
    v.push(SourceView {
        have: seed,
        busy: busy[haves.len()],
        seed: true,
        usable: usable[haves.len()],
    });
    v
}

proptest! {
    #[test]
    fn picks_respect_what_is_held_in_flight_usable_and_bounded(
        pieces in 1u32..100,
        sources in 1usize..8,
        bits in proptest::collection::vec(any::<u64>(), 20),
        busy in proptest::collection::vec(0u32..3, 9),
        usable in proptest::collection::vec(any::<bool>(), 9),
        fallback in any::<bool>(),
        slots in 0u32..10,
        index in 0u32..10,
    ) {
        let bit = |k: usize, p: u32| bits[k % bits.len()].rotate_left(p) & 1 == 1;
        let mut have = Bitfield::new(pieces);
        let mut inflight = Bitfield::new(pieces);
        let haves: Vec<Bitfield> = (0..sources).map(|s| {
            let mut b = Bitfield::new(pieces);
            for p in 0..pieces { if bit(s + 2, p) { b.set(p); } }
            b
        }).collect();
        for p in 0..pieces {
            if bit(0, p) { have.set(p); } else if bit(1, p) { inflight.set(p); }
        }
        let seed = Bitfield::full(pieces);
        let busy = &busy[..=sources];
        let usable = &usable[..=sources];
        let bounds = Bounds::default();
        let picker = Picker::new(pieces, index, 10, 42, bounds);
        let v = views(&haves, &seed, busy, usable);
        let picks = picker.pick(&have, &inflight, &v, fallback, slots);
        let to_peers = picks.iter().filter(|(s, _)| !v[*s].seed).count() as u32;
        prop_assert!(to_peers <= slots);
        let mut seen = Bitfield::new(pieces);
        let mut per = vec![0u32; sources + 1];
        for &(s, p) in &picks {
            prop_assert!(seen.set(p), "piece {} picked twice", p);
            prop_assert!(!have.get(p) && !inflight.get(p));
            prop_assert!(v[s].usable && v[s].have.get(p));
            per[s] += 1;
            if v[s].seed {
                // The seed serves the strip unless the peer is stalled, and peers' pieces never.
                prop_assert!(picker.owns(p) || fallback);
                prop_assert!(haves.iter().zip(usable).all(|(h, u)| !*u || !h.get(p)));
            }
        }
        for (s, n) in per.iter().enumerate() {
            let cap = if v[s].seed { bounds.per_seed } else { bounds.per_source };
            prop_assert!(n + busy[s] <= cap.max(busy[s]));
        }
    }
}

#[test]
fn rarest_pieces_go_first() {
    let pieces = 4;
    let mut a = Bitfield::new(pieces);
    let mut b = Bitfield::new(pieces);
    for p in [0, 1, 2] {
        a.set(p);
    }
    for p in [0, 1] {
        b.set(p);
    }
    let seed = Bitfield::full(pieces);
    // Piece 3 is with nobody but the seed and not in this peer's strip (index 1 of 4 owns 1).
    let picker = Picker::new(
        pieces,
        1,
        4,
        7,
        Bounds {
            per_source: 1,
            per_seed: 1,
        },
    );
    let haves = [a, b];
    let v = views(&haves, &seed, &[0, 0, 0], &[true, true, true]);
    let picks = picker.pick(&Bitfield::new(pieces), &Bitfield::new(pieces), &v, false, 1);
    assert_eq!(picks, vec![(0, 2)], "piece 2 is held once, 0 and 1 twice");
}

#[test]
fn neighbour_sets_are_bounded_exclude_self_and_cover_small_swarms() {
    assert_eq!(neighbours(2, 5, 16, 9), vec![0, 1, 3, 4]);
    for i in [0, 17, 9_999] {
        let n = neighbours(i, 10_000, 16, 9);
        assert_eq!(n.len(), 16);
        assert!(!n.contains(&i));
        let mut d = n.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 16);
    }
}

#[tokio::test]
async fn the_rate_limit_paces_bytes_to_its_rate() {
    let limit = Arc::new(RateLimit::new(8 << 20));
    let start = std::time::Instant::now();
    for _ in 0..20 {
        limit.take(256 << 10).await;
    }
    // 5 MiB at 8 MiB/s, less the quarter-second burst it starts with, cannot take less
    // than 0.375 s; a slow machine may take longer, which pacing never prevents.
    let took = start.elapsed().as_secs_f64();
    assert!(took >= 0.37, "took {took}");
    assert!(took < 5.0, "took {took}");
}
