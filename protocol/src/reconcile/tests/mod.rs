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

mod adversaries;
mod big;
mod index_model;
mod sessions;
