//! Compaction (DESIGN §7): drop the bodies of superseded versions, keep every header and
//! signature.
//!
//! A version is superseded when it has effect and a later effective version of its record
//! names it (directly or through others) as `previous`: it is no record's latest and no leaf
//! of a fork. Those bodies can go, in records without a fork; everything else stays —
//! genesis, grants and revocations (the chain of trust reads them), every leaf (so every
//! key's latest value, tombstones included), versions without effect (a revocation arriving
//! later can restore them) and forked records whole (a peer that gets a record's compacted
//! versions without bodies cannot link its branches, so it could not tell the longer one).
//!
//! This replica keeps each pruned version's key (in the view) and its `previous` and record
//! seq (in the DAG's pruned table), so its view, its later validations and its revocation
//! handling are exactly what they were. Peers are served the header and signature with
//! `has_body = 0`; they verify and store such a version without placing it in their view, and
//! reach the same view digest (see `view`). The node then rewrites its redo log from
//! [`Replica::envelopes_in_order`].

use super::*;

/// What [`Replica::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Events whose bodies were dropped, in acceptance order.
    pub pruned: Vec<EventId>,
    /// Body bytes freed.
    pub bytes_freed: u64,
}

impl Replica {
    /// Drops the bodies of superseded versions (see the module doc). Headers, signatures and
    /// the view are kept; queries answer a compacted version with [`crate::Version::compacted`]
    /// set. Idempotent: a second call with nothing new to drop frees nothing.
    pub fn compact(&mut self) -> Compaction {
        let slots = self.view.superseded(&self.dag);
        let drop: Vec<(Slot, Slot, u64)> = slots
            .iter()
            .map(|&s| {
                let (previous, seq) = self.dag.put_links(s);
                (s, previous, seq)
            })
            .collect();
        let bytes_freed = self.dag.prune(&drop);
        Compaction {
            pruned: slots.iter().map(|&s| self.dag.id(s)).collect(),
            bytes_freed,
        }
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
