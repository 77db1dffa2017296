//! Compaction: settled superseded values go, headers, signatures and stubs stay, peers still
//! converge, and no value that can be read again is ever dropped.

use serde_json::json;

use super::*;
use crate::event::{BodyKind, DecodeError};
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

/// A value big enough to be worth compacting (a value of 32 bytes or less keeps its body).
fn big(v: impl Into<serde_json::Value>) -> serde_json::Value {
    json!({ "v": v.into(), "pad": "p".repeat(40) })
}

/// A chain with history worth compacting: a delegated writer, records with several versions,
/// a tombstone, a fork and two concurrent first versions of one key.
pub(crate) fn busy_chain() -> (Vec<u8>, Replica) {
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
        put(&mut r, &w, "b", big(i));
    }
    put(&mut r, &root, "gone", big("soon deleted"));
    put(&mut r, &root, "gone", big("again"));
    let t = tombstone(&r, &root, "gone");
    assert_eq!(gossip(&mut r, &t), Verdict::Valid);
    // A fork of "b": two writers continue the same version concurrently.
    let left = w.put_json(&r, "b", &json!("left"), 0);
    let right = root.put_json(&r, "b", &json!("right"), 0);
    assert_eq!(gossip(&mut r, &left), Verdict::Valid);
    assert_eq!(gossip(&mut r, &right), Verdict::Valid);
    // Two concurrent first versions of "c".
    let c1 = w.put_json(&r, "c", &big(1), 0);
    let c2 = root.put_json(&r, "c", &big(2), 0);
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
    // The root is the only admin and its last event saw everything, so every superseded
    // version is settled: 4 versions of "a", 5 of "b" (its last common version before the
    // fork included), 2 of "gone" (its tombstone stays), 1 of "c" (the first version its
    // winning record continued).
    assert_eq!(c.pruned.len(), 12, "{c:?}");
    assert_eq!(c.unsettled, 0, "{c:?}");
    assert!(c.bytes_freed > 4 * 200, "{c:?}");
    assert_eq!(r.body_bytes(), body_bytes - c.bytes_freed);
    assert_eq!(r.compacted_len(), 12);
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
    // The genesis, the grant and every leaf (tombstone and both fork branches included) keep
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
        // In the fresh peer's view like on the node that compacted: the stub gave its key.
        let v = fresh.view().get_by_id(id).unwrap();
        assert!(v.compacted && v.value.is_none());
        assert_eq!(Some(v), compacted.view().get_by_id(id));
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
    // Every replica links the late fork to the long line through the stubs: one record with
    // a conflict, resolved to the longer line everywhere.
    for r in [&compacted, &fresh] {
        assert_eq!(r.view().digest(), full.view().digest());
        let a = r.view().get_latest("a").unwrap();
        assert!(a.conflict);
        assert_eq!(a.seq, 4);
    }
}

/// The case that made compaction wait for settlement: a version whose successors are later
/// frozen by a revocation that had not seen them becomes the latest again, so its value must
/// still be there.
#[test]
fn a_version_a_revocation_can_bring_back_keeps_its_value() {
    let (g, mut full) = chain();
    let root = writer(1);
    let w = writer(2);
    let x = writer(3);
    grant(&mut full, &root, w.public(), "", Rights::Write);
    grant(&mut full, &root, x.public(), "", Rights::Admin);
    put(&mut full, &x, "x", json!("x was here"));
    // x's view of the chain stops here: a replica that has what x has seen.
    let mut xs = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut xs, &full);
    put(&mut full, &root, "k", big(1));
    put(&mut full, &w, "k", big(2));
    put(&mut full, &w, "k", big(3));
    put(&mut full, &root, "other", json!("the root saw everything"));
    let mut compacted = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut compacted, &full);
    // Superseded, but x has not written since w's versions: x could still revoke w without
    // having seen them, so they are not settled and nothing is dropped.
    let c = compacted.compact();
    assert!(c.pruned.is_empty(), "{c:?}");
    assert_eq!(c.unsettled, 2, "{c:?}");
    // Exactly that happens: x revokes w on its branch.
    let rv = x.revoke(&xs, w.public(), "", 0);
    for r in [&mut full, &mut compacted] {
        assert_eq!(gossip(r, &rv), Verdict::Valid);
    }
    // Both of w's versions lost effect and the root's first version is the latest again,
    // with its value.
    let latest = compacted.view().get_latest("k").unwrap();
    assert_eq!(latest.value, Some(big(1)));
    assert!(!latest.compacted);
    assert_eq!(full.view().get_latest("k").unwrap().id, latest.id);
    assert_eq!(compacted.view().digest(), full.view().digest());
    // Nothing superseded is settled now: the revocation is concurrent with w's versions.
    let again = compacted.compact();
    assert!(again.pruned.is_empty(), "{again:?}");
    // Once both admins have written after a new version, the old one can go.
    put(&mut compacted, &root, "k", big(4));
    assert!(
        compacted.compact().pruned.is_empty(),
        "x has not seen the new version"
    );
    let seen = x.put_json(&compacted, "x", &json!("x saw it"), 0);
    assert_eq!(gossip(&mut compacted, &seen), Verdict::Valid);
    let last = compacted.compact();
    assert_eq!(last.pruned.len(), 1, "{last:?}");
    let v = compacted.view().get_by_id(&last.pruned[0]).unwrap();
    assert_eq!((v.key.as_str(), v.value.is_none()), ("k", true));
    assert_eq!(
        compacted.view().get_latest("k").unwrap().value,
        Some(big(4))
    );
}

/// Compaction never drops a value while some admin key has never written since, or when an
/// admin key has equivocated.
#[test]
fn an_idle_admin_or_an_equivocating_one_holds_every_value() {
    let (_g, mut r) = chain();
    let root = writer(1);
    let idle = writer(4);
    grant(&mut r, &root, idle.public(), "team/", Rights::Admin);
    put(&mut r, &root, "k", big(1));
    put(&mut r, &root, "k", big(2));
    let c = r.compact();
    assert!(c.pruned.is_empty() && c.unsettled == 1, "{c:?}");
    // The idle admin writes once after the new version: now it is settled.
    put(&mut r, &idle, "team/hello", json!(true));
    assert_eq!(r.compact().pruned.len(), 1);
    // An admin that equivocates (two events at one seq) vouches for nothing.
    let (_g2, mut e) = chain();
    put(&mut e, &root, "k", big(1));
    put(&mut e, &root, "k", big(2));
    let a = root.put_json(&e, "y", &json!("a"), 0);
    let b = root.put_json(&e, "z", &json!("b"), 0);
    assert_eq!(gossip(&mut e, &a), Verdict::Valid);
    assert_eq!(gossip(&mut e, &b), Verdict::Valid);
    assert!(e.stats().equivocations > 0);
    assert!(e.compact().pruned.is_empty());
}

#[test]
fn compacted_events_are_checked_like_full_ones() {
    let (g, mut r) = chain();
    let root = writer(1);
    let stranger = writer(9);
    let stub = |ev: &Event| ev.compacted().unwrap().encode();
    // A compacted put by someone holding no right on its key is refused, naming the key.
    let rogue = stranger.put_json(&r, "x", &json!(1), 0);
    assert_eq!(
        gossip_bytes(&mut r, stub(&rogue)),
        Verdict::Invalid(Reason::NotAuthorized {
            author: stranger.public().short(),
            need: Rights::Write,
            target: "x".into(),
        })
    );
    // Only a put can come without its body: anything else fails to decode.
    let g2 = root.grant(&r, stranger.public(), "", Rights::Write, 0);
    let mut bare = g2.clone();
    bare.body = None;
    bare.body_bytes.clear();
    assert!(matches!(
        gossip_bytes(&mut r, bare.encode()),
        Verdict::Invalid(Reason::Decode(DecodeError::BodyMismatch(_)))
    ));
    // A compacted put by a writer is stored and placed in the view like any version.
    let ok = root.put_json(&r, "x", &json!(1), 0);
    assert_eq!(gossip_bytes(&mut r, stub(&ok)), Verdict::Valid);
    assert_eq!(r.has_body(&ok.id), Some(false));
    let v = r.view().get_latest("x").unwrap();
    assert_eq!((v.id, v.value, v.compacted), (ok.id, None, true));
    let mut full = Replica::new(&g, Config::default()).unwrap();
    assert_eq!(gossip(&mut full, &ok), Verdict::Valid);
    assert_eq!(r.view().digest(), full.view().digest());
    // Its successor checks key and seq against the stub.
    let t = Template {
        previous: Some((ok.id, 0)),
        ..Template::for_writer(&r, &root.public(), Some("x"))
    };
    let wrong_key = root.put_from(&t, "y", PutValue::Json("2".into()), 0);
    assert_eq!(
        gossip(&mut r, &wrong_key),
        Verdict::Invalid(Reason::BadPrevious("another key"))
    );
    // A stub whose head was changed no longer matches the signed body hash.
    let mut bytes = stub(&ok);
    let at = bytes.iter().rposition(|&b| b == b'x').unwrap();
    bytes[at] = b'z';
    assert!(matches!(
        gossip_bytes(&mut r, bytes),
        Verdict::Invalid(Reason::Decode(DecodeError::BodyMismatch(_)))
    ));
    // The old "no body at all" form is not an envelope any more.
    let mut bytes = stub(&rogue);
    let form_at = bytes.len() - rogue.compacted().unwrap().body_bytes.len() - 1;
    bytes.truncate(form_at + 1);
    bytes[form_at] = 0;
    assert!(matches!(
        gossip_bytes(&mut r, bytes),
        Verdict::Invalid(Reason::Decode(DecodeError::Malformed { .. }))
    ));
    // A signature over another header still fails without a body.
    let mut forged = root.put_json(&r, "y", &json!(1), 0);
    forged.header.time_ms += 1;
    assert_eq!(
        gossip_bytes(&mut r, stub(&forged)),
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
