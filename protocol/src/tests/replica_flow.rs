//! Replica behaviour: pending buffer, fetching, sync, and the queries of DESIGN §4.

use serde_json::json;

use super::*;
use crate::queries::Version;
use crate::query::{Condition, Order};
use crate::replica::SyncMsg;

#[test]
fn out_of_order_events_wait_and_ask_the_sender() {
    let (g, mut src) = chain();
    let root = writer(1);
    let e1 = put(&mut src, &root, "a", json!(1));
    let e2 = put(&mut src, &root, "a", json!(2));
    let mut dst = Replica::new(&g, Config::default()).unwrap();
    let out = dst.handle(
        5,
        Input::Gossip {
            from: PEER,
            bytes: e2.encode(),
        },
    );
    assert!(
        matches!(first_verdict(&out), Verdict::Pending { ref missing } if missing == &vec![e1.id])
    );
    let asked = out.iter().any(|o| {
        matches!(o, Output::Send { to, msg: SyncMsg::GetEvents { ids } } if *to == PEER && ids == &vec![e1.id])
    });
    assert!(asked, "{out:?}");
    assert_eq!(dst.pending_len(), 1);
    // The source answers the fetch; both become valid.
    let answer = src.handle(
        6,
        Input::Sync {
            from: PeerId(9),
            msg: SyncMsg::GetEvents { ids: vec![e1.id] },
        },
    );
    let Some(Output::Send { msg, .. }) = answer.into_iter().next() else {
        panic!("no answer")
    };
    let out = dst.handle(7, Input::Sync { from: PEER, msg });
    let valid = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Verdict {
                    verdict: Verdict::Valid,
                    ..
                }
            )
        })
        .count();
    assert_eq!(valid, 2);
    assert_eq!(dst.pending_len(), 0);
    assert_eq!(latest_value(&dst, "a"), Some(json!(2)));
}

#[test]
fn pending_buffer_is_bounded_and_times_out() {
    let (g, mut src) = chain();
    let root = writer(1);
    let mut evs = Vec::new();
    for i in 0..6 {
        evs.push(put(&mut src, &root, "k", json!(i)));
    }
    let config = Config {
        max_pending_events: 3,
        pending_timeout_ms: 100,
        ..Config::default()
    };
    let mut dst = Replica::new(&g, config).unwrap();
    let mut overloaded = 0;
    for e in evs.iter().skip(1) {
        if gossip(&mut dst, e) == Verdict::Overloaded {
            overloaded += 1;
        }
    }
    assert_eq!(dst.pending_len(), 3);
    assert_eq!(overloaded, 2);
    let _ = dst.handle(50, Input::Tick);
    assert_eq!(dst.pending_len(), 3);
    let _ = dst.handle(100, Input::Tick);
    assert_eq!(dst.pending_len(), 0);
    assert_eq!(dst.stats().pending_dropped, 5);
}

#[test]
fn an_invalid_dependency_fails_its_waiting_dependents() {
    let (g, mut src) = chain();
    let intruder = writer(5);
    // The intruder builds two events of its own on a chain copy where it is root-less.
    let e1 = intruder.put_json(&src, "x", &json!(1), 0);
    assert!(matches!(gossip(&mut src, &e1), Verdict::Invalid(_)));
    let mut dst = Replica::new(&g, Config::default()).unwrap();
    // Fake a child of e1 signed by the root: it waits for e1, then fails with it.
    let mut h = writer(1).put_json(&dst, "y", &json!(2), 0).header;
    h.parents = vec![e1.id];
    h.clock = e1.header.clock + 1;
    let body = crate::event::Body::Put(crate::event::Put {
        key: "y".into(),
        previous: None,
        seq: 0,
        value: PutValue::Json("2".into()),
    });
    let child = Event::sign(Some(&dst.chain()), h, &body, &key(1));
    assert!(matches!(gossip(&mut dst, &child), Verdict::Pending { .. }));
    let out = dst.handle(
        0,
        Input::Gossip {
            from: PEER,
            bytes: e1.encode(),
        },
    );
    let invalid = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Verdict {
                    verdict: Verdict::Invalid(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(invalid, 2, "{out:?}");
    assert_eq!(dst.pending_len(), 0);
}

#[test]
fn late_joiner_catches_up_through_heads_exchange() {
    let (g, mut src) = chain();
    let root = writer(1);
    for i in 0..50 {
        put(&mut src, &root, &format!("k{}", i % 7), json!(i));
    }
    let config = Config {
        sync_batch_events: 16,
        ..Config::default()
    };
    let mut dst = Replica::new(&g, config.clone()).unwrap();
    let mut src_cfg = Replica::new(&g, config).unwrap();
    sync_into(&mut src_cfg, &src);
    // dst says hello; messages bounce until nothing is left to say.
    let rounds = catch_up(&mut dst, &mut src_cfg, 20);
    assert_eq!(dst.event_ids(), src.event_ids());
    assert_eq!(dst.view().digest(), src.view().digest());
    assert!(
        rounds >= 4,
        "batches of 16 need several rounds, took {rounds}"
    );
}

fn parse(c: &str) -> Condition {
    Condition::parse(c).unwrap()
}

#[test]
fn list_latest_never_returns_an_old_version_that_matched() {
    let (_, mut r) = chain();
    let root = writer(1);
    put(&mut r, &root, "t1", json!({"status": "open", "n": 1}));
    put(&mut r, &root, "t1", json!({"status": "closed", "n": 2}));
    put(&mut r, &root, "t2", json!({"status": "open", "n": 3}));
    let view = r.view();
    let open = parse(r#"status = "open""#);
    let latest = view.list_latest(&Condition::True, &open, None, None);
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].key, "t2");
    // select looks at all versions, so the old open version of t1 is there.
    let all = view.select(&open, Some(&Order::parse("n").unwrap()), None);
    assert_eq!(
        all.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
        vec!["t1", "t2"]
    );
    assert_eq!(all[0].seq, 0);
    // A pre-filter restricts which versions count as latest: only versions with n < 2.
    let pre = parse("n < 2");
    let as_of = view.list_latest(&pre, &open, None, None);
    assert_eq!(
        as_of.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
        vec!["t1"]
    );
}

/// `select` and `list_latest` with a `limit` keep only the best rows while they scan (a
/// bounded buffer, cut whenever it fills): the answer must be exactly the unlimited answer's
/// first rows, for limits on both sides of the buffer's size and every order.
#[test]
fn limited_queries_equal_the_unlimited_answer_cut() {
    let (_, mut r) = chain();
    let root = writer(1);
    // 600 versions over 200 keys; n repeats, so orders on n have ties to break.
    for i in 0..600u64 {
        let key = format!("k{:03}", (i * 7) % 200);
        put(
            &mut r,
            &root,
            &key,
            json!({"n": i % 37, "even": i % 2 == 0}),
        );
    }
    let view = r.view();
    let conds = [Condition::True, parse("even = true"), parse("n >= 10")];
    let orders = [None, Some("n"), Some("-n"), Some("$key"), Some("-$seq")];
    let ids = |vs: &[Version]| vs.iter().map(|v| v.id).collect::<Vec<_>>();
    for cond in &conds {
        for o in orders {
            let order = o.map(|t| Order::parse(t).unwrap());
            let all = view.select(cond, order.as_ref(), None);
            let latest = view.list_latest(&Condition::True, cond, order.as_ref(), None);
            assert!(all.len() > 200 && latest.len() <= 200, "{cond} {o:?}");
            for limit in [0, 1, 7, 63, 64, 65, 127, 128, 129, 300, 1000] {
                let cut = |v: &[Version]| ids(&v[..limit.min(v.len())]);
                let got = view.select(cond, order.as_ref(), Some(limit));
                assert_eq!(ids(&got), cut(&all), "select {cond} {o:?} {limit}");
                let got = view.list_latest(&Condition::True, cond, order.as_ref(), Some(limit));
                assert_eq!(ids(&got), cut(&latest), "list_latest {cond} {o:?} {limit}");
            }
        }
    }
}

/// A `$key ^= "…"` that every match needs makes a query read only the keys under it (a range
/// of the key index): the answers equal those of the same condition hidden from that
/// shortcut (`not not (…)`), which scans every key.
#[test]
fn key_prefix_queries_read_a_range_and_agree_with_a_full_scan() {
    let (_, mut r) = chain();
    let root = writer(1);
    for i in 0..300u64 {
        let key = format!("k{:03}", (i * 7) % 120);
        put(&mut r, &root, &key, json!({"n": i % 13}));
    }
    put(&mut r, &root, "k", json!({"n": 1}));
    put(&mut r, &root, "l000", json!({"n": 1}));
    let view = r.view();
    let texts = [
        r#"$key ^= "k01""#,
        r#"$key ^= "k0" and n >= 5"#,
        r#"n < 3 and $key ^= "k" and $key ^= "k1""#,
        r#"$key ^= """#,
        r#"$key ^= "zz""#,
        r#"$key ^= "k1" or n = 2"#,
    ];
    assert_eq!(parse(texts[2]).key_prefix(), Some("k1"));
    assert_eq!(parse(texts[5]).key_prefix(), None);
    let ids = |vs: Vec<Version>| vs.into_iter().map(|v| v.id).collect::<Vec<_>>();
    for text in texts {
        let cond = parse(text);
        let hidden = parse(&format!("not not ({text})"));
        assert_eq!(hidden.key_prefix(), None);
        let order = Order::parse("-n").unwrap();
        for limit in [None, Some(3)] {
            let want = ids(view.select(&hidden, Some(&order), limit));
            assert_eq!(ids(view.select(&cond, Some(&order), limit)), want, "{text}");
            let t = &Condition::True;
            let want = ids(view.list_latest(t, &hidden, Some(&order), limit));
            assert_eq!(
                ids(view.list_latest(t, &cond, Some(&order), limit)),
                want,
                "{text}"
            );
            let want = ids(view.list_latest(&hidden, t, Some(&order), limit));
            assert_eq!(
                ids(view.list_latest(&cond, t, Some(&order), limit)),
                want,
                "{text}"
            );
        }
    }
    let some = view.select(&parse(r#"$key ^= "k01""#), None, None);
    assert!(!some.is_empty() && some.iter().all(|v| v.key.starts_with("k01")));
}

#[test]
fn get_by_sequence_history_and_tombstones() {
    let (_, mut r) = chain();
    let root = writer(1);
    let v0 = put(&mut r, &root, "doc", json!({"v": 0}));
    put(&mut r, &root, "doc", json!({"v": 1}));
    let t = tombstone(&r, &root, "doc");
    assert_eq!(gossip(&mut r, &t), Verdict::Valid);
    let view = r.view();
    let v1 = view.get_by_sequence(&v0.id, 1).unwrap();
    assert_eq!(v1.value, Some(json!({"v": 1})));
    assert_eq!(v1.record, v0.id);
    let latest = view.get_latest("doc").unwrap();
    assert!(latest.deleted && latest.latest && latest.seq == 2);
    assert_eq!(view.get_latest(&v0.id.to_string()).unwrap().id, latest.id);
    assert_eq!(view.list_by_prefix(&v0.id).len(), 3);
    assert!(
        view.list_latest(&Condition::True, &Condition::True, None, None)
            .is_empty()
    );
    assert_eq!(view.get_by_id(&v0.id).unwrap().seq, 0);
}

#[test]
fn concurrent_first_versions_and_forks_resolve_the_same_everywhere() {
    let (g, mut a) = chain();
    let root = writer(1);
    let w = writer(2);
    grant(&mut a, &root, w.public(), "", Rights::Write);
    let mut b = Replica::new(&g, Config::default()).unwrap();
    sync_into(&mut b, &a);
    let x = put(&mut a, &root, "k", json!("from-a"));
    let y = put(&mut b, &w, "k", json!("from-b"));
    sync_into(&mut a, &b);
    sync_into(&mut b, &a);
    let winner = if (a.clock_of(&x.id), x.id) > (b.clock_of(&y.id), y.id) {
        "from-a"
    } else {
        "from-b"
    };
    assert_eq!(latest_value(&a, "k"), Some(json!(winner)));
    assert_eq!(latest_value(&b, "k"), Some(json!(winner)));
    assert_eq!(a.view().history("k").len(), 2, "the losing record is kept");
    // A fork: both write a successor of the same version.
    let f1 = put(&mut a, &root, "k", json!("fork-1"));
    let f2 = put(&mut b, &w, "k", json!("fork-2"));
    sync_into(&mut a, &b);
    sync_into(&mut b, &a);
    assert_eq!(a.view().digest(), b.view().digest());
    let la = a.view().get_latest("k").unwrap();
    assert!(la.conflict, "a fork is reported");
    assert!(la.id == f1.id || la.id == f2.id);
}

#[test]
fn the_genesis_coming_back_in_sync_is_a_duplicate_not_an_error() {
    let (g, mut r) = chain();
    assert_eq!(gossip_bytes(&mut r, g), Verdict::Duplicate);
    assert!(r.stats().rejected.is_empty());
}

#[test]
fn a_full_pending_buffer_recovers_through_heads_exchange() {
    let (g, mut src) = chain();
    let root = writer(1);
    let mut evs = Vec::new();
    for i in 0..600 {
        evs.push(put(&mut src, &root, &format!("k{}", i % 13), json!(i)));
    }
    let config = Config {
        max_pending_events: 50,
        sync_batch_events: 64,
        ..Config::default()
    };
    let mut dst = Replica::new(&g, config).unwrap();
    // Gossip loses event 10; everything after it piles up and overflows the buffer.
    for (i, e) in evs.iter().enumerate() {
        if i != 10 {
            let _ = gossip(&mut dst, e);
        }
    }
    assert_eq!(dst.len(), 11);
    assert_eq!(dst.pending_len(), 50);
    catch_up(&mut dst, &mut src, 100);
    assert_eq!(dst.event_ids(), src.event_ids());
    assert_eq!(dst.pending_len(), 0);
    assert_eq!(dst.view().digest(), src.view().digest());
}

#[test]
fn lost_fetches_are_asked_again_on_tick_and_coalesced() {
    let (g, mut src) = chain();
    let root = writer(1);
    let evs: Vec<_> = (0..5)
        .map(|i| put(&mut src, &root, "k", json!(i)))
        .collect();
    let mut dst = Replica::new(&g, Config::default()).unwrap();
    // Four out-of-order events in one batch: one request for the one missing id.
    let batch: Vec<Vec<u8>> = evs[1..].iter().map(|e| e.encode()).collect();
    let out = dst.handle(
        0,
        Input::Fetched {
            from: PEER,
            events: batch,
        },
    );
    let asks: Vec<&SyncMsg> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(
        asks,
        vec![&SyncMsg::GetEvents {
            ids: vec![evs[0].id]
        }]
    );
    // The answer is lost. Before refetch_ms nothing is re-sent; after it, the ask repeats.
    let quiet = dst.handle(1_000, Input::Tick);
    assert!(!quiet.iter().any(|o| matches!(o, Output::Send { .. })));
    let again = dst.handle(2_500, Input::Tick);
    assert!(again.iter().any(|o| matches!(o, Output::Send { msg: SyncMsg::GetEvents { ids }, .. } if ids == &vec![evs[0].id])));
    assert_eq!(gossip(&mut dst, &evs[0]), Verdict::Valid);
    assert_eq!(dst.pending_len(), 0);
    assert_eq!(dst.len(), 6);
}

/// `dst` says hello to `src`; sync messages bounce until neither has anything to say.
/// Returns the number of round trips; fails if it takes `max_rounds` or more.
fn catch_up(dst: &mut Replica, src: &mut Replica, max_rounds: usize) -> usize {
    let mut to_src = dst.handle(0, Input::PeerUp(PeerId(1)));
    let mut rounds = 0;
    while !to_src.is_empty() {
        rounds += 1;
        assert!(rounds < max_rounds, "sync does not terminate");
        let mut to_dst = Vec::new();
        for o in to_src {
            if let Output::Send { msg, .. } = o {
                to_dst.extend(src.handle(
                    0,
                    Input::Sync {
                        from: PeerId(2),
                        msg,
                    },
                ));
            }
        }
        to_src = Vec::new();
        for o in to_dst {
            if let Output::Send { msg, .. } = o {
                to_src.extend(dst.handle(
                    0,
                    Input::Sync {
                        from: PeerId(1),
                        msg,
                    },
                ));
            }
        }
        to_src.retain(|o| matches!(o, Output::Send { .. }));
    }
    rounds
}
