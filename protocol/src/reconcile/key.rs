//! The order reconciliation works in: `(clock, id)`, and bounds between positions in it.

use std::fmt;

use crate::ids::EventId;

/// An item of the reconciled set: an event's Lamport clock and its id, ordered by clock, then
/// by id bytes. Recent events (high clocks) sit together at the end of the order, so the
/// differences two replicas typically have (recent events) fall into few, recent ranges.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReconKey {
    /// The event's Lamport clock (`Header::clock`).
    pub clock: u64,
    /// The event id.
    pub id: EventId,
}

impl ReconKey {
    /// The key of an event.
    pub fn new(clock: u64, id: EventId) -> ReconKey {
        ReconKey { clock, id }
    }
}

impl fmt::Debug for ReconKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{:?}", self.clock, self.id)
    }
}

/// A position in the order, used as a range's inclusive lower or exclusive upper end.
///
/// `At(k)` sits just before `k`: the range `[At(a), At(b))` holds the items `a ≤ x < b`.
/// `End` sits after every item. Bounds on the wire need not be items: the shortest bound that
/// separates two neighbours is usually a clock alone (an all-zero id) or a short id prefix.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Bound {
    /// Just before this key.
    At(ReconKey),
    /// After every item.
    End,
}

impl Bound {
    /// The lowest bound: every item is at or above it.
    pub const MIN: Bound = Bound::At(ReconKey {
        clock: 0,
        id: EventId([0; 32]),
    });

    /// Whether `key` is at or above this bound (as a lower bound).
    pub fn is_at_or_below(&self, key: &ReconKey) -> bool {
        match self {
            Bound::At(k) => k <= key,
            Bound::End => false,
        }
    }

    /// Whether `key` is strictly below this bound (as an upper bound).
    pub fn is_above(&self, key: &ReconKey) -> bool {
        match self {
            Bound::At(k) => key < k,
            Bound::End => true,
        }
    }
}

/// The shortest bound `b` with `prev < b ≤ next`, for two neighbouring items `prev < next`:
/// `next`'s clock with an all-zero id if the clocks differ, else `next`'s clock and the
/// shortest prefix of `next`'s id that exceeds `prev`'s id, padded with zeros.
pub(crate) fn separator(prev: &ReconKey, next: &ReconKey) -> Bound {
    debug_assert!(prev < next, "separator needs increasing neighbours");
    let mut id = [0u8; 32];
    if prev.clock == next.clock {
        let shared = prev
            .id
            .0
            .iter()
            .zip(next.id.0.iter())
            .take_while(|(a, b)| a == b)
            .count();
        // prev < next with equal clocks: the ids differ, so `shared < 32`.
        let keep = (shared + 1).min(32);
        id[..keep].copy_from_slice(&next.id.0[..keep]);
    }
    Bound::At(ReconKey {
        clock: next.clock,
        id: EventId(id),
    })
}

/// The number of significant id bytes of a bound key (its id without trailing zero bytes).
pub(crate) fn prefix_len(id: &EventId) -> usize {
    id.0.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(clock: u64, first: u8, second: u8) -> ReconKey {
        let mut id = [7u8; 32];
        id[0] = first;
        id[1] = second;
        ReconKey::new(clock, EventId(id))
    }

    #[test]
    fn separators_are_short_and_separate() {
        let cases = [
            (key(1, 5, 5), key(2, 0, 0)),
            (key(3, 5, 5), key(3, 6, 0)),
            (key(3, 5, 5), key(3, 5, 6)),
            (key(0, 0, 0), key(0, 0, 1)),
        ];
        for (a, b) in cases {
            let s = separator(&a, &b);
            assert!(s.is_above(&a) && s.is_at_or_below(&b), "{a:?} {s:?} {b:?}");
        }
        let Bound::At(k) = separator(&key(1, 5, 5), &key(2, 0, 0)) else {
            panic!("a key bound")
        };
        assert_eq!(prefix_len(&k.id), 0);
        let Bound::At(k) = separator(&key(3, 5, 5), &key(3, 5, 6)) else {
            panic!("a key bound")
        };
        assert_eq!(prefix_len(&k.id), 2);
    }

    #[test]
    fn bounds_order_before_end() {
        assert!(Bound::MIN < Bound::End);
        assert!(Bound::At(key(u64::MAX, 255, 255)) < Bound::End);
        assert!(Bound::MIN.is_at_or_below(&key(0, 0, 0)));
    }
}
