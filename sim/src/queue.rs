//! The event queue: a calendar queue (Brown 1988) with a FIFO tie-break.
//!
//! Entries are ordered by `(time, sequence number)`. Most are due within a few seconds, so
//! they go to a ring of 1 ms buckets; the bucket being drained is sorted once, entries added to
//! it while it drains go to a small heap merged with it, and entries beyond the ring's horizon
//! wait in an overflow heap. A plain `BinaryHeap` of millions of in-flight messages spent a
//! quarter of the run in cache misses; this keeps the order and the determinism at a fraction
//! of the cost. A test checks it pops exactly what a binary heap would.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::world::{Ev, Micros};

const BUCKET_US: u64 = 1000;
const BUCKETS: usize = 8192;
/// Empty bucket allocations kept for reuse.
const POOL: usize = 64;

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) at: Micros,
    pub(crate) seq: u64,
    pub(crate) ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest (then first-scheduled).
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The calendar queue.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Absolute number of the bucket being drained.
    cur_bucket: u64,
    /// Its entries, sorted latest first (pop from the end).
    cur: Vec<Entry>,
    /// Entries for the current (or an earlier) bucket scheduled while it drains.
    late: BinaryHeap<Entry>,
    ring: Vec<Vec<Entry>>,
    in_ring: usize,
    overflow: BinaryHeap<Entry>,
    len: usize,
    pool: Vec<Vec<Entry>>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            cur_bucket: 0,
            cur: Vec::new(),
            late: BinaryHeap::new(),
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_ring: 0,
            overflow: BinaryHeap::new(),
            len: 0,
            pool: Vec::new(),
        }
    }
}

impl Queue {
    pub(crate) fn push(&mut self, e: Entry) {
        self.len += 1;
        let b = e.at / BUCKET_US;
        if b <= self.cur_bucket {
            self.late.push(e);
        } else if b < self.cur_bucket + BUCKETS as u64 {
            let slot = &mut self.ring[(b % BUCKETS as u64) as usize];
            if slot.capacity() == 0
                && let Some(v) = self.pool.pop()
            {
                *slot = v;
            }
            slot.push(e);
            self.in_ring += 1;
        } else {
            self.overflow.push(e);
        }
    }

    /// Time of the earliest entry.
    pub(crate) fn peek_at(&mut self) -> Option<Micros> {
        self.fill();
        match (self.cur.last(), self.late.peek()) {
            (Some(a), Some(b)) => Some(a.at.min(b.at)),
            (Some(a), None) => Some(a.at),
            (None, Some(b)) => Some(b.at),
            (None, None) => None,
        }
    }

    /// The earliest entry, without taking it.
    pub(crate) fn peek(&mut self) -> Option<&Entry> {
        self.fill();
        match (self.cur.last(), self.late.peek()) {
            (Some(a), Some(b)) if (b.at, b.seq) < (a.at, a.seq) => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Entry> {
        self.fill();
        let from_late = match (self.cur.last(), self.late.peek()) {
            (Some(a), Some(b)) => (b.at, b.seq) < (a.at, a.seq),
            (None, Some(_)) => true,
            _ => false,
        };
        let e = if from_late {
            self.late.pop()
        } else {
            self.cur.pop()
        };
        if e.is_some() {
            self.len -= 1;
        }
        e
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Advances to the next non-empty bucket when the current one is drained.
    fn fill(&mut self) {
        while self.cur.is_empty() && self.late.is_empty() {
            if self.in_ring == 0 {
                let Some(next) = self.overflow.peek() else {
                    return;
                };
                self.cur_bucket = next.at / BUCKET_US;
            } else {
                self.cur_bucket += 1;
            }
            let horizon = self.cur_bucket + BUCKETS as u64;
            while self
                .overflow
                .peek()
                .is_some_and(|e| e.at / BUCKET_US < horizon)
            {
                if let Some(e) = self.overflow.pop() {
                    let b = e.at / BUCKET_US;
                    self.ring[(b % BUCKETS as u64) as usize].push(e);
                    self.in_ring += 1;
                }
            }
            let slot = (self.cur_bucket % BUCKETS as u64) as usize;
            let next = std::mem::take(&mut self.ring[slot]);
            self.in_ring -= next.len();
            // The drained bucket's allocation goes to the pool for the next bucket that fills,
            // instead of every bucket growing from nothing again.
            let drained = std::mem::replace(&mut self.cur, next);
            if self.pool.len() < POOL && drained.capacity() > 0 {
                self.pool.push(drained);
            }
            self.cur
                .sort_unstable_by_key(|e| std::cmp::Reverse((e.at, e.seq)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn pops_in_the_order_of_a_binary_heap() {
        let mut q = Queue::default();
        let mut h = BinaryHeap::new();
        let mut rng = Rng::new(11);
        let (mut now, mut seq) = (0u64, 0u64);
        let mut got = Vec::new();
        let mut want = Vec::new();
        for round in 0..20_000 {
            for _ in 0..rng.below(4) {
                seq += 1;
                // Mostly near-future, sometimes the same instant, sometimes far beyond the ring.
                let d = match rng.below(10) {
                    0 => 0,
                    1 => 20_000_000 + rng.below(5_000_000),
                    _ => rng.below(300_000),
                };
                q.push(Entry {
                    at: now + d,
                    seq,
                    ev: Ev::Sample,
                });
                h.push(Entry {
                    at: now + d,
                    seq,
                    ev: Ev::Sample,
                });
            }
            if round % 3 != 0 {
                assert_eq!(q.peek_at(), h.peek().map(|e| e.at));
                if let (Some(a), Some(b)) = (q.pop(), h.pop()) {
                    now = a.at;
                    got.push((a.at, a.seq));
                    want.push((b.at, b.seq));
                }
            }
        }
        while let Some(b) = h.pop() {
            want.push((b.at, b.seq));
            let a = q.pop().unwrap();
            got.push((a.at, a.seq));
        }
        assert!(q.pop().is_none());
        assert_eq!(q.len(), 0);
        assert_eq!(got, want);
    }
}
