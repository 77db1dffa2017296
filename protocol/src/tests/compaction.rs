//! Compaction: superseded bodies go, headers and signatures stay, peers still converge.

use serde_json::json;

use super::*;
use crate::event::BodyKind;
use crate::replica::{Reason, SyncMsg};

const A: PeerId = PeerId(1);
const B: PeerId = PeerId(2);

/// Runs the sync protocol between `a` (as peer `A`) and `b` (as peer `B`) until neither has
/// anything left to send: `b` connects to `a`, and every message is delivered.
pub(crate) fn sync_by_messages(a: &mut Replica, b: &mut Replica) {
    let mut to_a: Vec<(PeerId, SyncMsg)> = Vec::new();
    let mut to_b: Vec<(PeerId, SyncMsg)> = Vec::new();
    let route = |out: Vec<Output>, to_a: &mut Vec<(PeerId, SyncMsg)>, to_b: &mut Vec<_>, me| {
        for o in out {
            if let Output::Send { to, msg } = o {
                match (me, to) {
                    (B, A) => to_a.push((B, msg)),
                    (A, B) => to_b.push((A, msg)),
                    _ => {}
                }
            }
        }
    };
    route(b.handle(0, Input::PeerUp(A)), &mut to_a, &mut to_b, B);
    route(a.handle(0, Input::PeerUp(B)), &mut to_a, &mut to_b, A);
    for _ in 0..10_000 {
        if to_a.is_empty() && to_b.is_empty() {
            return;
        }
        for (from, msg) in std::mem::take(&mut to_a) {
            route(
                a.handle(0, Input::Sync { from, msg }),
                &mut to_a,
                &mut to_b,
                A,
            );
        }
        for (from, msg) in std::mem::take(&mut to_b) {
            route(
                b.handle(0, Input::Sync { from, msg }),
                &mut to_a,
                &mut to_b,
                B,
            );
        }
    }
    panic!("sync did not settle");
}

/// A chain with history worth compacting: a delegated writer, records with several versions,
/// a tombstone, a fork and two concurrent first versions of one key.
fn busy_chain() -> (Vec<u8>, Replica) {
    let (g, mut r) = chain();
    let root = writer(1);
    let w = writer(2);
    grant(&mut r, &root, w.public(), "", Rights::Write);
    for i in 0..5 {
        put(
            &mut r,
            &root,
            "a",
            json!({ "n": i, "pad": "x".repeat(200) }),
        );
        put(&mut r, &w, "b", json!(i));
    }
    put(&mut r, &root, "gone", json!("soon deleted"));
    put(&mut r, &root, "gone", json!("again"));
    let t = tombstone(&r, &root, "gone");
    assert_eq!(gossip(&mut r, &t), Verdict::Valid);
    // A fork of "b": two writers continue the same version concurrently.
    let left = w.put_json(&r, "b", &json!("left"), 0);
    let right = root.put_json(&r, "b", &json!("right"), 0);
    assert_eq!(gossip(&mut r, &left), Verdict::Valid);
    assert_eq!(gossip(&mut r, &right), Verdict::Valid);
    // Two concurrent first versions of "c".
    let c1 = w.put_json(&r, "c", &json!(1), 0);
    let c2 = root.put_json(&r, "c", &json!(2), 0);
    assert_eq!(gossip(&mut r, &c1), Verdict::Valid);
    assert_eq!(gossip(&mut r, &c2), Verdict::Valid);
    put(&mut r, &root, "c", json!(3));
    (g, r)
}

#[test]
fn compaction_drops_only_superseded_bodies_and_keeps_the_view() {
    let (_, mut r) = busy_chain();
    let digest = r.view().digest();
    let latest: Vec<_> = ["a", "b", "c", "gone"]
        .iter()
        .map(|k| r.view().get_latest(k))
        .collect();
    let body_bytes = r.body_bytes();
    let ids = r.event_ids();

    let c = r.compact();
    // Superseded: 4 versions of "a", 2 of "gone" (its tombstone stays), 1 of "c" (the first
    // version its winning record continued); "b" has a fork, so it keeps every body.
    assert_eq!(c.pruned.len(), 7, "{c:?}");
    assert!(c.bytes_freed > 4 * 200, "{c:?}");
    assert_eq!(r.body_bytes(), body_bytes - c.bytes_freed);
    assert_eq!(r.compacted_len(), 7);
    assert_eq!(r.view().digest(), digest);
    assert_eq!(r.event_ids(), ids);
    for (k, before) in ["a", "b", "c", "gone"].iter().zip(&latest) {
        assert_eq!(&r.view().get_latest(k), before, "{k}");
    }
    for id in &c.pruned {
        assert_eq!(r.has_body(id), Some(false));
        let ev = r.event(id).unwrap();
        assert!(ev.body.is_none());
        assert_eq!(ev.header.body_kind, BodyKind::Put);
        // The header still verifies: same id, same signature.
        assert!(ev.verify());
        let again = Event::decode(Some(&r.chain()), &ev.encode(), r.params()).unwrap();
        assert_eq!(again.id, *id);
    }
    // The genesis, the grant, every leaf (tombstone included) and the forked record keep
    // their bodies.
    for id in r.event_ids() {
        if !c.pruned.contains(&id) {
            assert_eq!(r.has_body(&id), Some(true));
        }
    }
    assert_eq!(r.view().get_latest("gone").map(|v| v.deleted), Some(true));
    assert!(r.view().get_latest("b").unwrap().conflict);
    // A second compaction has nothing left to drop.
    assert_eq!(r.compact(), Compaction::default());
}

#[test]
fn a_compacted_version_reads_as_compacted() {
    let (_, mut r) = busy_chain();
    let first = r.view().history("a")[0].clone();
    assert!(!first.compacted);
    let c = r.compact();
    assert!(c.pruned.contains(&first.id));
    let v = r.view().get_by_id(&first.id).unwrap();
    assert!(v.compacted);
    assert_eq!(v.value, None);
    assert!(!v.deleted);
    assert_eq!((v.key.as_str(), v.seq, v.record), ("a", 0, first.record));
    let history = r.view().history("a");
    assert_eq!(history.len(), 5);
    assert_eq!(history.iter().filter(|v| v.compacted).count(), 4);
    assert!(!history[4].compacted && history[4].latest);
    let by_seq = r.view().get_by_sequence(&first.record, 2).unwrap();
    assert!(by_seq.compacted);
    assert_eq!(r.view().list_by_prefix(&first.record).len(), 5);
}

#[test]
fn a_fresh_peer_syncing_from_a_compacted_node_reaches_the_same_digest() {
    let (g, mut full) = busy_chain();
    let digest = full.view().digest();
    let mut compacted = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut compacted, &full);
    let c = compacted.compact();
    assert!(!c.pruned.is_empty());

    let mut fresh = Replica::new(&g, Config::default()).unwrap();
    sync_by_messages(&mut compacted, &mut fresh);
    assert_eq!(fresh.pending_len(), 0);
    assert_eq!(fresh.event_ids(), full.event_ids());
    assert_eq!(fresh.view().digest(), digest);
    assert_eq!(compacted.view().digest(), digest);
    for id in &c.pruned {
        assert_eq!(fresh.has_body(id), Some(false));
        // Outside the fresh peer's view: its key never reached it.
        assert_eq!(fresh.view().get_by_id(id), None);
    }
    for k in ["a", "b", "c", "gone"] {
        let (x, y) = (full.view().get_latest(k), fresh.view().get_latest(k));
        assert_eq!(
            x.map(|v| (v.id, v.value)),
            y.map(|v| (v.id, v.value)),
            "{k}"
        );
    }

    // All three keep accepting new work, including a version that continues from a
    // compacted one (a late fork, from a writer who never saw the later versions).
    let root = writer(1);
    let next = put(&mut full, &root, "d", json!("new"));
    let old = c.pruned[0];
    let old_v = compacted.view().get_by_id(&old).unwrap();
    assert_eq!((old_v.key.as_str(), old_v.seq), ("a", 0));
    let t = Template {
        previous: Some((old, old_v.seq)),
        ..Template::for_writer(&full, &root.public(), Some("a"))
    };
    let late = root.put_from(&t, "a", PutValue::Json("1".into()), 0);
    assert_eq!(gossip(&mut full, &late), Verdict::Valid);
    for r in [&mut compacted, &mut fresh] {
        assert_eq!(gossip(r, &next), Verdict::Valid);
        assert_eq!(gossip(r, &late), Verdict::Valid);
    }
    assert_eq!(fresh.event_ids(), full.event_ids());
    // The compacted node kept every record link: still equal to the full node.
    assert_eq!(compacted.view().digest(), full.view().digest());
    assert!(compacted.view().get_latest("a").unwrap().conflict);
    // The known limit: the fresh peer cannot tell that the late fork and the long line share a
    // record (the link runs through bodies it never had), so it resolves "a" between two
    // records by (clock, id) where the others pick the longer line. The digest says so.
    let a_full = full.view().get_latest("a").unwrap();
    let a_fresh = fresh.view().get_latest("a").unwrap();
    assert_eq!(a_full.seq, 4);
    assert_eq!(a_fresh.id, late.id);
    assert_ne!(fresh.view().digest(), full.view().digest());
}

#[test]
fn revocations_after_compaction_keep_the_compacted_node_equal_to_a_full_one() {
    let (g, mut full) = chain();
    let root = writer(1);
    let w = writer(2);
    grant(&mut full, &root, w.public(), "", Rights::Admin);
    put(&mut full, &root, "k", json!(1));
    put(&mut full, &w, "k", json!(2));
    put(&mut full, &w, "k", json!(3));
    let mut compacted = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut compacted, &full);
    assert_eq!(compacted.compact().pruned.len(), 2);
    // The root revokes w on a branch that has not seen w's versions (built on an old
    // replica), so both of w's versions lose effect and the root's first version, compacted
    // here, is the latest again.
    let mut old = Replica::new(&g, Config::default()).unwrap();
    for id in full.event_ids() {
        let ev = full.event(&id).unwrap();
        if matches!(ev.body, Some(Body::Grant(_))) {
            assert_eq!(gossip(&mut old, &ev), Verdict::Valid);
        }
    }
    let rv = root.revoke(&old, w.public(), "", 0);
    for r in [&mut full, &mut compacted] {
        assert_eq!(gossip(r, &rv), Verdict::Valid);
    }
    let latest = compacted.view().get_latest("k").unwrap();
    assert!(latest.compacted, "{latest:?}");
    assert_eq!(full.view().get_latest("k").unwrap().id, latest.id);
    assert_eq!(compacted.view().digest(), full.view().digest());
}

#[test]
fn body_less_events_are_checked_as_far_as_a_header_allows() {
    let (g, mut r) = chain();
    let root = writer(1);
    let stranger = writer(9);
    let plain = |ev: Event| {
        let mut ev = ev;
        ev.body = None;
        ev.body_bytes.clear();
        ev.encode()
    };
    // A body-less put by someone holding no right anywhere is refused.
    let rogue = stranger.put_json(&r, "x", &json!(1), 0);
    assert!(matches!(
        gossip_bytes(&mut r, plain(rogue)),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    // A body-less grant cannot be judged: refused.
    let g2 = root.grant(&r, stranger.public(), "", Rights::Write, 0);
    assert_eq!(
        gossip_bytes(&mut r, plain(g2)),
        Verdict::Invalid(Reason::MissingBody)
    );
    // A body-less put by a writer is stored, outside the view.
    let ok = root.put_json(&r, "x", &json!(1), 0);
    assert_eq!(gossip_bytes(&mut r, plain(ok.clone())), Verdict::Valid);
    assert_eq!(r.has_body(&ok.id), Some(false));
    assert_eq!(r.view().get_latest("x"), None);
    let (g_, empty) = chain();
    assert_eq!(g, g_);
    assert_eq!(r.view().digest(), empty.view().digest());
    // A signature over another header still fails without a body.
    let mut forged = root.put_json(&r, "y", &json!(1), 0);
    forged.header.time_ms += 1;
    assert_eq!(
        gossip_bytes(&mut r, plain(forged)),
        Verdict::Invalid(Reason::BadSignature)
    );
}

#[test]
fn replaying_the_rewritten_log_rebuilds_the_compacted_node() {
    let (g, mut r) = busy_chain();
    let digest = r.view().digest();
    let c = r.compact();
    let log: Vec<Vec<u8>> = r.envelopes_in_order().collect();
    assert_eq!(log.len(), r.len() - 1);
    let mut again = Replica::new(&g, Config::default()).unwrap();
    let out = again.handle(0, Input::Replay(log));
    assert!(out.iter().all(|o| !matches!(
        o,
        Output::Verdict {
            verdict: Verdict::Invalid(_) | Verdict::Pending { .. },
            ..
        }
    )));
    assert_eq!(again.event_ids(), r.event_ids());
    assert_eq!(again.view().digest(), digest);
    assert_eq!(again.compacted_len(), c.pruned.len());
    // The rewritten log is smaller than the envelopes of the full chain.
    let full: usize = busy_chain().1.envelopes_in_order().map(|e| e.len()).sum();
    let now: usize = r.envelopes_in_order().map(|e| e.len()).sum();
    assert_eq!(full - now, c.bytes_freed as usize);
}
