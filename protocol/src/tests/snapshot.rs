//! Snapshots: a restored replica is the replica that was saved, and a damaged snapshot is an
//! error, never a panic.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::replica::{SnapshotError, SnapshotInfo, SyncMsg};
use crate::verify::Ed25519Batch;
use crate::workload::{Spec, generate};

fn restore(g: &[u8], snap: &[u8]) -> Result<Replica, SnapshotError> {
    Replica::restore(g, snap, Config::default(), Arc::new(Ed25519Batch))
}

/// Everything observable about a replica that a snapshot must keep.
fn assert_same(a: &Replica, b: &Replica) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.event_ids(), b.event_ids());
    assert_eq!(a.heads(), b.heads());
    assert_eq!(a.view().digest(), b.view().digest());
    assert_eq!(a.view().record_count(), b.view().record_count());
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.equivocations(), b.equivocations());
    assert_eq!(a.body_bytes(), b.body_bytes());
    assert_eq!(a.compacted_len(), b.compacted_len());
    let (x, y): (Vec<_>, Vec<_>) = (
        a.envelopes_in_order().collect(),
        b.envelopes_in_order().collect(),
    );
    assert_eq!(x, y);
    for id in a.event_ids() {
        assert_eq!(a.admin_in_effect(&id), b.admin_in_effect(&id));
        assert_eq!(a.view().get_by_id(&id), b.view().get_by_id(&id));
        assert_eq!(a.clock_of(&id), b.clock_of(&id));
    }
    for k in ["a", "b", "c", "gone", "k"] {
        assert_eq!(a.view().history(k), b.view().history(k));
        assert_eq!(a.view().get_latest(k), b.view().get_latest(k));
    }
}

/// A chain with grants, a revocation that disables writes, an equivocation, a tombstone, a
/// fork and rejected events (so every part of the state is non-trivial).
fn rich_chain() -> (Vec<u8>, Replica) {
    let (g, mut r) = chain();
    let root = writer(1);
    let w = writer(2);
    let v = writer(3);
    grant(&mut r, &root, w.public(), "", Rights::Admin);
    grant(&mut r, &w, v.public(), "a", Rights::Write);
    for i in 0..4 {
        put(&mut r, &w, "a", json!(i));
        put(&mut r, &v, "a", json!(i * 10));
        put(&mut r, &root, "b", json!(i));
    }
    let t = tombstone(&r, &root, "gone");
    assert_eq!(gossip(&mut r, &t), Verdict::Valid);
    // An equivocation by the root: two events with the same seq.
    let e1 = root.put_json(&r, "c", &json!("left"), 0);
    let e2 = root.put_json(&r, "k", &json!("right"), 0);
    assert_eq!(gossip(&mut r, &e1), Verdict::Valid);
    assert_eq!(gossip(&mut r, &e2), Verdict::Valid);
    // A rejected event, for the stats.
    let rogue = writer(9).put_json(&r, "a", &json!(0), 0);
    assert!(matches!(gossip(&mut r, &rogue), Verdict::Invalid(_)));
    revoke(&mut r, &root, v.public(), "");
    put(&mut r, &w, "a", json!("after"));
    (g, r)
}

#[test]
fn a_restored_replica_is_the_saved_one() {
    let (g, mut r) = rich_chain();
    assert!(r.stats().equivocations > 0 && !r.stats().rejected.is_empty());
    let mut restored = restore(&g, &r.snapshot()).unwrap();
    assert_same(&r, &restored);
    // Compacted state survives too (on a chain whose admin did not equivocate: the root's
    // equivocation above leaves nothing settled, so nothing compacts there).
    assert!(r.compact().pruned.is_empty());
    let (bg, mut b) = crate::tests::compaction::busy_chain();
    assert!(!b.compact().pruned.is_empty());
    let mut b_restored = restore(&bg, &b.snapshot()).unwrap();
    assert_same(&b, &b_restored);
    // Both pairs carry on identically: a new event, a late revocation, a sync request.
    let root = writer(1);
    for (x, y) in [(&mut r, &mut restored), (&mut b, &mut b_restored)] {
        let next = root.put_json(x, "a", &json!("next"), 0);
        let rv = root.revoke(x, writer(2).public(), "", 0);
        for z in [&mut *x, &mut *y] {
            assert_eq!(gossip(z, &next), Verdict::Valid);
            assert_eq!(gossip(z, &rv), Verdict::Valid);
        }
        assert_same(x, y);
    }
    let ask = |x: &mut Replica| {
        x.handle(
            0,
            Input::Sync {
                from: PEER,
                msg: SyncMsg::Heads { heads: Vec::new() },
            },
        )
    };
    assert_eq!(ask(&mut r), ask(&mut restored));
}

#[test]
fn restore_then_replaying_the_log_tail_equals_replaying_everything() {
    let chain = generate(&Spec {
        events: 3000,
        ..Spec::default()
    });
    let mut whole = Replica::new(&chain.genesis, Config::default()).unwrap();
    let _ = whole.handle(0, Input::Replay(chain.events.clone()));
    assert_eq!(whole.len(), chain.events.len() + 1);

    // The log is the events in persist order; snapshot after the first 1234 of them.
    let mut early = Replica::new(&chain.genesis, Config::default()).unwrap();
    let _ = early.handle(0, Input::Replay(chain.events[..1234].to_vec()));
    let snap = early.snapshot();
    let info = SnapshotInfo::read(&snap).unwrap();
    assert_eq!(info.chain, early.chain());
    assert_eq!(info.events, 1235);
    let covered = info.events as usize - 1;
    let last = crate::event::envelope_id(Some(&info.chain), &chain.events[covered - 1]);
    assert_eq!(last.map(|l| l.0), Some(info.last));

    let mut restored = restore(&chain.genesis, &snap).unwrap();
    assert_same(&early, &restored);
    let out = restored.handle(0, Input::Replay(chain.events[covered..].to_vec()));
    assert!(out.iter().all(|o| !matches!(
        o,
        Output::Verdict {
            verdict: Verdict::Invalid(_) | Verdict::Pending { .. } | Verdict::Duplicate,
            ..
        }
    )));
    assert_eq!(restored.event_ids(), whole.event_ids());
    assert_eq!(restored.view().digest(), whole.view().digest());
    assert_eq!(
        restored.envelopes_in_order().collect::<Vec<_>>(),
        whole.envelopes_in_order().collect::<Vec<_>>()
    );
}

#[test]
fn a_damaged_or_foreign_snapshot_is_a_typed_error() {
    let (g, r) = rich_chain();
    let snap = r.snapshot();
    // Any flipped byte fails (the header's fields, or the checksum).
    for at in (0..snap.len()).step_by(7) {
        let mut bad = snap.clone();
        bad[at] ^= 0x10;
        assert!(restore(&g, &bad).is_err(), "flip at {at}");
    }
    assert_eq!(
        restore(&g, b"nonsense").err(),
        Some(SnapshotError::NotASnapshot)
    );
    assert_eq!(
        restore(&g, &snap[..20]).err(),
        Some(SnapshotError::Truncated { got: 20, want: 128 })
    );
    let mut bad = snap.clone();
    bad[0] = b'X';
    assert_eq!(restore(&g, &bad).err(), Some(SnapshotError::NotASnapshot));
    let mut bad = snap.clone();
    bad[8] = 9;
    assert_eq!(
        restore(&g, &bad).err(),
        Some(SnapshotError::UnsupportedVersion { found: 9 })
    );
    let mut bad = snap.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(restore(&g, &bad).err(), Some(SnapshotError::Checksum));
    assert!(matches!(
        restore(&g, &snap[..snap.len() - 1]).err(),
        Some(SnapshotError::Truncated { .. })
    ));
    let other = crate::genesis("other", &key(1), &[], Params::default(), 43, 1_000).encode();
    assert!(matches!(
        restore(&other, &snap).err(),
        Some(SnapshotError::WrongChain { .. })
    ));
}

#[test]
fn corrupt_content_behind_a_valid_checksum_never_panics() {
    // The fuzz target's job, in miniature: mutate the content, skip the checksum.
    let (g, mut r) = rich_chain();
    let _ = r.compact();
    let snap = r.snapshot();
    let chain = r.chain();
    let content = &snap[128..];
    assert!(Replica::restore_unchecked(&g, chain, content, Config::default()).is_ok());
    let mut seed = 7u64;
    let mut errors = 0;
    for round in 0..3000 {
        let mut bad = content.to_vec();
        for _ in 0..1 + round % 4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % bad.len();
            bad[at] = (seed >> 13) as u8;
        }
        match Replica::restore_unchecked(&g, chain, &bad, Config::default()) {
            Err(_) => errors += 1,
            // Whatever got through must still be usable without panicking.
            Ok(mut x) => {
                let _ = x.view().digest();
                let _ = x.handle(
                    0,
                    Input::Sync {
                        from: PEER,
                        msg: SyncMsg::Heads { heads: Vec::new() },
                    },
                );
                let ev = writer(1).put_json(&x, "a", &json!(1), 0);
                let _ = gossip(&mut x, &ev);
                let _ = x.compact();
                let _ = x.snapshot();
            }
        }
    }
    assert!(errors > 1000, "{errors}");
    // Truncated content at every length is an error.
    for len in (0..content.len()).step_by(13) {
        assert!(Replica::restore_unchecked(&g, chain, &content[..len], Config::default()).is_err());
    }
}

#[test]
fn a_replica_with_only_its_genesis_round_trips() {
    let (g, r) = chain();
    let snap = r.snapshot();
    assert_eq!(SnapshotInfo::read(&snap).unwrap().events, 1);
    assert_same(&r, &restore(&g, &snap).unwrap());
}
