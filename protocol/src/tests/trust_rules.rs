//! The chain-of-trust rules of DESIGN §3 that go beyond single attacks.

use serde_json::json;

use super::*;
use crate::replica::{ChangeKind, Reason};

fn fresh_from(g: &[u8]) -> Replica {
    Replica::new(g, Config::default()).unwrap()
}

#[test]
fn revocation_cascades_through_grants_made_on_a_blind_branch() {
    let (g, mut main) = chain();
    let root = writer(1);
    let admin = writer(2);
    let puppet = writer(3);
    grant(&mut main, &root, admin.public(), "", Rights::Admin);
    let mut blind = fresh_from(&g);
    sync_into(&mut blind, &main);
    // On the blind branch the admin creates a sock puppet, which writes.
    let pg = grant(&mut blind, &admin, puppet.public(), "", Rights::Write);
    let pw = put(&mut blind, &puppet, "k", json!("puppet"));
    // Meanwhile the root revokes the admin without having seen any of that.
    revoke(&mut main, &root, admin.public(), "");
    sync_into(&mut main, &blind);
    sync_into(&mut blind, &main);
    for r in [&main, &blind] {
        assert!(
            r.contains(&pg.id) && r.contains(&pw.id),
            "both are valid and stored"
        );
        assert_eq!(
            r.admin_in_effect(&pg.id),
            Some(false),
            "the puppet's grant is cut"
        );
        assert!(
            !r.view().get_by_id(&pw.id).unwrap().effective,
            "so is its write"
        );
        assert_eq!(latest_value(r, "k"), None);
    }
    assert_eq!(main.view().digest(), blind.view().digest());
}

#[test]
fn grants_the_revoker_saw_stay_in_effect() {
    let (_, mut r) = chain();
    let root = writer(1);
    let admin = writer(2);
    let w = writer(3);
    grant(&mut r, &root, admin.public(), "", Rights::Admin);
    let g = grant(&mut r, &admin, w.public(), "", Rights::Write);
    revoke(&mut r, &root, admin.public(), "");
    assert_eq!(r.admin_in_effect(&g.id), Some(true));
    put(&mut r, &w, "still", json!(true));
    assert_eq!(latest_value(&r, "still"), Some(json!(true)));
}

#[test]
fn mutual_revocation_first_in_clock_id_order_wins_everywhere() {
    let (g, mut base) = chain();
    let root = writer(1);
    let a = writer(2);
    let b = writer(3);
    grant(&mut base, &root, a.public(), "", Rights::Admin);
    grant(&mut base, &root, b.public(), "", Rights::Admin);
    let mut ra = fresh_from(&g);
    let mut rb = fresh_from(&g);
    sync_into(&mut ra, &base);
    sync_into(&mut rb, &base);
    let ea = revoke(&mut ra, &a, b.public(), "");
    let eb = revoke(&mut rb, &b, a.public(), "");
    assert_eq!(ra.clock_of(&ea.id), rb.clock_of(&eb.id));
    let first_is_a = ea.id < eb.id;
    sync_into(&mut ra, &rb);
    sync_into(&mut rb, &ra);
    for r in [&ra, &rb] {
        assert_eq!(r.admin_in_effect(&ea.id), Some(first_is_a));
        assert_eq!(r.admin_in_effect(&eb.id), Some(!first_is_a));
    }
    assert_eq!(ra.view().digest(), rb.view().digest());
}

#[test]
fn a_late_revocation_undoes_applied_writes() {
    let (g, mut main) = chain();
    let root = writer(1);
    let w = writer(2);
    grant(&mut main, &root, w.public(), "", Rights::Write);
    let mut side = fresh_from(&g);
    sync_into(&mut side, &main);
    let rv = root.revoke(&main, w.public(), "", 0);
    assert_eq!(gossip(&mut main, &rv), Verdict::Valid);
    // Side applies a write by w (concurrent with the revocation) before it hears of it.
    let wr = put(&mut side, &w, "k", json!("concurrent"));
    assert_eq!(latest_value(&side, "k"), Some(json!("concurrent")));
    let out = side.handle(
        0,
        Input::Gossip {
            from: PEER,
            bytes: rv.encode(),
        },
    );
    let disabled = out.iter().any(
        |o| matches!(o, Output::Changed(c) if c.id == wr.id && c.kind == ChangeKind::Disabled),
    );
    assert!(
        disabled,
        "subscribers learn the write lost its effect: {out:?}"
    );
    assert_eq!(latest_value(&side, "k"), None);
    sync_into(&mut main, &side);
    assert_eq!(main.view().digest(), side.view().digest());
}

#[test]
fn regrant_after_revocation_restores_and_scopes_are_respected() {
    let (_, mut r) = chain();
    let root = writer(1);
    let w = writer(2);
    grant(&mut r, &root, w.public(), "", Rights::Write);
    revoke(&mut r, &root, w.public(), "secret/");
    put(&mut r, &w, "public/a", json!(1));
    let denied = w.put_json(&r, "secret/a", &json!(1), 0);
    assert!(matches!(
        gossip(&mut r, &denied),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    grant(&mut r, &root, w.public(), "secret/", Rights::Write);
    put(&mut r, &w, "secret/a", json!(2));
    assert_eq!(latest_value(&r, "secret/a"), Some(json!(2)));
    assert_eq!(latest_value(&r, "public/a"), Some(json!(1)));
}

#[test]
fn roots_cannot_be_revoked() {
    let (_, mut r) = chain();
    let admin = writer(2);
    grant(&mut r, &writer(1), admin.public(), "", Rights::Admin);
    let ev = admin.revoke(&r, writer(1).public(), "", 0);
    assert_eq!(gossip(&mut r, &ev), Verdict::Invalid(Reason::RevokeRoot));
}

#[test]
fn equivocation_is_detected_and_both_sides_kept() {
    let (_, mut r) = chain();
    let root = writer(1);
    put(&mut r, &root, "base", json!(0));
    let a = root.put_json(&r, "x", &json!("a"), 0);
    let b = root.put_json(&r, "y", &json!("b"), 0);
    assert_eq!(a.header.seq, b.header.seq);
    assert_eq!(gossip(&mut r, &a), Verdict::Valid);
    assert_eq!(gossip(&mut r, &b), Verdict::Valid);
    assert_eq!(r.stats().equivocations, 1);
    let e = &r.equivocations()[0];
    assert_eq!(e.author, root.public());
    assert_eq!(e.events, [a.id, b.id]);
    assert_eq!(latest_value(&r, "x"), Some(json!("a")));
    assert_eq!(latest_value(&r, "y"), Some(json!("b")));
}
