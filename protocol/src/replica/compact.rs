//! Compaction (DESIGN §7): drop the values of superseded versions, keep every header and
//! signature.
//!
//! A compacted put keeps its *stub* instead of its body: the key, the record links and the seal
//! metadata, with a hash of the rest (see `event`). The header's body hash is computed over the
//! stub, so a compacted version still verifies, and a peer that receives one — from this
//! replica, or from a log rewritten after compaction — checks and places it in its view exactly
//! like a version with its body. Views therefore stay identical; only values are gone.
//!
//! Which values can go without ever being needed again: a version's value is read while it is
//! its record's latest version or a leaf of a fork, and it stops being either for good only
//! when one of its successors will have effect *forever*. A successor's effect can still be
//! taken away by a revocation or rotation that had not seen it (DESIGN §3: the revoker's
//! knowledge decides what is frozen), and such an event may be in flight anywhere. So this
//! replica prunes version `v` only when some successor `w` of `v` (`w.previous = v`) has effect
//! and is *settled*:
//!
//! 1. every revocation and rotation held here either is in `w`'s causal past or has `w` in
//!    its own (none is concurrent with `w`, so none can ever freeze it, whatever the order of
//!    revocations among admins turns out to be); and
//! 2. every key that could issue one later — each root that has not rotated away, each revealed
//!    key, each holder of an `Admin` grant — has written an event here that has `w` in its
//!    causal past. Any revocation or rotation such a key makes later comes after that event in
//!    its own chain, so it has seen `w`; and a key granted `Admin` later is granted by an event
//!    this replica either holds (then the key is in this list) or that comes after such an
//!    acknowledgement.
//!
//! If any of those keys has equivocated (two events at one seq), its events do not form one
//! chain and nothing is settled. An admin who never writes holds every version unsettled: the
//! report says how many versions were superseded but kept for that reason, so an operator can
//! see why a compaction freed little. Genesis, grants, revocations, shares and rotations are
//! never compacted; nor is any leaf, so every key's latest value survives. A value of 32 bytes
//! or less stays too: its stub would not be smaller.
//!
//! The node then rewrites its redo log from [`Replica::envelopes_in_order`].

use super::*;

/// What [`Replica::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Events whose bodies were dropped, in acceptance order.
    pub pruned: Vec<EventId>,
    /// Body bytes freed.
    pub bytes_freed: u64,
    /// Superseded versions that keep their bodies because no successor of theirs is settled
    /// yet (see the module doc): some admin has not written since, or a revocation or rotation
    /// is concurrent with it.
    pub unsettled: usize,
}

impl Replica {
    /// Drops the bodies of superseded versions (see the module doc). Headers, signatures and
    /// the view are kept; queries answer a compacted version with [`crate::Version::compacted`]
    /// set. Idempotent: a second call with nothing new to drop frees nothing.
    pub fn compact(&mut self) -> Compaction {
        let settled = self.settled();
        let (slots, unsettled) = self.view.superseded(&self.dag, &settled);
        let (slots, bytes_freed) = self.dag.prune(&slots);
        Compaction {
            pruned: slots.iter().map(|&s| self.dag.id(s)).collect(),
            bytes_freed,
            unsettled,
        }
    }

    /// By slot: whether the event is settled (see the module doc).
    fn settled(&self) -> Vec<bool> {
        let n = self.dag.len();
        let (keys, freezes) = self.trust.freezers();
        let mut settled = vec![true; n];
        let mut mark = vec![false; n];
        let and_into = |settled: &mut Vec<bool>, mark: &[bool]| {
            for (s, m) in settled.iter_mut().zip(mark) {
                *s &= *m;
            }
        };
        for key in &keys {
            let last = self
                .dag
                .known_author(key)
                .filter(|&a| !self.dag.authors[a as usize].equivocated)
                .and_then(|a| self.dag.last_by_author(a));
            let Some(last) = last else {
                // Never wrote here, or equivocated: no event of theirs vouches for anything.
                return vec![false; n];
            };
            mark.iter_mut().for_each(|m| *m = false);
            self.dag.mark_past(last, &mut mark);
            and_into(&mut settled, &mark);
        }
        for o in freezes {
            let Some(slot) = self
                .trust
                .admins
                .get(o as usize)
                .and_then(|a| self.dag.slot(&a.id))
            else {
                return vec![false; n];
            };
            mark.iter_mut().for_each(|m| *m = false);
            self.dag.mark_past(slot, &mut mark);
            self.dag.mark_future(slot, &mut mark);
            and_into(&mut settled, &mark);
        }
        settled
    }

    /// Every stored event after the genesis as envelopes, in acceptance order — dependencies
    /// first, exactly the sequence of `Output::Persist` that built this state. Compacted
    /// versions come without their bodies. Feeding them to a fresh replica (as
    /// `Input::Replay`) rebuilds this replica's event set; use it to rewrite the redo log
    /// after [`Replica::compact`].
    pub fn envelopes_in_order(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        (1..self.dag.len() as Slot).map(|s| self.dag.event(s).encode())
    }

    /// Whether a stored event still has its body: `Some(false)` for a version compacted here
    /// or received without it from a peer that compacted, `None` for an unknown id.
    pub fn has_body(&self, id: &EventId) -> Option<bool> {
        self.dag.slot(id).map(|s| self.dag.has_body(s))
    }

    /// Number of stored events without their bodies.
    pub fn compacted_len(&self) -> usize {
        self.dag.pruned_len()
    }
}
