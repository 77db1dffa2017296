//! Hostile peers: liars, unasked answers, stalled deferrals, replays, malformed content.

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
