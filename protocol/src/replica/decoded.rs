//! Envelopes decoded once for many replicas.
//!
//! Decoding is a pure function of the chain, its params and the bytes, so a caller that hands
//! one envelope to many replicas of a chain (the simulator runs thousands in one process) may
//! decode it once and share the result: [`Input::GossipDecoded`]. Everything else stays the
//! replica's own work: the signature through its checker, the duplicate filter, dependencies,
//! the structural rules and the chain of trust. A real node sees each envelope once and
//! hands over bytes ([`Input::Gossip`]).

use std::sync::Arc;

use super::*;

/// An envelope with the result of decoding it for one chain. Cloning shares it.
///
/// Only [`SharedEnvelope::decode`] makes one, so the result is always what
/// [`Event::decode`] gives for that chain and those params; a replica of another chain (or
/// with other params) decodes the bytes itself.
#[derive(Debug, Clone)]
pub struct SharedEnvelope(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    chain: ChainId,
    params: Params,
    bytes: Vec<u8>,
    event: Result<Event, DecodeError>,
}

impl SharedEnvelope {
    /// Decodes `bytes` as an envelope of `chain` under `params` (the values
    /// [`Replica::chain`] and [`Replica::params`] of the replicas it is meant for return).
    pub fn decode(chain: ChainId, params: Params, bytes: Vec<u8>) -> SharedEnvelope {
        let event = Event::decode(Some(&chain), &bytes, &params);
        SharedEnvelope(Arc::new(Inner {
            chain,
            params,
            bytes,
            event,
        }))
    }

    /// The envelope bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The decoded event, or why the bytes are not one.
    pub fn event(&self) -> Result<&Event, &DecodeError> {
        self.0.event.as_ref()
    }
}

impl Replica {
    /// A gossip envelope decoded by the caller: ingested exactly as [`Replica::on_bytes`]
    /// would ingest its bytes, without decoding them again.
    pub(super) fn on_decoded(&mut self, now: Millis, from: PeerId, env: &SharedEnvelope) {
        let inner = &env.0;
        let bytes = inner.bytes.clone();
        if inner.chain != self.chain || inner.params != self.params {
            return self.on_bytes(now, Some(from), vec![bytes]);
        }
        let mut batch = Vec::with_capacity(1);
        self.sort_decoded(Some(from), inner.event.clone(), bytes, &mut batch);
        self.ingest(now, Some(from), batch, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretKey, Writer};

    /// Two replicas fed the same events, one as bytes and one as shared decoded envelopes
    /// (among them junk, a corrupted signature and an event of another chain), give the same
    /// verdicts and end with the same events.
    #[test]
    fn decoded_envelopes_are_judged_like_their_bytes() {
        let root = SecretKey::from_seed([1; 32]);
        let g = crate::genesis("t", &root, &[], Params::default(), 1, 0).encode();
        let other = crate::genesis("u", &root, &[], Params::default(), 2, 0).encode();
        let mut a = Replica::new(&g, Config::default()).unwrap();
        let mut b = Replica::new(&g, Config::default()).unwrap();
        let mut src = Replica::new(&g, Config::default()).unwrap();
        let mut theirs = Replica::new(&other, Config::default()).unwrap();
        let w = Writer::new(root);
        let mut envs = Vec::new();
        let mut body_len = 0;
        for i in 0..4 {
            let ev = w.put_json(&src, &format!("k{i}"), &serde_json::json!(i), 5);
            let _ = src.handle(0, Input::local(ev.clone()));
            body_len = ev.body_bytes.len();
            envs.push(ev.encode());
        }
        // A byte of the signature (which ends right before the body flag): same id.
        let mut bad = envs[3].clone();
        let at = bad.len() - body_len - 1 - 10;
        bad[at] ^= 1;
        let foreign = w.put_json(&theirs, "x", &serde_json::json!(0), 5);
        let _ = theirs.handle(0, Input::local(foreign.clone()));
        // Out of order, with a duplicate, junk, a corrupted copy and another chain's event.
        let order = vec![
            envs[2].clone(),
            vec![1, 2, 3],
            bad,
            envs[0].clone(),
            envs[1].clone(),
            envs[0].clone(),
            foreign.encode(),
            envs[3].clone(),
            g.clone(),
        ];
        let from = PeerId(7);
        for bytes in order {
            let shared = SharedEnvelope::decode(a.chain(), *a.params(), bytes.clone());
            let va = a.handle(1, Input::Gossip { from, bytes });
            let vb = b.handle(
                1,
                Input::GossipDecoded {
                    from,
                    envelope: shared,
                },
            );
            assert_eq!(va, vb);
        }
        assert_eq!(a.event_ids(), b.event_ids());
        assert_eq!(a.len(), 5);
        assert_eq!(a.stats(), b.stats());
        let rejected = &b.stats().rejected;
        assert_eq!(rejected.get("bad_signature"), Some(&2), "{rejected:?}");
        assert_eq!(rejected.get("decode"), Some(&1), "{rejected:?}");
        // Decoded for another chain: the replica decodes the bytes itself.
        let wrong = SharedEnvelope::decode(theirs.chain(), *theirs.params(), envs[0].clone());
        let mut c = Replica::new(&g, Config::default()).unwrap();
        let out = c.handle(
            1,
            Input::GossipDecoded {
                from,
                envelope: wrong,
            },
        );
        assert!(
            out.contains(&Output::Verdict {
                from: Some(from),
                id: Some(
                    Event::decode(Some(&c.chain()), &envs[0], c.params())
                        .unwrap()
                        .id
                ),
                verdict: Verdict::Valid,
            })
        );
    }
}
