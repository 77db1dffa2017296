//! Sealed values, read key shares and epochs (DESIGN §6).

use serde_json::json;

use super::*;
use crate::event::{Body, Put, ReadKeyShare};
use crate::query::Condition;
use crate::replica::Reason;
use crate::seal::{self, EpochKey, Keyring, Reader, ReaderSecret, SealError, SealWith};

/// A writer with a reader identity.
pub(crate) struct Ident {
    pub(crate) w: Writer,
    pub(crate) secret: ReaderSecret,
    pub(crate) reader: Reader,
}

pub(crate) fn ident(n: u8) -> Ident {
    let w = writer(n);
    let secret = ReaderSecret::from_seed([n; 64]);
    let reader = Reader {
        id: w.public(),
        kem: secret.public(),
    };
    Ident { w, secret, reader }
}

impl Ident {
    pub(crate) fn ring(&self, r: &Replica) -> Keyring {
        r.keyring(&self.reader.id, &self.secret)
    }

    /// Builds (and applies, asserting validity) the events for shares.
    fn publish(&self, r: &mut Replica, shares: Vec<ReadKeyShare>) -> Vec<Event> {
        shares
            .into_iter()
            .map(|s| {
                let ev = self.w.share(r, s, 0);
                assert_eq!(gossip(r, &ev), Verdict::Valid, "share");
                ev
            })
            .collect()
    }

    fn share_with(&self, r: &mut Replica, scope: &str, to: &Reader, seed: u8) -> Vec<Event> {
        let shares =
            seal::plan_share(r, &self.ring(r), &self.reader, scope, to, &[seed; 32]).unwrap();
        self.publish(r, shares)
    }

    fn unshare(&self, r: &mut Replica, scope: &str, removed: &Reader, seed: u8) -> Vec<Event> {
        let shares = seal::plan_unshare(r, &self.reader, scope, &removed.id, &[seed; 32]).unwrap();
        self.publish(r, shares)
    }

    /// A sealed put under the newest epoch this identity holds for `scope`.
    fn seal_put(&self, r: &Replica, key: &str, scope: &str, v: serde_json::Value) -> Event {
        let ring = self.ring(r);
        let (epoch, k) = ring.newest(scope).expect("holds a key of the scope");
        let with = SealWith {
            scope,
            epoch,
            key: k,
        };
        let nonce = [r.len() as u8; 24];
        self.w.put_sealed(r, key, &v, with, nonce, 0).unwrap()
    }
}

fn apply(r: &mut Replica, ev: &Event) {
    assert_eq!(gossip(r, ev), Verdict::Valid);
}

#[test]
fn a_reader_decrypts_and_a_non_reader_verifies_forwards_and_sees_sealed() {
    let (g, mut r) = chain();
    let (admin, reader, other) = (ident(1), ident(2), ident(3));
    grant(&mut r, &admin.w, other.w.public(), "", Rights::Write);
    admin.share_with(&mut r, "s/", &reader.reader, 1);
    let ev = admin.seal_put(&r, "s/1", "s/", json!({"secret": 42}));
    apply(&mut r, &ev);
    // The reader opens it, in queries too, and conditions on its fields match.
    let ring = reader.ring(&r);
    assert_eq!(ring.len(), 1);
    let v = r.view_as(&ring).get_latest("s/1").unwrap();
    assert_eq!(v.value, Some(json!({"secret": 42})));
    assert!(v.sealed.as_ref().unwrap().opened);
    let cond = Condition::parse("secret = 42").unwrap();
    assert_eq!(r.view_as(&ring).select(&cond, None, None).len(), 1);
    // A non-reader: receives it as gossip, verifies it (Valid is what makes gossipsub forward
    // it), stores it, and sees "sealed", not an error, and no match on its fields.
    let mut n = Replica::new(&g, Config::default()).unwrap();
    let mut events = all_events(&r);
    events.retain(|b| *b != ev.encode());
    let _ = n.handle(0, Input::Fetched { from: PEER, events });
    assert_eq!(gossip(&mut n, &ev), Verdict::Valid);
    let theirs = other.ring(&n);
    assert!(theirs.is_empty());
    let v = n.view_as(&theirs).get_latest("s/1").unwrap();
    assert_eq!(v.value, None);
    assert_eq!(
        v.sealed.as_ref().map(|s| (s.opened, s.epoch)),
        Some((false, 0))
    );
    assert!(n.view_as(&theirs).select(&cond, None, None).is_empty());
    assert!(n.view().select(&cond, None, None).is_empty());
    assert_eq!(
        theirs.open(&n.chain(), &ev),
        Err(SealError::NoKey {
            scope: "s/".into(),
            epoch: 0
        })
    );
    // And it forwards what it stored: a third replica syncing from it gets the same.
    let mut third = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut third, &n);
    assert_eq!(third.event_ids(), r.event_ids());
    assert_eq!(third.view().digest(), r.view().digest());
    assert_eq!(
        reader.ring(&third).open_json(&third.chain(), &ev),
        Ok(json!({"secret": 42}))
    );
}

#[test]
fn after_unshare_the_removed_reader_opens_old_values_but_not_new_ones() {
    let (_, mut r) = chain();
    let (admin, stay, gone) = (ident(1), ident(2), ident(3));
    grant(&mut r, &admin.w, stay.w.public(), "", Rights::Write);
    admin.share_with(&mut r, "s/", &stay.reader, 1);
    admin.share_with(&mut r, "s/", &gone.reader, 2);
    let old = admin.seal_put(&r, "s/old", "s/", json!("old"));
    apply(&mut r, &old);
    let unshared = admin.unshare(&mut r, "s/", &gone.reader, 3);
    assert_eq!(unshared.len(), 2, "the admin and the remaining reader");
    assert_eq!(r.read_epoch("s/").unwrap().epoch, 1);
    let new = stay.seal_put(&r, "s/new", "s/", json!("new"));
    apply(&mut r, &new);
    let chain_id = r.chain();
    let ring = gone.ring(&r);
    assert_eq!(ring.open_json(&chain_id, &old), Ok(json!("old")));
    assert_eq!(
        ring.open(&chain_id, &new),
        Err(SealError::NoKey {
            scope: "s/".into(),
            epoch: 1
        })
    );
    assert_eq!(stay.ring(&r).open_json(&chain_id, &new), Ok(json!("new")));
    assert_eq!(stay.ring(&r).open_json(&chain_id, &old), Ok(json!("old")));
    // New writes must use the new epoch: one sealed under the old epoch key is rejected.
    let old_key = ring.newest("s/").unwrap().1.clone();
    let with = SealWith {
        scope: "s/",
        epoch: 0,
        key: &old_key,
    };
    let stale = admin
        .w
        .put_sealed(&r, "s/stale", &json!(1), with, [9; 24], 0)
        .unwrap();
    match gossip(&mut r, &stale) {
        Verdict::Invalid(Reason::NotAuthorized { target, .. }) => {
            assert!(target.contains("old epoch"), "{target}")
        }
        v => panic!("expected a rejection, got {v:?}"),
    }
}

#[test]
fn a_sealed_body_swapped_onto_another_header_fails_to_open() {
    let (_, mut r) = chain();
    let admin = ident(1);
    admin.share_with(&mut r, "s/", &admin.reader, 1);
    let ev = admin.seal_put(&r, "s/a", "s/", json!("payload"));
    apply(&mut r, &ev);
    let Some(Body::Put(Put { value, .. })) = ev.body.clone() else {
        panic!("a put")
    };
    // The same sealed bytes under a new header (the next version of the same key, and a new
    // record under another key in the scope): valid events, but the value does not open.
    let moved = admin.w.put(&r, "s/a", value.clone(), 0);
    apply(&mut r, &moved);
    let elsewhere = admin.w.put(&r, "s/b", value, 0);
    apply(&mut r, &elsewhere);
    let ring = admin.ring(&r);
    assert_eq!(ring.open_json(&r.chain(), &ev), Ok(json!("payload")));
    for e in [&moved, &elsewhere] {
        assert_eq!(ring.open(&r.chain(), e), Err(SealError::Tampered));
    }
    // A reader's view shows the moved copies as sealed and unopened, not an error.
    let v = r.view_as(&ring).get_latest("s/b").unwrap();
    assert_eq!((v.value, v.sealed.map(|s| s.opened)), (None, Some(false)));
}

#[test]
fn wrong_keys_and_hostile_shares_are_clear_errors_never_panics() {
    let (_, mut r) = chain();
    let (admin, reader, stranger) = (ident(1), ident(2), ident(3));
    let shares = admin.share_with(&mut r, "s/", &reader.reader, 1);
    let ev = admin.seal_put(&r, "s/a", "s/", json!(1));
    apply(&mut r, &ev);
    let chain_id = r.chain();
    let wrong = EpochKey::from_bytes([0; 32]);
    let err = seal::open(&chain_id, &ev, &wrong).unwrap_err();
    assert_eq!(err, SealError::WrongKey);
    assert!(err.to_string().contains("wrong key"));
    // Opening a plain put is "not sealed".
    let plain = put(&mut r, &admin.w, "p", json!(1));
    assert_eq!(
        seal::open(&chain_id, &plain, &wrong),
        Err(SealError::NotSealed)
    );
    // A share for someone else, or one whose bytes were altered, does not open.
    let share: ReadKeyShare = shares
        .iter()
        .find_map(|e| match &e.body {
            Some(Body::ReadKeyShare(s)) if s.reader == reader.reader.id => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        seal::open_share(&chain_id, &share, &stranger.secret),
        Err(SealError::NotForThisReader)
    );
    for at in [0usize, 500, 1087] {
        let mut bad = share.clone();
        bad.kem_ciphertext[at] ^= 1;
        assert_eq!(
            seal::open_share(&chain_id, &bad, &reader.secret),
            Err(SealError::Tampered)
        );
    }
    let mut bad = share.clone();
    bad.wrapped_key[3] ^= 1;
    assert_eq!(
        seal::open_share(&chain_id, &bad, &reader.secret),
        Err(SealError::Tampered)
    );
    let mut short = share.clone();
    short.kem_ciphertext.truncate(10);
    assert_eq!(
        seal::open_share(&chain_id, &short, &reader.secret),
        Err(SealError::Tampered)
    );
    // Error messages never carry key bytes.
    let key = reader.ring(&r).newest("s/").unwrap().1.clone();
    for e in [
        SealError::WrongKey,
        SealError::Tampered,
        SealError::NotForThisReader,
    ] {
        let text = format!("{e} {e:?} {key:?}");
        let hex: String = key.as_bytes()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&hex), "{text}");
    }
    // A sealed put under a key no share introduced is rejected; so is one outside its scope.
    let rogue = EpochKey::from_bytes([5; 32]);
    let with = SealWith {
        scope: "s/",
        epoch: 0,
        key: &rogue,
    };
    let ev = admin
        .w
        .put_sealed(&r, "s/x", &json!(1), with, [1; 24], 0)
        .unwrap();
    assert!(matches!(
        gossip(&mut r, &ev),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    assert!(matches!(
        admin.w.put_sealed(&r, "t/x", &json!(1), with, [1; 24], 0),
        Err(SealError::OutsideScope { .. })
    ));
}

#[test]
fn only_an_admin_of_the_scope_shares() {
    let (_, mut r) = chain();
    let (admin, w, reader) = (ident(1), ident(2), ident(3));
    grant(&mut r, &admin.w, w.w.public(), "s/", Rights::Write);
    let shares =
        seal::plan_share(&r, &w.ring(&r), &w.reader, "s/", &reader.reader, &[4; 32]).unwrap();
    let ev = w.w.share(&r, shares[0].clone(), 0);
    assert!(matches!(
        gossip(&mut r, &ev),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
}

#[test]
fn shares_and_sealed_values_survive_snapshot_and_compaction() {
    let (g, mut r) = chain();
    let (admin, reader) = (ident(1), ident(2));
    admin.share_with(&mut r, "s/", &reader.reader, 1);
    let v1 = admin.seal_put(&r, "s/k", "s/", json!(1));
    apply(&mut r, &v1);
    let v2 = admin.seal_put(&r, "s/k", "s/", json!(2));
    apply(&mut r, &v2);
    let c = r.compact();
    assert_eq!(c.pruned, vec![v1.id]);
    let checker = std::sync::Arc::new(crate::verify::Ed25519Batch);
    let mut back = Replica::restore(&g, &r.snapshot(), Config::default(), checker).unwrap();
    assert_eq!(back.view().digest(), r.view().digest());
    let ring = reader.ring(&back);
    assert_eq!(ring.len(), 1);
    assert_eq!(
        back.view_as(&ring).get_latest("s/k").unwrap().value,
        Some(json!(2))
    );
    // The epoch rule still holds after the restore.
    let v3 = admin.seal_put(&back, "s/k", "s/", json!(3));
    apply(&mut back, &v3);
}
