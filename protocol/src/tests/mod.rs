//! Tests of the whole core: fixtures here, attacks, trust, queries and convergence beside.

mod attacks;
mod compaction;
mod convergence;
mod replica_flow;
mod rotation;
mod sealing;
mod snapshot;
mod trust_rules;

use crate::event::{Event, Params, PutValue, Rights};
use crate::ids::{EventId, PeerId, PublicKey, SecretKey};
use crate::replica::{Config, Input, Output, Replica, Verdict};
use crate::{Compaction, Template, Writer, genesis};

pub(crate) const PEER: PeerId = PeerId(7);

pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

pub(crate) fn writer(n: u8) -> Writer {
    Writer::new(key(n))
}

/// A chain whose single root is `writer(1)`; returns the genesis envelope and a replica.
pub(crate) fn chain() -> (Vec<u8>, Replica) {
    let g = genesis("test", &key(1), &[], Params::default(), 42, 1_000);
    let bytes = g.encode();
    let r = Replica::new(&bytes, Config::default()).unwrap();
    (bytes, r)
}

/// Feeds an event as gossip and returns its verdict.
pub(crate) fn gossip(r: &mut Replica, ev: &Event) -> Verdict {
    gossip_bytes(r, ev.encode())
}

pub(crate) fn gossip_bytes(r: &mut Replica, bytes: Vec<u8>) -> Verdict {
    let out = r.handle(0, Input::Gossip { from: PEER, bytes });
    first_verdict(&out)
}

pub(crate) fn first_verdict(out: &[Output]) -> Verdict {
    out.iter()
        .find_map(|o| match o {
            Output::Verdict { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .expect("every input event gets a verdict")
}

/// Builds with `w` on `r` and applies locally; panics unless valid.
pub(crate) fn put(r: &mut Replica, w: &Writer, k: &str, v: serde_json::Value) -> Event {
    let ev = w.put_json(r, k, &v, 0);
    assert_eq!(gossip(r, &ev), Verdict::Valid, "put {k}");
    ev
}

pub(crate) fn grant(
    r: &mut Replica,
    by: &Writer,
    to: PublicKey,
    scope: &str,
    rights: Rights,
) -> Event {
    let ev = by.grant(r, to, scope, rights, 0);
    assert_eq!(gossip(r, &ev), Verdict::Valid, "grant {scope}");
    ev
}

pub(crate) fn revoke(r: &mut Replica, by: &Writer, k: PublicKey, scope: &str) -> Event {
    let ev = by.revoke(r, k, scope, 0);
    assert_eq!(gossip(r, &ev), Verdict::Valid, "revoke {scope}");
    ev
}

/// Every stored event of `r` as envelopes (genesis excluded), in id order.
pub(crate) fn all_events(r: &Replica) -> Vec<Vec<u8>> {
    let g = r.chain();
    r.event_ids()
        .into_iter()
        .filter(|id| id.0 != g.0)
        .filter_map(|id| r.event(&id))
        .map(|e| e.encode())
        .collect()
}

/// Copies every event of `from` into `to` (any order; pending resolves it).
pub(crate) fn sync_into(to: &mut Replica, from: &Replica) {
    let _ = to.handle(
        0,
        Input::Fetched {
            from: PEER,
            events: all_events(from),
        },
    );
}

pub(crate) fn latest_value(r: &Replica, k: &str) -> Option<serde_json::Value> {
    r.view().get_latest(k).and_then(|v| v.value)
}

pub(crate) fn tombstone(r: &Replica, w: &Writer, k: &str) -> Event {
    w.put(r, k, PutValue::Tombstone, 0)
}
