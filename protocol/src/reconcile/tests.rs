//! Reconciliation tests: the index against a model, sessions on random set pairs, adversarial
//! peers, and the 1M-item figures (release only).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::ids::EventId;

/// splitmix64: a tiny deterministic generator for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn id(n: u64) -> EventId {
    EventId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// The `i`-th event of a chain with `writers` concurrent writers: clocks grow by one every
/// `writers` events, so several events share a clock.
fn key(i: u64, writers: u64) -> ReconKey {
    ReconKey::new(i / writers.max(1), id(i))
}

fn index_of(keys: impl IntoIterator<Item = ReconKey>) -> ReconIndex {
    let mut ix = ReconIndex::new();
    for k in keys {
        ix.insert(k.clock, k.id);
    }
    ix
}

/// What one reconciliation produced, seen from outside.
#[derive(Debug, Default)]
struct Run {
    messages: usize,
    bytes_a_to_b: usize,
    bytes_b_to_a: usize,
    /// Ids B lacks, as reported by A (`peer_lacks`) or B (`we_lack`).
    b_lacks: Vec<EventId>,
    a_lacks: Vec<EventId>,
    error: Option<ReconError>,
}

impl Run {
    fn bytes(&self) -> usize {
        self.bytes_a_to_b + self.bytes_b_to_a
    }

    fn round_trips(&self) -> usize {
        self.messages.div_ceil(2)
    }
}

/// Runs a session, `a` initiating, every message going through its byte form.
fn reconcile(a: &ReconIndex, b: &ReconIndex, cfg: &ReconConfig, max_messages: usize) -> Run {
    let mut run = Run::default();
    let (mut sa, open) = Session::initiate(a, cfg, [7; 16], 0);
    let mut in_flight = Some(open);
    let mut sb: Option<Session> = None;
    let mut to_b = true;
    while let Some(msg) = in_flight.take() {
        assert!(
            run.messages < max_messages,
            "no end after {max_messages} messages"
        );
        let bytes = msg.encode();
        assert!(bytes.len() <= cfg.max_msg_bytes, "{} bytes", bytes.len());
        assert_eq!(bytes.len(), msg.encoded_len());
        run.messages += 1;
        let msg = ReconMsg::decode(&bytes, cfg.max_msg_bytes).unwrap();
        let step = if to_b {
            run.bytes_a_to_b += bytes.len();
            match sb.as_mut() {
                None => Session::respond(b, cfg, msg, 0).map(|(s, step)| {
                    sb = Some(s);
                    step
                }),
                Some(s) => s.handle(b, msg, 0),
            }
        } else {
            run.bytes_b_to_a += bytes.len();
            sa.handle(a, msg, 0)
        };
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        };
        let (lacks_self, lacks_peer) = if to_b {
            (&mut run.b_lacks, &mut run.a_lacks)
        } else {
            (&mut run.a_lacks, &mut run.b_lacks)
        };
        lacks_self.extend(step.we_lack);
        lacks_peer.extend(step.peer_lacks);
        in_flight = step.reply;
        to_b = !to_b;
    }
    assert!(sa.is_done(), "initiator still waiting");
    assert!(
        sb.as_ref().is_none_or(Session::is_done),
        "responder still waiting"
    );
    run
}

/// Both sides together named exactly the ids each lacks, each once.
fn assert_exact(a: &ReconIndex, b: &ReconIndex, run: &Run) {
    assert_eq!(run.error, None);
    let a_set: BTreeSet<EventId> = a.iter().map(|k| k.id).collect();
    let b_set: BTreeSet<EventId> = b.iter().map(|k| k.id).collect();
    let want_b: BTreeSet<EventId> = a_set.difference(&b_set).copied().collect();
    let want_a: BTreeSet<EventId> = b_set.difference(&a_set).copied().collect();
    let got_b: BTreeSet<EventId> = run.b_lacks.iter().copied().collect();
    let got_a: BTreeSet<EventId> = run.a_lacks.iter().copied().collect();
    assert_eq!(
        got_b.len(),
        run.b_lacks.len(),
        "an id B lacks was named twice"
    );
    assert_eq!(
        got_a.len(),
        run.a_lacks.len(),
        "an id A lacks was named twice"
    );
    assert_eq!(got_b, want_b, "ids B lacks");
    assert_eq!(got_a, want_a, "ids A lacks");
}

/// Applies a run's findings: both indexes end as the union.
fn apply(a: &mut ReconIndex, b: &mut ReconIndex, run: &Run) {
    let all: std::collections::HashMap<EventId, ReconKey> =
        a.iter().chain(b.iter()).map(|k| (k.id, k)).collect();
    for i in &run.a_lacks {
        a.insert(all[i].clock, *i);
    }
    for i in &run.b_lacks {
        b.insert(all[i].clock, *i);
    }
}

mod index_model {
    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0u64..60, 0u64..5_000).prop_map(|(c, i)| Op::Insert(c, i)),
                1 => any::<usize>().prop_map(Op::Remove),
            ],
            0..1_500,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn index_matches_a_sorted_set(ops in ops(), probes in prop::collection::vec((0u64..64, any::<[u8; 2]>()), 8)) {
            let mut ix = ReconIndex::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(c, i) => {
                        let k = ReconKey::new(c, id(i));
                        prop_assert_eq!(ix.insert(c, k.id), model.insert(k));
                    }
                    Op::Remove(n) => {
                        let k = model.iter().nth(n % model.len().max(1)).copied()
                            .unwrap_or(ReconKey::new(1, id(1)));
                        prop_assert_eq!(ix.remove(k.clock, k.id), model.remove(&k));
                    }
                }
            }
            ix.check();
            prop_assert_eq!(ix.len(), model.len());
            let bulk = ReconIndex::from_keys(model.iter().rev().copied().collect());
            bulk.check();
            prop_assert_eq!(bulk.total(), ix.total());
            prop_assert_eq!(bulk.iter().collect::<Vec<_>>(), ix.iter().collect::<Vec<_>>());
            let keys: Vec<ReconKey> = model.iter().copied().collect();
            prop_assert_eq!(ix.iter().collect::<Vec<_>>(), keys.clone());
            for (r, k) in keys.iter().enumerate() {
                prop_assert_eq!(ix.get(r), Some(*k));
                prop_assert!(ix.contains(k.clock, &k.id));
            }
            // Ranges between probe bounds: count, sum and items agree with the model.
            let bound = |(c, p): (u64, [u8; 2])| {
                let mut raw = [0u8; 32];
                raw[..2].copy_from_slice(&p);
                Bound::At(ReconKey::new(c, EventId(raw)))
            };
            let mut bounds: Vec<Bound> = probes.into_iter().map(bound).collect();
            bounds.push(Bound::MIN);
            bounds.push(Bound::End);
            for lo in &bounds {
                for hi in &bounds {
                    let inside: Vec<ReconKey> = keys.iter().copied()
                        .filter(|k| lo.is_at_or_below(k) && hi.is_above(k)).collect();
                    let mut sum = ItemSum::ZERO;
                    for k in &inside {
                        sum.add(&ItemSum::of(&k.id));
                    }
                    let s = ix.summary(lo, hi);
                    prop_assert_eq!(s, RangeSummary { count: inside.len() as u64, sum });
                    prop_assert_eq!(ix.range(lo, hi).collect::<Vec<_>>(), inside);
                }
            }
        }
    }

    #[test]
    fn appends_fill_leaves_and_removal_empties() {
        let mut ix = ReconIndex::new();
        for i in 0..20_000 {
            assert!(ix.insert(i / 3, id(i)));
        }
        ix.check();
        let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
        assert!(per_item < 56.0, "{per_item} B/item");
        for i in 0..20_000 {
            assert!(ix.remove(i / 3, id(i)));
        }
        ix.check();
        assert!(ix.is_empty());
        assert_eq!(ix.total(), RangeSummary::default());
        assert!(ix.insert(5, id(5)));
        ix.check();
    }
}

mod sessions {
    use super::*;

    /// Set pairs: 0 equal, 1 disjoint, 2 one empty, 3 tail difference, 4 scattered.
    fn pair(kind: u8, n: u64, seed: u64) -> (ReconIndex, ReconIndex) {
        let mut rng = Rng(seed);
        let writers = 1 + rng.below(4);
        let all = |range: std::ops::Range<u64>| range.map(move |i| key(i, writers));
        match kind {
            0 => (index_of(all(0..n)), index_of(all(0..n))),
            1 => (index_of(all(0..n)), index_of(all(n..2 * n + 3))),
            2 if seed.is_multiple_of(2) => (index_of(all(0..n)), ReconIndex::new()),
            2 => (ReconIndex::new(), index_of(all(0..n))),
            3 => {
                let tail = rng.below(n + 1);
                let (a_end, b_end) = if seed.is_multiple_of(2) {
                    (n, n - tail)
                } else {
                    (n - tail, n)
                };
                (index_of(all(0..a_end)), index_of(all(0..b_end)))
            }
            _ => {
                let mut a = ReconIndex::new();
                let mut b = ReconIndex::new();
                let p = 1 + rng.below(30);
                for k in all(0..n) {
                    match rng.below(100) {
                        x if x < p => {
                            a.insert(k.clock, k.id);
                        }
                        x if x < 2 * p => {
                            b.insert(k.clock, k.id);
                        }
                        _ => {
                            a.insert(k.clock, k.id);
                            b.insert(k.clock, k.id);
                        }
                    }
                }
                (a, b)
            }
        }
    }

    fn config(split: usize, threshold: usize, small: bool) -> ReconConfig {
        let mut cfg = ReconConfig {
            split_factor: split,
            list_threshold: threshold,
            ..ReconConfig::default()
        };
        if small {
            cfg.max_msg_bytes = cfg.validate().err().map_or(0, |_| 0);
            cfg.max_msg_bytes = 0;
            // The smallest message the configuration accepts: forces deferrals.
            if let Err(ConfigError::MessageTooSmall { need, .. }) = cfg.validate() {
                cfg.max_msg_bytes = need;
            }
        }
        cfg.validate().unwrap();
        cfg
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]

        #[test]
        fn both_sides_learn_exactly_the_difference(
            kind in 0u8..5,
            n in 0u64..600,
            seed in any::<u64>(),
            split in 2usize..20,
            threshold in 1usize..40,
            small in any::<bool>(),
        ) {
            let (mut a, mut b) = pair(kind, n, seed);
            let cfg = config(split, threshold, small);
            let run = reconcile(&a, &b, &cfg, 10_000);
            assert_exact(&a, &b, &run);
            // Reversed roles too.
            let back = reconcile(&b, &a, &cfg, 10_000);
            assert_exact(&b, &a, &back);
            // Once the findings are applied, one round trip confirms the sets agree.
            apply(&mut a, &mut b, &run);
            let again = reconcile(&a, &b, &cfg, 10);
            assert_exact(&a, &b, &again);
            prop_assert!(again.round_trips() <= 1, "{again:?}");
            prop_assert!(again.a_lacks.is_empty() && again.b_lacks.is_empty());
        }
    }

    #[test]
    fn rounds_grow_with_the_log_of_the_set() {
        let cfg = ReconConfig::default();
        for n in [100u64, 1_000, 20_000] {
            let a = index_of((0..n).map(|i| key(i, 3)));
            let mut b = a.clone();
            let k = key(n / 3, 3);
            assert!(b.remove(k.clock, k.id));
            let run = reconcile(&a, &b, &cfg, 100);
            assert_exact(&a, &b, &run);
            assert_eq!(run.b_lacks, vec![k.id]);
            // log_16(20k / 32) < 3: at most 2 splits each way, then a list.
            assert!(run.round_trips() <= 3, "{n}: {run:?}");
        }
    }

    /// 1M items, one difference, in a debug build too (the index is bulk-built).
    #[test]
    fn million_items_one_difference() {
        let keys: Vec<ReconKey> = (0..1_000_000).map(|i| key(i, 4)).collect();
        let a = ReconIndex::from_keys(keys);
        let mut b = a.clone();
        let gone = key(765_432, 4);
        assert!(b.remove(gone.clock, gone.id));
        let cfg = ReconConfig::default();
        // (Checked directly: `assert_exact` builds sets of 1M ids, slow in debug.)
        let run = reconcile(&a, &b, &cfg, 20);
        assert_eq!(
            (run.error, run.b_lacks, run.a_lacks),
            (None, vec![gone.id], vec![])
        );
        assert!(run.messages <= 6 && run.bytes_a_to_b + run.bytes_b_to_a <= 3_000);
        let run = reconcile(&b, &a, &cfg, 20);
        assert_eq!(
            (run.error, run.b_lacks, run.a_lacks),
            (None, vec![], vec![gone.id])
        );
        assert!(run.messages <= 6 && run.bytes_a_to_b + run.bytes_b_to_a <= 3_000);
    }

    #[test]
    fn dropped_session_resumes_with_a_fresh_one() {
        let cfg = ReconConfig {
            max_msg_bytes: 4096,
            ..ReconConfig::default()
        };
        cfg.validate().unwrap();
        let (mut a, mut b) = pair(4, 3_000, 42);
        // Run only a few messages, apply what was learned, then drop the session.
        let (_, open) = Session::initiate(&a, &cfg, [1; 16], 0);
        let (_, step) = Session::respond(&b, &cfg, open, 0).unwrap();
        assert!(step.reply.is_some());
        // A new session (new nonce) from scratch still finds everything.
        let run = reconcile(&a, &b, &cfg, 10_000);
        assert_exact(&a, &b, &run);
        apply(&mut a, &mut b, &run);
        assert_eq!(a.total(), b.total());
    }

    #[test]
    fn small_initiator_lists_and_needs_no_reply() {
        let cfg = ReconConfig::default();
        let a = index_of((0..5).map(|i| key(i, 1)));
        let b = index_of((3..5000).map(|i| key(i, 1)));
        let run = reconcile(&a, &b, &cfg, 10);
        assert_exact(&a, &b, &run);
        assert_eq!(run.messages, 1);
    }
}

mod adversaries {
    use super::*;

    fn setup(n: u64) -> (ReconIndex, ReconConfig) {
        (index_of((0..n).map(|i| key(i, 2))), ReconConfig::default())
    }

    /// Our fingerprint ranges in a message we sent.
    fn asked_in(reply: &ReconMsg) -> Vec<(Bound, Bound)> {
        let mut open = Vec::new();
        let mut lo = Bound::MIN;
        let mut clock = 0u64;
        for r in reply.ranges() {
            let hi = match &r.upper {
                WireBound::End => Bound::End,
                WireBound::At {
                    clock_delta,
                    id_prefix,
                } => {
                    clock += clock_delta;
                    let mut raw = [0u8; 32];
                    raw[..id_prefix.len()].copy_from_slice(id_prefix);
                    Bound::At(ReconKey::new(clock, EventId(raw)))
                }
            };
            if matches!(r.payload, Payload::Fingerprint(_)) {
                open.push((lo, hi));
            }
            lo = hi;
        }
        open
    }

    /// A liar's answer: a made-up fingerprint for every range we asked about, so every range
    /// "differs" and we split it, round after round.
    fn lie(asked: &[(Bound, Bound)], rng: &mut Rng) -> Vec<WireRange> {
        let mut ranges = Vec::new();
        let mut clock = 0u64;
        let mut at = Bound::MIN;
        let mut bound = |b: Bound| match b {
            Bound::End => WireBound::End,
            Bound::At(k) => {
                let delta = k.clock - clock;
                clock = k.clock;
                WireBound::At {
                    clock_delta: delta,
                    id_prefix: k.id.0.to_vec(),
                }
            }
        };
        for (lo, hi) in asked {
            if *lo != at {
                ranges.push(WireRange {
                    upper: bound(*lo),
                    payload: Payload::Skip,
                });
            }
            let mut fp = [0u8; 16];
            fp[..8].copy_from_slice(&rng.next().to_le_bytes());
            ranges.push(WireRange {
                upper: bound(*hi),
                payload: Payload::Fingerprint(Fingerprint(fp)),
            });
            at = *hi;
        }
        ranges
    }

    /// Drives our initiator session against the liar; returns messages received and the end.
    fn against_liar(ix: &ReconIndex, cfg: &ReconConfig) -> (u32, Result<(), ReconError>) {
        let mut rng = Rng(9);
        let (mut s, open) = Session::initiate(ix, cfg, [3; 16], 0);
        let mut asked = asked_in(&open);
        let mut round = 1;
        loop {
            let msg = ReconMsg::Reply {
                round,
                ranges: lie(&asked, &mut rng),
            };
            let step = match s.handle(ix, msg, 0) {
                Ok(step) => step,
                Err(e) => return (s.stats().rounds, Err(e)),
            };
            match step.reply {
                Some(reply) if !step.done => asked = asked_in(&reply),
                _ => {
                    assert!(s.is_done());
                    return (s.stats().rounds, Ok(()));
                }
            }
            round += 2;
        }
    }

    /// A peer that claims every range differs can make us list our whole set (as can an
    /// honest peer with a disjoint set), but no more: ~log_F(n/T) rounds of splitting, then
    /// lists, `max_msg_bytes` at a time.
    #[test]
    fn liar_makes_us_list_everything_then_the_session_ends() {
        let n = 20_000u64;
        let (ix, cfg) = setup(n);
        let (messages, end) = against_liar(&ix, &cfg);
        assert_eq!(end, Ok(()));
        // 3 rounds of splitting (16^3 · 32 > 20k), then 20k · 33 B of lists and ~96 KB of
        // splits, at 48 KB of new work per message (3/4 of the budget): ~19, plus deferrals.
        assert!(messages <= 30, "{messages} messages");
    }

    /// With a larger set the liar is cut off by the round limit, at exactly that message.
    #[test]
    fn liar_is_cut_off_at_the_round_limit() {
        let (ix, cfg) = setup(200_000);
        let cfg = ReconConfig {
            max_rounds: 12,
            ..cfg
        };
        let (messages, end) = against_liar(&ix, &cfg);
        assert_eq!(end, Err(ReconError::TooManyRounds { limit: 12 }));
        assert_eq!(messages, 13);
    }

    #[test]
    fn answers_about_unasked_ranges_are_refused() {
        let (ix, cfg) = setup(10_000);
        let other = index_of((5..10_005).map(|i| key(i, 2)));
        let (mut s, open) = Session::initiate(&ix, &cfg, [3; 16], 0);
        let (_, step) = Session::respond(&other, &cfg, open.clone(), 0).unwrap();
        let reply = step.reply.unwrap();
        // Our first question was everything; the second time, our question is narrower:
        // repeating the whole-range question back is not an answer.
        let step = s.handle(&ix, reply, 0).unwrap();
        assert!(step.reply.is_some());
        let ReconMsg::Open { ranges, .. } = open else {
            unreachable!()
        };
        let err = s.handle(&ix, ReconMsg::Reply { round: 3, ranges }, 0);
        assert!(
            matches!(err, Err(ReconError::Unasked | ReconError::NoProgress)),
            "{err:?}"
        );
        assert!(s.is_done());
        assert_eq!(
            s.handle(
                &ix,
                ReconMsg::Reply {
                    round: 3,
                    ranges: vec![]
                },
                0
            ),
            Err(ReconError::Finished)
        );
    }

    #[test]
    fn deferral_without_progress_is_refused() {
        let (ix, cfg) = setup(10_000);
        let (mut s, _) = Session::initiate(&ix, &cfg, [3; 16], 0);
        // Our question is [MIN, End); a "deferral" of all of it answers nothing.
        let ranges = vec![WireRange {
            upper: WireBound::End,
            payload: Payload::Fingerprint(Fingerprint([1; 16])),
        }];
        // Inside the asked range, so allowed once: we split.
        let step = s
            .handle(
                &ix,
                ReconMsg::Reply {
                    round: 1,
                    ranges: ranges.clone(),
                },
                0,
            )
            .unwrap();
        assert!(step.reply.is_some());
        let err = s.handle(&ix, ReconMsg::Reply { round: 3, ranges }, 0);
        assert_eq!(err, Err(ReconError::NoProgress));
    }

    #[test]
    fn replays_timeouts_and_limits() {
        let (ix, cfg) = setup(10_000);
        let peer = index_of((1..10_000).map(|i| key(i, 2)));
        let (mut s, open) = Session::initiate(&ix, &cfg, [3; 16], 0);
        let (mut p, step) = Session::respond(&peer, &cfg, open.clone(), 0).unwrap();
        let reply = step.reply.unwrap();
        // Wrong round.
        let mut s2 = Session::initiate(&ix, &cfg, [3; 16], 0).0;
        let ReconMsg::Reply { ranges, .. } = reply.clone() else {
            unreachable!()
        };
        assert_eq!(
            s2.handle(&ix, ReconMsg::Reply { round: 5, ranges }, 0),
            Err(ReconError::WrongRound {
                expected: 1,
                got: 5
            })
        );
        // An Open to a running session, and a reply to `respond`.
        assert_eq!(p.handle(&peer, open, 0), Err(ReconError::UnexpectedOpen));
        assert_eq!(
            Session::respond(&peer, &cfg, reply.clone(), 0).err(),
            Some(ReconError::ExpectedOpen)
        );
        // Expiry: idle too long.
        let late = cfg.idle_timeout_ms + 1;
        assert!(s.is_expired(late));
        assert_eq!(s.handle(&ix, reply, late), Err(ReconError::Expired));
        // Round limit.
        let tight = ReconConfig {
            max_rounds: 1,
            ..cfg.clone()
        };
        let (mut s, open) = Session::initiate(&ix, &tight, [4; 16], 0);
        let (_, step) = Session::respond(&peer, &tight, open, 0).unwrap();
        let step = s.handle(&ix, step.reply.unwrap(), 0).unwrap();
        let (mut s3, open) = Session::initiate(&ix, &tight, [4; 16], 0);
        let _ = step;
        let (mut p3, step) = Session::respond(&peer, &tight, open, 0).unwrap();
        let step = s3.handle(&ix, step.reply.unwrap(), 0).unwrap();
        assert_eq!(
            p3.handle(&peer, step.reply.unwrap(), 0),
            Err(ReconError::TooManyRounds { limit: 1 })
        );
    }

    #[test]
    fn malformed_content_is_refused() {
        let (ix, cfg) = setup(100);
        let bad = ReconMsg::Open {
            nonce: [0; 16],
            ranges: vec![
                WireRange {
                    upper: WireBound::End,
                    payload: Payload::Skip,
                },
                WireRange {
                    upper: WireBound::End,
                    payload: Payload::Skip,
                },
            ],
        };
        assert!(matches!(
            Session::respond(&ix, &cfg, bad, 0),
            Err(ReconError::Malformed(MalformedMsg::BoundsNotIncreasing))
        ));
        let long = ReconMsg::Open {
            nonce: [0; 16],
            ranges: vec![WireRange {
                upper: WireBound::End,
                payload: Payload::Ids(
                    (0..2000u64)
                        .map(|i| WireItem {
                            clock_delta: 1,
                            id: id(i),
                        })
                        .collect(),
                ),
            }],
        };
        assert!(matches!(
            Session::respond(&ix, &cfg, long, 0),
            Err(ReconError::Malformed(MalformedMsg::LongIdList { .. }))
        ));
    }

    #[test]
    fn garbage_bytes_never_panic() {
        let (ix, cfg) = setup(3_000);
        let mut rng = Rng(1);
        for _ in 0..3_000 {
            let len = rng.below(200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok(msg) = ReconMsg::decode(&bytes, cfg.max_msg_bytes) {
                assert!(msg.encode().len() <= bytes.len() + 64);
                let _ = Session::respond(&ix, &cfg, msg.clone(), 0);
                let (mut s, _) = Session::initiate(&ix, &cfg, [0; 16], 0);
                let _ = s.handle(&ix, msg, 0);
            }
        }
    }
}

/// The 1M-item figures. Release only (`cargo test --release -p ate-protocol --lib
/// reconcile::tests::big -- --nocapture`): building two 1M-item indexes takes seconds there.
mod big {
    use super::*;

    const N: u64 = 1_000_000;
    const WRITERS: u64 = 4;

    /// Keys in arrival order: increasing, but 1% arrive up to 64 places late.
    fn arrivals(n: u64, seed: u64) -> Vec<ReconKey> {
        let mut keys: Vec<ReconKey> = (0..n).map(|i| key(i, WRITERS)).collect();
        let mut rng = Rng(seed);
        for i in 0..keys.len() {
            if rng.below(100) == 0 {
                let j = (i + 1 + rng.below(64) as usize).min(keys.len() - 1);
                keys.swap(i, j);
            }
        }
        keys
    }

    fn base() -> ReconIndex {
        static BASE: std::sync::OnceLock<ReconIndex> = std::sync::OnceLock::new();
        BASE.get_or_init(|| index_of(arrivals(N, 1))).clone()
    }

    fn report(name: &str, a: &ReconIndex, b: &ReconIndex, cfg: &ReconConfig) -> Run {
        let run = reconcile(a, b, cfg, 100_000);
        assert_exact(a, b, &run);
        println!(
            "{name:<36} {:>3} msgs {:>3} RTs {:>7} B (A→B {:>6}, B→A {:>6}) lacks: A {:>4} B {:>7}",
            run.messages,
            run.round_trips(),
            run.bytes(),
            run.bytes_a_to_b,
            run.bytes_b_to_a,
            run.a_lacks.len(),
            run.b_lacks.len(),
        );
        run
    }

    #[test]
    #[cfg_attr(debug_assertions, ignore = "1M items: run with --release")]
    fn million_items_figures() {
        let cfg = ReconConfig::default();
        let a = base();
        println!(
            "config: split {} threshold {} max_msg_bytes {}",
            cfg.split_factor, cfg.list_threshold, cfg.max_msg_bytes
        );

        let run = report("in sync, 1M", &a, &a.clone(), &cfg);
        assert_eq!(run.round_trips(), 1);
        assert!(run.bytes() <= 200, "{} bytes", run.bytes());

        let mut rng = Rng(5);
        let mut b = a.clone();
        let gone = key(rng.below(N), WRITERS);
        b.remove(gone.clock, gone.id);
        let run = report("1 diff in 1M (random position)", &a, &b, &cfg);
        assert!(run.round_trips() <= 3, "{run:?}");
        assert!(run.bytes() <= 3_000, "{} bytes", run.bytes());

        let mut b = a.clone();
        let newest = key(N - 1, WRITERS);
        b.remove(newest.clock, newest.id);
        let run = report("1 diff in 1M (newest)", &a, &b, &cfg);
        assert!(run.round_trips() <= 3, "{run:?}");
        assert!(run.bytes() <= 3_000, "{} bytes", run.bytes());

        let mut a_tail = a.clone();
        for i in N..N + 1_000 {
            let k = key(i, WRITERS);
            a_tail.insert(k.clock, k.id);
        }
        report("tail diff: A has 1000 newer", &a_tail, &a, &cfg);
        report("tail diff: B has 1000 newer", &a, &a_tail, &cfg);

        let mut a_sc = a.clone();
        let mut b_sc = a.clone();
        for n in 0..1_000 {
            let k = key(rng.below(N), WRITERS);
            if n % 2 == 0 {
                a_sc.remove(k.clock, k.id);
            } else {
                b_sc.remove(k.clock, k.id);
            }
        }
        report("scattered diff: 1000 (500 each way)", &a_sc, &b_sc, &cfg);
        let mut b_sc = a.clone();
        for _ in 0..1_000 {
            let k = key(rng.below(N), WRITERS);
            b_sc.remove(k.clock, k.id);
        }
        report("scattered diff: B lacks 1000", &a, &b_sc, &cfg);
        for max_msg_bytes in [256 << 10, 1 << 20] {
            let big = ReconConfig {
                max_msg_bytes,
                ..cfg.clone()
            };
            report(
                &format!("  same, max_msg_bytes {max_msg_bytes}"),
                &a,
                &b_sc,
                &big,
            );
        }

        let run = report("late joiner: 1M vs empty", &a, &ReconIndex::new(), &cfg);
        assert_eq!(run.round_trips(), 1);
        let run = report(
            "late joiner initiates: empty vs 1M",
            &ReconIndex::new(),
            &a,
            &cfg,
        );
        assert_eq!(run.messages, 1);
    }

    #[test]
    #[cfg_attr(debug_assertions, ignore = "1M items: run with --release")]
    fn million_items_memory() {
        let keys = arrivals(N, 1);
        let ix = index_of(keys.iter().copied());
        ix.check();
        let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
        println!(
            "1M keys, increasing with 1% up to 64 late: {per_item:.1} B/item ({} B, {ix:?})",
            ix.heap_bytes(),
        );
        assert!(per_item <= 64.0, "{per_item} B/item");
        // Uniformly random arrival order, the worst case for node fill.
        let mut shuffled = keys;
        let mut rng = Rng(3);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let ix = index_of(shuffled.iter().copied());
        let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
        println!("1M keys, random order: {per_item:.1} B/item");
        assert!(per_item <= 64.0, "{per_item} B/item");
    }
}
