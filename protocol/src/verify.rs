//! Signature checks, one rule everywhere.
//!
//! ed25519 implementations disagree on edge cases (small-order points, cofactored or not), and
//! a replicated log must not: if one node accepted a signature another rejected, their event
//! sets would never converge. So ate defines validity by the *cofactored* batch equation of
//! ed25519-dalek's `verify_batch`, and checks single signatures as a batch of one. Batches are
//! the fast path (about 2.4× a loop of single checks on this machine); when a batch fails, each
//! item is re-checked alone so one bad signature cannot sink its neighbours. Weak (small-order)
//! author keys are refused outright when the key is first seen.
//!
//! The check is behind [`SignatureCheck`] so the simulator can inject a memoizing verifier:
//! a signature check is a pure function of its bytes, so thousands of simulated nodes need not
//! repeat it.

use std::fmt;

use ed25519_dalek::VerifyingKey;

use crate::ids::{EventId, PublicKey, Signature};

/// One signature to check.
#[derive(Clone, Copy)]
pub struct SigItem<'a> {
    /// The author's decompressed key.
    pub key: &'a VerifyingKey,
    /// The signed message: an event id.
    pub id: &'a EventId,
    /// The signature.
    pub sig: &'a Signature,
}

impl fmt::Debug for SigItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigItem({:?})", self.id)
    }
}

/// Checks many signatures at once. Implementations must give exactly the verdicts of
/// [`Ed25519Batch`] (they may cache them).
pub trait SignatureCheck: Send + Sync + fmt::Debug {
    /// Writes one verdict per item into `out` (cleared first), in order.
    fn check(&self, items: &[SigItem<'_>], out: &mut Vec<bool>);
}

/// The reference checker: ed25519 batch verification with a per-item fallback.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ed25519Batch;

fn check_batch(items: &[SigItem<'_>]) -> bool {
    let msgs: Vec<&[u8]> = items.iter().map(|i| &i.id.0[..]).collect();
    let sigs: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|i| ed25519_dalek::Signature::from_bytes(&i.sig.0))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| *i.key).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

impl SignatureCheck for Ed25519Batch {
    fn check(&self, items: &[SigItem<'_>], out: &mut Vec<bool>) {
        out.clear();
        if items.is_empty() {
            return;
        }
        if items.len() > 1 && check_batch(items) {
            out.resize(items.len(), true);
            return;
        }
        out.extend(items.iter().map(|i| check_batch(std::slice::from_ref(i))));
    }
}

/// Checks `items`, taking the verdicts `known` already has and batch-checking only the rest
/// with [`Ed25519Batch`]. Writes one verdict per item into `out` (cleared first) and returns
/// the freshly checked ones as `(index into items, verdict)`, for a cache to keep. The
/// verdicts are exactly [`Ed25519Batch`]'s as long as `known` only answers with its verdicts.
pub fn check_with_known(
    items: &[SigItem<'_>],
    out: &mut Vec<bool>,
    mut known: impl FnMut(&SigItem<'_>) -> Option<bool>,
) -> Vec<(usize, bool)> {
    out.clear();
    let mut misses = Vec::new();
    let mut miss_at = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match known(item) {
            Some(v) => out.push(v),
            None => {
                out.push(false);
                misses.push(*item);
                miss_at.push(i);
            }
        }
    }
    if misses.is_empty() {
        return Vec::new();
    }
    let mut fresh = Vec::with_capacity(misses.len());
    Ed25519Batch.check(&misses, &mut fresh);
    for (&i, &v) in miss_at.iter().zip(&fresh) {
        out[i] = v;
    }
    miss_at.into_iter().zip(fresh).collect()
}

/// Decompresses an author key, refusing invalid and weak (small-order) points.
pub fn author_key(pk: &PublicKey) -> Option<VerifyingKey> {
    let key = VerifyingKey::from_bytes(&pk.0).ok()?;
    (!key.is_weak()).then_some(key)
}

/// Checks one signature by the same rule as batches.
pub fn verify_one(author: &PublicKey, id: &EventId, sig: &Signature) -> bool {
    let Some(key) = author_key(author) else {
        return false;
    };
    check_batch(&[SigItem { key: &key, id, sig }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SecretKey;

    #[test]
    fn batch_and_single_agree_and_isolate_bad_items() {
        let keys: Vec<SecretKey> = (0..8u8)
            .map(|i| SecretKey::from_seed([i + 1; 32]))
            .collect();
        let ids: Vec<EventId> = (0..8u8).map(|i| EventId([i; 32])).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&ids).map(|(k, id)| k.sign(id)).collect();
        sigs[3].0[10] ^= 1;
        let vks: Vec<VerifyingKey> = keys
            .iter()
            .map(|k| author_key(&k.public()).unwrap())
            .collect();
        let items: Vec<SigItem<'_>> = (0..8)
            .map(|i| SigItem {
                key: &vks[i],
                id: &ids[i],
                sig: &sigs[i],
            })
            .collect();
        let mut out = Vec::new();
        Ed25519Batch.check(&items, &mut out);
        let expect: Vec<bool> = (0..8).map(|i| i != 3).collect();
        assert_eq!(out, expect);
        for i in 0..8 {
            assert_eq!(verify_one(&keys[i].public(), &ids[i], &sigs[i]), i != 3);
        }
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(author_key(&PublicKey(identity)).is_none());
        // Not every 32-byte string is a curve point; try a few until one fails to decompress.
        let bad = (0u8..=255)
            .map(|b| PublicKey([b; 32]))
            .find(|pk| VerifyingKey::from_bytes(&pk.0).is_err());
        if let Some(pk) = bad {
            assert!(author_key(&pk).is_none());
        }
    }
}
