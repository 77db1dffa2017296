//! The homomorphic item sum behind every fingerprint, and the keyed wire fingerprint.
//!
//! An item contributes `ItemSum::of(id)`: 1024 bits of blake3 output (keyed with a constant,
//! for domain separation), read as [`LANES`] little-endian `u64` lanes. A set's sum adds the
//! lanes of its items, each lane modulo 2^64. Addition is commutative and invertible, so the
//! index caches sums in its tree nodes and gets the sum of any range from O(log n) cached
//! sums, by subtracting two prefix sums. See the module documentation of `reconcile` for why
//! 1024 bits and not the 256 bits of Negentropy.
//!
//! The wire carries only a 16-byte [`Fingerprint`]: a blake3 keyed hash of (sum, count) under
//! a key derived from the session's nonce, so it is fresh for every session.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::EventId;

/// The number of 64-bit lanes of an [`ItemSum`] (1024 bits in total).
pub const LANES: usize = 16;

/// The size of the per-item hash output (bytes).
const ITEM_HASH_BYTES: usize = LANES * 8;

/// A public constant key: domain separation for the per-item hash, so an item sum can never be
/// confused with any other blake3 output of ate (ids are `derive_key` outputs).
const ITEM_KEY: &[u8; 32] = b"ate v1 reconcile item-sum lanes!";

/// The context string that turns a session nonce into the fingerprint key.
const SESSION_CONTEXT: &str = "ate v1 reconcile session fingerprint key";

/// The sum of the item hashes of a set of event ids: [`LANES`] lanes, each modulo 2^64.
///
/// The empty set sums to [`ItemSum::ZERO`]; `a ∪ b` (disjoint) sums to `a + b`; removing an
/// item subtracts its hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ItemSum([u64; LANES]);

impl ItemSum {
    /// The sum of the empty set.
    pub const ZERO: ItemSum = ItemSum([0; LANES]);

    /// The contribution of one event id.
    pub fn of(id: &EventId) -> ItemSum {
        let mut hasher = blake3::Hasher::new_keyed(ITEM_KEY);
        hasher.update(id.as_bytes());
        let mut bytes = [0u8; ITEM_HASH_BYTES];
        hasher.finalize_xof().fill(&mut bytes);
        let mut lanes = [0u64; LANES];
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane = u64::from_le_bytes(word);
        }
        ItemSum(lanes)
    }

    /// Adds `other` (set union of disjoint sets).
    pub fn add(&mut self, other: &ItemSum) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Subtracts `other` (set difference, `other` being a subset).
    pub fn sub(&mut self, other: &ItemSum) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// `self + other`.
    #[must_use]
    pub fn plus(mut self, other: &ItemSum) -> ItemSum {
        self.add(other);
        self
    }

    /// `self - other`.
    #[must_use]
    pub fn minus(mut self, other: &ItemSum) -> ItemSum {
        self.sub(other);
        self
    }

    /// The lanes as little-endian bytes.
    pub fn to_bytes(&self) -> [u8; ITEM_HASH_BYTES] {
        let mut out = [0u8; ITEM_HASH_BYTES];
        for (chunk, lane) in out.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }
}

impl Default for ItemSum {
    fn default() -> Self {
        ItemSum::ZERO
    }
}

impl fmt::Debug for ItemSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemSum({:016x}…)", self.0[0])
    }
}

/// What the index knows about a range: how many items, and their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RangeSummary {
    /// The number of items in the range.
    pub count: u64,
    /// The sum of their item hashes.
    pub sum: ItemSum,
}

impl RangeSummary {
    /// The fingerprint of this range under a session key.
    pub fn fingerprint(&self, key: &SessionKey) -> Fingerprint {
        let mut hasher = blake3::Hasher::new_keyed(&key.0);
        hasher.update(&self.sum.to_bytes());
        hasher.update(&self.count.to_le_bytes());
        let hash = hasher.finalize();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&hash.as_bytes()[..16]);
        Fingerprint(fp)
    }
}

/// The 16-byte fingerprint of a range as it travels on the wire: a keyed hash of the range's
/// item sum and count under the session key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 16]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fp{:02x}{:02x}{:02x}{:02x}…",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The key of one session's wire fingerprints, derived from the initiator's nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Derives the key from a session nonce (which the initiator draws at random and sends in
    /// its opening message).
    pub fn from_nonce(nonce: &[u8; 16]) -> SessionKey {
        SessionKey(blake3::derive_key(SESSION_CONTEXT, nonce))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> EventId {
        EventId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn sums_are_order_independent_and_invertible() {
        let (a, b, c) = (
            ItemSum::of(&id(1)),
            ItemSum::of(&id(2)),
            ItemSum::of(&id(3)),
        );
        let abc = a.plus(&b).plus(&c);
        assert_eq!(abc, c.plus(&a).plus(&b));
        assert_eq!(abc.minus(&b), a.plus(&c));
        assert_eq!(abc.minus(&a).minus(&b).minus(&c), ItemSum::ZERO);
        assert_ne!(a, b);
    }

    #[test]
    fn fingerprints_depend_on_key_count_and_sum() {
        let k1 = SessionKey::from_nonce(&[1; 16]);
        let k2 = SessionKey::from_nonce(&[2; 16]);
        let s = RangeSummary {
            count: 1,
            sum: ItemSum::of(&id(1)),
        };
        assert_eq!(s.fingerprint(&k1), s.fingerprint(&k1));
        assert_ne!(s.fingerprint(&k1), s.fingerprint(&k2));
        let other_count = RangeSummary { count: 2, ..s };
        assert_ne!(s.fingerprint(&k1), other_count.fingerprint(&k1));
        let empty = RangeSummary::default();
        assert_ne!(s.fingerprint(&k1), empty.fingerprint(&k1));
    }
}
