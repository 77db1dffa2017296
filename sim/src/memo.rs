//! A memoizing signature checker shared by every simulated node.
//!
//! A signature check is a pure function of `(author key, event id, signature)`, so ten thousand
//! replicas need not repeat it: the first node to see an event pays for the ed25519 check and
//! the others read the cached verdict. Misses are delegated to the protocol's reference
//! [`Ed25519Batch`], so the verdicts are exactly its verdicts (the `SignatureCheck` contract).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use ate_protocol::verify::{SigItem, SignatureCheck, check_with_known};

type Key = ([u8; 32], [u8; 32], [u8; 64]);

/// A hasher for keys made of hashes and keys the simulator itself generated (event ids,
/// public keys, signatures): their bytes are already uniform, so mixing the first eight bytes
/// of each field is enough. Not for anything an outsider chooses (there is no outsider in a
/// simulation; collisions would only cost time, `Eq` still decides).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.write_u64(u64::from_le_bytes(w));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by simulator-made ids (see [`IdHasher`]); never iterated into output.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A `HashSet` of simulator-made ids (see [`IdHasher`]).
pub type FastSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// Caches ed25519 verdicts; looked up by key, never iterated (so no order reaches output).
#[derive(Debug, Default)]
pub struct MemoCheck {
    cache: Mutex<FastMap<Key, bool>>,
}

impl MemoCheck {
    /// Number of distinct signatures checked so far.
    pub fn len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether nothing was checked yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key_of(item: &SigItem<'_>) -> Key {
    (item.key.to_bytes(), item.id.0, item.sig.0)
}

impl SignatureCheck for MemoCheck {
    fn check(&self, items: &[SigItem<'_>], out: &mut Vec<bool>) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still a
        // valid cache of pure verdicts, so keep using it.
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let fresh = check_with_known(items, out, |item| cache.get(&key_of(item)).copied());
        for (i, v) in fresh {
            cache.insert(key_of(&items[i]), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_protocol::verify::Ed25519Batch;
    use ate_protocol::verify::author_key;
    use ate_protocol::{EventId, SecretKey, Signature};

    #[test]
    fn memo_gives_the_reference_verdicts() {
        let keys: Vec<SecretKey> = (1..=4u8).map(|i| SecretKey::from_seed([i; 32])).collect();
        let ids: Vec<EventId> = (0..4u8).map(|i| EventId([i; 32])).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&ids).map(|(k, id)| k.sign(id)).collect();
        sigs[2].0[5] ^= 1;
        let vks: Vec<_> = keys
            .iter()
            .map(|k| author_key(&k.public()).unwrap())
            .collect();
        let items: Vec<SigItem<'_>> = (0..4)
            .map(|i| SigItem {
                key: &vks[i],
                id: &ids[i],
                sig: &sigs[i],
            })
            .collect();
        let memo = MemoCheck::default();
        let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
        memo.check(&items, &mut a);
        memo.check(&items, &mut b);
        Ed25519Batch.check(&items, &mut r);
        assert_eq!(a, r);
        assert_eq!(b, r);
        assert_eq!(r, vec![true, true, false, true]);
        assert_eq!(memo.len(), 4);
    }
}
