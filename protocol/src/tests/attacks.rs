//! The attack list: each way a peer might try to get a bad event accepted.

use serde_json::json;

use super::*;
use crate::event::{Body, BodyKind, DecodeError, Event, Header, MAX_PARENTS, Put, VERSION};
use crate::replica::Reason;

fn decode_err(v: Verdict) -> DecodeError {
    match v {
        Verdict::Invalid(Reason::Decode(e)) => e,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn forged_signature_is_rejected() {
    let (_, mut r) = chain();
    let mut ev = writer(1).put_json(&r, "a", &json!(1), 0);
    // Signed by someone else but claiming the root as author.
    ev.sig = key(9).sign(&ev.id);
    assert_eq!(gossip(&mut r, &ev), Verdict::Invalid(Reason::BadSignature));
    assert_eq!(r.len(), 1);
}

#[test]
fn bit_flipped_body_is_rejected() {
    let (_, mut r) = chain();
    let ev = writer(1).put_json(&r, "a", &json!("hello"), 0);
    let mut bytes = ev.encode();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    let err = decode_err(gossip_bytes(&mut r, bytes));
    assert!(matches!(err, DecodeError::BodyMismatch(_)), "{err}");
}

#[test]
fn wrong_body_hash_is_rejected_even_when_signed() {
    let (_, mut r) = chain();
    let good = writer(1).put_json(&r, "a", &json!(1), 0);
    let other = Body::Put(Put {
        key: "a".into(),
        previous: None,
        seq: 0,
        value: PutValue::Json("2".into()),
    });
    // A correctly signed header whose body_hash names another body.
    let mut forged = Event::sign(Some(&r.chain()), good.header.clone(), &other, &key(1));
    forged.body_bytes = good.body_bytes.clone();
    forged.body = good.body.clone();
    let err = decode_err(gossip(&mut r, &forged));
    assert!(matches!(err, DecodeError::BodyMismatch(_)), "{err}");
}

#[test]
fn author_without_grant_is_rejected() {
    let (_, mut r) = chain();
    let ev = writer(2).put_json(&r, "a", &json!(1), 0);
    assert!(matches!(
        gossip(&mut r, &ev),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
}

#[test]
fn grant_outside_granters_scope_is_rejected() {
    let (_, mut r) = chain();
    let admin = writer(2);
    grant(&mut r, &writer(1), admin.public(), "users/", Rights::Admin);
    let ok = admin.grant(&r, writer(3).public(), "users/alice/", Rights::Write, 0);
    assert_eq!(gossip(&mut r, &ok), Verdict::Valid);
    let bad = admin.grant(&r, writer(4).public(), "posts/", Rights::Write, 0);
    assert!(matches!(
        gossip(&mut r, &bad),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    let wider = admin.grant(&r, writer(4).public(), "", Rights::Write, 0);
    assert!(matches!(
        gossip(&mut r, &wider),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
}

#[test]
fn write_holder_cannot_grant_or_revoke() {
    let (_, mut r) = chain();
    let w = writer(2);
    grant(&mut r, &writer(1), w.public(), "", Rights::Write);
    put(&mut r, &w, "x", json!(1));
    let g = w.grant(&r, writer(3).public(), "x", Rights::Write, 0);
    assert!(matches!(
        gossip(&mut r, &g),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    let v = w.revoke(&r, writer(3).public(), "x", 0);
    assert!(matches!(
        gossip(&mut r, &v),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
}

#[test]
fn revoked_writer_on_a_blind_branch_is_stored_but_has_no_effect() {
    let (_, mut main) = chain();
    let w = writer(2);
    grant(&mut main, &writer(1), w.public(), "", Rights::Write);
    put(&mut main, &w, "k", json!("before"));
    // The writer forks off a replica that will never see the revocation.
    let (g, _) = chain();
    let mut blind = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut blind, &main);
    revoke(&mut main, &writer(1), w.public(), "");
    // After the revocation, the writer cannot write on top of it.
    let after = w.put_json(&main, "k", &json!("after"), 0);
    assert!(matches!(
        gossip(&mut main, &after),
        Verdict::Invalid(Reason::NotAuthorized { .. })
    ));
    // But on the blind branch the write is valid (its causal past has no revocation)...
    let sneaky = w.put_json(&blind, "k", &json!("sneaky"), 0);
    assert_eq!(gossip(&mut blind, &sneaky), Verdict::Valid);
    assert_eq!(gossip(&mut main, &sneaky), Verdict::Valid);
    // ...and has no effect where the revocation is known, in either arrival order.
    assert_eq!(latest_value(&main, "k"), Some(json!("before")));
    sync_into(&mut blind, &main);
    assert_eq!(latest_value(&blind, "k"), Some(json!("before")));
    assert_eq!(main.view().digest(), blind.view().digest());
    assert!(!main.view().get_by_id(&sneaky.id).unwrap().effective);
}

#[test]
fn replay_is_a_duplicate_and_cross_chain_replay_fails() {
    let (_, mut r) = chain();
    let ev = put(&mut r, &writer(1), "a", json!(1));
    assert_eq!(gossip(&mut r, &ev), Verdict::Duplicate);
    // The same bytes on another chain: the id hashes the chain in, so the signature fails.
    let g2 = genesis("other", &key(1), &[], Params::default(), 43, 1_000).encode();
    let mut other = Replica::new(&g2, Config::default()).unwrap();
    assert_eq!(
        gossip(&mut other, &ev),
        Verdict::Invalid(Reason::BadSignature)
    );
    assert_eq!(other.len(), 1);
}

fn resign(r: &Replica, mut header: Header, body: &Body, k: &SecretKey) -> Event {
    header.version = VERSION;
    Event::sign(Some(&r.chain()), header, body, k)
}

#[test]
fn seq_prev_and_clock_lies_are_rejected() {
    let (_, mut r) = chain();
    let root = writer(1);
    let first = put(&mut r, &root, "a", json!(1));
    let honest = root.put_json(&r, "b", &json!(2), 0);
    let body = honest.body.clone().unwrap();

    let mut h = honest.header.clone();
    h.seq += 1;
    let lie = resign(&r, h, &body, &key(1));
    assert!(matches!(
        gossip(&mut r, &lie),
        Verdict::Invalid(Reason::SeqMismatch { .. })
    ));

    let mut h = honest.header.clone();
    h.clock += 5;
    let lie = resign(&r, h, &body, &key(1));
    assert!(matches!(
        gossip(&mut r, &lie),
        Verdict::Invalid(Reason::ClockMismatch { .. })
    ));

    // prev pointing at someone else's event: grant writer 2, let it write, then claim its event.
    let w = writer(2);
    grant(&mut r, &root, w.public(), "", Rights::Write);
    let theirs = put(&mut r, &w, "c", json!(3));
    let mut h = root.put_json(&r, "d", &json!(4), 0).header;
    h.prev = Some(theirs.id);
    let ev = resign(&r, h, &body, &key(1));
    assert_eq!(
        gossip(&mut r, &ev),
        Verdict::Invalid(Reason::PrevWrongAuthor)
    );
    assert!(r.contains(&first.id));
}

#[test]
fn too_many_parents_oversized_truncated_and_garbage_are_rejected() {
    let (_, mut r) = chain();
    let ev = writer(1).put_json(&r, "a", &json!(1), 0);
    let mut h = ev.header.clone();
    h.parents = (0..=MAX_PARENTS as u8).map(|i| EventId([i; 32])).collect();
    let lie = resign(&r, h, ev.body.as_ref().unwrap(), &key(1));
    let err = decode_err(gossip(&mut r, &lie));
    assert!(matches!(err, DecodeError::BadHeader(_)), "{err}");

    let big = writer(1).put_json(&r, "a", &json!("x".repeat(70_000)), 0);
    let err = decode_err(gossip(&mut r, &big));
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");

    let bytes = ev.encode();
    for n in 0..bytes.len() {
        assert!(
            matches!(
                gossip_bytes(&mut r, bytes[..n].to_vec()),
                Verdict::Invalid(_)
            ),
            "prefix {n}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        gossip_bytes(&mut r, trailing),
        Verdict::Invalid(_)
    ));
    let mut seed = 1u64;
    for _ in 0..2000 {
        let len = (seed % 300) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        assert!(matches!(gossip_bytes(&mut r, junk), Verdict::Invalid(_)));
    }
    assert_eq!(r.len(), 1);
}

#[test]
fn non_canonical_encodings_are_rejected() {
    let (_, mut r) = chain();
    let ev = writer(1).put_json(&r, "a", &json!(1), 0);
    let bytes = ev.encode();
    // The header length prefix (a varint) and where the header starts.
    let n = bytes.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    // Overlong varint: same value, one more byte.
    let mut long = bytes[..n].to_vec();
    long[n - 1] |= 0x80;
    long.push(0x00);
    long.extend_from_slice(&bytes[n..]);
    assert!(matches!(
        decode_err(gossip_bytes(&mut r, long)),
        DecodeError::BadLength(_)
    ));
    // Unknown version.
    let mut v2 = bytes.clone();
    v2[n] = 2;
    assert_eq!(
        decode_err(gossip_bytes(&mut r, v2)),
        DecodeError::UnknownVersion(2)
    );
    // A bad-signature copy in the same batch does not shadow the good copy.
    let mut bad = bytes.clone();
    let sig_at = bytes.len() - ev.body_bytes.len() - 1 - 64;
    bad[sig_at] ^= 1;
    let out = r.handle(
        0,
        Input::Fetched {
            from: PEER,
            events: vec![bad, bytes.clone()],
        },
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Verdict {
                verdict: Verdict::Valid,
                ..
            }
        )),
        "{out:?}"
    );
    // Unsorted parents, properly signed.
    let mut h = ev.header.clone();
    h.parents = vec![EventId([9; 32]), EventId([1; 32])];
    h.body_kind = BodyKind::Put;
    let lie = resign(&r, h, ev.body.as_ref().unwrap(), &key(1));
    let err = decode_err(gossip(&mut r, &lie));
    assert!(matches!(err, DecodeError::BadHeader(_)), "{err}");
}
