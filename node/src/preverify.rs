//! Signature checks off the event loop.
//!
//! Checking ed25519 signatures is most of the CPU a node spends on an event. The replica does
//! it inside `handle`, on the event loop; a 256-event batch holds the loop for ~3 ms, and on a
//! small machine other nodes' tasks (and this node's connections) queue behind it. So the node
//! checks a batch's signatures on a blocking thread first, then hands the replica the batch
//! together with a [`Prechecked`] checker that already knows the verdicts. The replica's rule is
//! unchanged: the verdicts are computed by the protocol's own [`Ed25519Batch`], and anything the
//! worker did not see is checked by it on the spot.
//!
//! Verdicts are keyed by `(event id, signature)`: the id is a hash over the header, which names
//! the author, so the pair fixes the key that was checked.

use std::collections::HashMap;
use std::sync::Mutex;

use ate_protocol::event::HARD_MAX_EVENT_BYTES;
use ate_protocol::verify::{Ed25519Batch, SigItem, SignatureCheck, author_key, check_with_known};
use ate_protocol::{ChainId, Event, EventId, Params, PublicKey, Signature};

/// What a verdict is looked up by.
pub(crate) type SigKey = ([u8; 32], [u8; 64]);

/// Verdicts worked out ahead of time, for one replica call at a time.
pub(crate) type Verdicts = HashMap<SigKey, bool>;

/// The checker every replica of a node is built with: answers from the verdicts installed
/// for the current call, and checks anything else itself.
#[derive(Debug, Default)]
pub(crate) struct Prechecked {
    verdicts: Mutex<Verdicts>,
}

impl Prechecked {
    /// Installs the verdicts for the next replica call (replacing any left over).
    pub(crate) fn install(&self, v: Verdicts) {
        *self.lock() = v;
    }

    /// Forgets the installed verdicts (after the call), so they never outlive their batch.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        // A poisoned lock means a thread panicked mid-update; the map holds only pure
        // verdicts, so it is still safe to use.
        match self.verdicts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl SignatureCheck for Prechecked {
    fn check(&self, items: &[SigItem<'_>], out: &mut Vec<bool>) {
        let known = self.lock();
        // Fresh verdicts are not kept: the installed ones live for one replica call only.
        let _fresh = check_with_known(items, out, |item| {
            known.get(&(item.id.0, item.sig.0)).copied()
        });
    }
}

/// Checks the signatures of gossiped or fetched envelopes (CPU work for a blocking thread).
/// Envelopes that do not decode are skipped: the replica reports them.
pub(crate) fn check_envelopes(chain: &ChainId, envelopes: &[Vec<u8>]) -> Verdicts {
    let params = Params {
        max_event_bytes: HARD_MAX_EVENT_BYTES as u32,
        max_key_bytes: HARD_MAX_EVENT_BYTES as u32,
    };
    let triples = envelopes
        .iter()
        .filter_map(|b| Event::decode(Some(chain), b, &params).ok())
        .map(|e| (e.header.author, e.id, e.sig))
        .collect();
    check(triples)
}

/// Checks the signatures of locally submitted events.
pub(crate) fn check_events(events: &[Event]) -> Verdicts {
    check(
        events
            .iter()
            .map(|e| (e.header.author, e.id, e.sig))
            .collect(),
    )
}

fn check(triples: Vec<(PublicKey, EventId, Signature)>) -> Verdicts {
    // Decompress each distinct author once; writers are few per batch.
    let mut keys: Vec<(PublicKey, Option<ed25519_dalek::VerifyingKey>)> = Vec::new();
    let mut idx = Vec::with_capacity(triples.len());
    for (author, _, _) in &triples {
        let at = match keys.iter().position(|(k, _)| k == author) {
            Some(at) => at,
            None => {
                keys.push((*author, author_key(author)));
                keys.len() - 1
            }
        };
        idx.push(at);
    }
    let mut items = Vec::with_capacity(triples.len());
    let mut checked = Vec::with_capacity(triples.len());
    for ((_, id, sig), &at) in triples.iter().zip(&idx) {
        if let Some(vk) = &keys[at].1 {
            items.push(SigItem { key: vk, id, sig });
            checked.push((id.0, sig.0));
        }
    }
    let mut out = Vec::with_capacity(items.len());
    Ed25519Batch.check(&items, &mut out);
    checked.into_iter().zip(out).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_protocol::SecretKey;

    #[test]
    fn installed_verdicts_answer_and_misses_are_checked_for_real() {
        let sk = SecretKey::from_seed([9; 32]);
        let vk = author_key(&sk.public()).unwrap();
        let ids: Vec<EventId> = (0..3u8).map(|i| EventId([i; 32])).collect();
        let sigs: Vec<Signature> = ids.iter().map(|id| sk.sign(id)).collect();
        let items: Vec<SigItem<'_>> = (0..3)
            .map(|i| SigItem {
                key: &vk,
                id: &ids[i],
                sig: &sigs[i],
            })
            .collect();
        let c = Prechecked::default();
        // Nothing installed: the real check runs.
        let mut out = Vec::new();
        c.check(&items, &mut out);
        assert_eq!(out, vec![true, true, true]);
        // An installed verdict is what the replica gets (here a deliberately false one, to
        // show it is used), and clear() removes it.
        let mut v = Verdicts::new();
        v.insert((ids[1].0, sigs[1].0), false);
        c.install(v);
        c.check(&items, &mut out);
        assert_eq!(out, vec![true, false, true]);
        c.clear();
        c.check(&items, &mut out);
        assert_eq!(out, vec![true, true, true]);
    }

    #[test]
    fn worker_verdicts_match_the_reference_and_catch_a_bad_signature() {
        let sk = SecretKey::from_seed([3; 32]);
        let ids: Vec<EventId> = (0..4u8).map(|i| EventId([i; 32])).collect();
        let mut sigs: Vec<Signature> = ids.iter().map(|id| sk.sign(id)).collect();
        sigs[2].0[5] ^= 1;
        let triples = ids
            .iter()
            .zip(&sigs)
            .map(|(id, sig)| (sk.public(), *id, *sig))
            .collect();
        let v = check(triples);
        for i in 0..4 {
            assert_eq!(v.get(&(ids[i].0, sigs[i].0)), Some(&(i != 2)));
        }
    }
}
