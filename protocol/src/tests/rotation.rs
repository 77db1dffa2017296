//! Root rotation with pre-rotation (KERI): the genesis commits to the hash of the next root
//! key; a `Rotate` by the current root reveals it and commits to the one after.

use serde_json::json;

use super::*;
use crate::event::next_key_commitment;
use crate::replica::Reason;

/// A chain whose single root is `writer(1)`, committed to rotate to `writer(2)`.
fn rotatable() -> (Vec<u8>, Replica) {
    let next = next_key_commitment(&key(2).public());
    let g = crate::genesis_with_next("rot", &key(1), next, &[], Params::default(), 1, 0);
    let bytes = g.encode();
    let r = Replica::new(&bytes, Config::default()).unwrap();
    (bytes, r)
}

fn rotate(r: &mut Replica, by: &Writer, to: &Writer, after: &Writer) -> Event {
    let ev = by.rotate(r, to.public(), next_key_commitment(&after.public()), 0);
    assert_eq!(gossip(r, &ev), Verdict::Valid, "rotation");
    ev
}

fn not_authorized(v: &Verdict) -> bool {
    matches!(v, Verdict::Invalid(Reason::NotAuthorized { .. }))
}

#[test]
fn rotation_per_the_commitment_hands_authority_to_the_new_key() {
    let (g, mut r) = rotatable();
    let (old, new, after) = (writer(1), writer(2), writer(3));
    put(&mut r, &old, "before", json!(1));
    // Before the rotation the new key has no authority.
    let early = new.put_json(&r, "early", &json!(0), 0);
    assert!(not_authorized(&gossip(&mut r.clone_for_test(&g), &early)));
    let rot = rotate(&mut r, &old, &new, &after);
    put(&mut r, &new, "after", json!(2));
    // The old key can neither write nor grant once the rotation is in its causal past.
    let w = old.put_json(&r, "late", &json!(3), 0);
    assert!(not_authorized(&gossip(&mut r, &w)), "old root writes");
    let gr = old.grant(&r, writer(4).public(), "", Rights::Admin, 0);
    assert!(not_authorized(&gossip(&mut r, &gr)), "old root grants");
    let rot2 = old.rotate(&r, writer(5).public(), [0; 32], 0);
    assert!(not_authorized(&gossip(&mut r, &rot2)), "old root rotates");
    assert_eq!(latest_value(&r, "before"), Some(json!(1)));
    assert_eq!(latest_value(&r, "after"), Some(json!(2)));
    // Every node honours it: a fresh replica given the events (and the old root's late ones)
    // in another order stores and shows the same.
    let mut other = Replica::new(&g, Config::default()).unwrap();
    let mut events = all_events(&r);
    events.reverse();
    events.push(w.encode());
    let _ = other.handle(0, Input::Fetched { from: PEER, events });
    assert_eq!(other.event_ids(), r.event_ids());
    assert!(!other.contains(&w.id) && other.contains(&rot.id));
    assert_eq!(other.view().digest(), r.view().digest());
}

#[test]
fn a_rotation_not_matching_the_commitment_is_rejected() {
    let (_, mut r) = rotatable();
    let old = writer(1);
    let wrong = old.rotate(&r, writer(9).public(), [1; 32], 0);
    match gossip(&mut r, &wrong) {
        Verdict::Invalid(Reason::NotAuthorized { target, .. }) => {
            assert!(target.contains("commitment"), "{target}")
        }
        v => panic!("expected a rejection, got {v:?}"),
    }
    // Nor can a non-root rotate, even to the committed key.
    let (_, mut r) = rotatable();
    let stranger = writer(7).rotate(&r, writer(2).public(), [1; 32], 0);
    assert!(not_authorized(&gossip(&mut r, &stranger)));
    // A chain without commitments cannot rotate at all.
    let (_, mut plain) = chain();
    let ev = writer(1).rotate(&plain, writer(2).public(), [1; 32], 0);
    assert!(not_authorized(&gossip(&mut plain, &ev)));
}

#[test]
fn rotations_chain_through_the_next_commitment() {
    let (_, mut r) = rotatable();
    let (k1, k2, k3, k4) = (writer(1), writer(2), writer(3), writer(4));
    rotate(&mut r, &k1, &k2, &k3);
    // k2 must now reveal k3 (its commitment), not anything else.
    let bad = k2.rotate(&r, k4.public(), next_key_commitment(&k4.public()), 0);
    assert!(not_authorized(&gossip(&mut r, &bad)));
    rotate(&mut r, &k2, &k3, &k4);
    put(&mut r, &k3, "k", json!("k3"));
    let w = k2.put_json(&r, "k", &json!("k2"), 0);
    assert!(not_authorized(&gossip(&mut r, &w)));
    // A revealed root is a root: it cannot be revoked.
    let rv = k3.revoke(&r, k2.public(), "", 0);
    assert_eq!(gossip(&mut r, &rv), Verdict::Invalid(Reason::RevokeRoot));
    // Nor can a rotation go back to an earlier root.
    let back = k3.rotate(&r, k1.public(), [0; 32], 0);
    assert!(not_authorized(&gossip(&mut r, &back)));
}

#[test]
fn grants_by_the_old_root_stay_valid_but_its_blind_branch_has_no_effect() {
    let (g, mut main) = rotatable();
    let (old, new, after, w) = (writer(1), writer(2), writer(3), writer(4));
    let grant_before = grant(&mut main, &old, w.public(), "", Rights::Write);
    // A copy of the chain that never sees the rotation: the old key (say, stolen) keeps
    // writing and granting there.
    let mut blind = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut blind, &main);
    rotate(&mut main, &old, &new, &after);
    put(
        &mut main,
        &w,
        "w",
        json!("by the grantee, after the rotation"),
    );
    let stale_put = put(&mut blind, &old, "x", json!("back-dated"));
    let puppet = writer(5);
    let stale_grant = grant(&mut blind, &old, puppet.public(), "", Rights::Write);
    let puppet_put = put(&mut blind, &puppet, "y", json!("puppet"));
    sync_into(&mut main, &blind);
    sync_into(&mut blind, &main);
    for r in [&main, &blind] {
        // Valid (acceptance depends on the causal past only), stored, forwarded...
        assert!(r.contains(&stale_put.id) && r.contains(&puppet_put.id));
        // ...but without effect: the rotation froze the old key at what it had seen.
        assert_eq!(latest_value(r, "x"), None);
        assert_eq!(latest_value(r, "y"), None);
        assert_eq!(r.admin_in_effect(&stale_grant.id), Some(false));
        assert_eq!(r.admin_in_effect(&grant_before.id), Some(true));
        assert_eq!(
            latest_value(r, "w"),
            Some(json!("by the grantee, after the rotation"))
        );
    }
    assert_eq!(main.view().digest(), blind.view().digest());
    // The grantee can still write after everything, and the old root still cannot.
    put(&mut main, &w, "w2", json!(1));
    let late = old.put_json(&main, "z", &json!(0), 0);
    assert!(not_authorized(&gossip(&mut main, &late)));
}

#[test]
fn rotation_survives_snapshot_and_restore() {
    let (g, mut r) = rotatable();
    let (old, new, after) = (writer(1), writer(2), writer(3));
    rotate(&mut r, &old, &new, &after);
    put(&mut r, &new, "k", json!(1));
    let checker = std::sync::Arc::new(crate::verify::Ed25519Batch);
    let mut back = Replica::restore(&g, &r.snapshot(), Config::default(), checker).unwrap();
    assert_eq!(back.view().digest(), r.view().digest());
    let w = old.put_json(&back, "late", &json!(0), 0);
    assert!(not_authorized(&gossip(&mut back, &w)));
    put(&mut back, &new, "k", json!(2));
    rotate(&mut back, &new, &after, &writer(4));
}

impl Replica {
    /// A fresh replica with the same events (tests only).
    fn clone_for_test(&self, genesis: &[u8]) -> Replica {
        let mut r = Replica::new(genesis, Config::default()).unwrap();
        sync_into(&mut r, self);
        r
    }
}
