//! Read-only accessors of a replica.

use super::*;

impl Replica {
    /// The chain id.
    pub fn chain(&self) -> ChainId {
        self.chain
    }

    /// The chain name from its genesis.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain's limits.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Number of stored events (genesis included).
    pub fn len(&self) -> usize {
        self.dag.len()
    }

    /// Never true: a replica always holds its genesis.
    pub fn is_empty(&self) -> bool {
        self.dag.len() == 0
    }

    /// DAG heads, sorted by id.
    pub fn heads(&self) -> Vec<EventId> {
        self.dag.heads.iter().copied().collect()
    }

    /// Whether an event is stored.
    pub fn contains(&self, id: &EventId) -> bool {
        self.dag.contains(id)
    }

    /// A stored event, rebuilt.
    pub fn event(&self, id: &EventId) -> Option<Event> {
        self.dag.slot(id).map(|s| self.dag.event(s))
    }

    /// Ids of all stored events, sorted (for tests and comparisons).
    pub fn event_ids(&self) -> Vec<EventId> {
        let mut ids = self.dag.ids.clone();
        ids.sort();
        ids
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Events waiting for dependencies.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Ids the pending buffer waits for.
    pub fn missing(&self) -> Vec<EventId> {
        let mut v: Vec<EventId> = self.pending.missing_ids().copied().collect();
        v.sort();
        v
    }

    /// Equivocations detected (the first 1024; `stats().equivocations` counts all).
    pub fn equivocations(&self) -> &[Equivocation] {
        &self.equivocations
    }

    /// The author's latest event (highest seq; ties by id), for building its next event.
    pub fn author_head(&self, author: &PublicKey) -> Option<(EventId, u64)> {
        let a = self.dag.known_author(author)?;
        let mut best: Option<(u64, EventId)> = None;
        let mut s = self.dag.authors[a as usize].first;
        while s != NONE {
            let cand = (self.dag.meta(s).seq, self.dag.id(s));
            best = Some(best.map_or(cand, |b| b.max(cand)));
            s = self.dag.meta(s).next_by_author;
        }
        best.map(|(seq, id)| (id, seq))
    }

    /// The clock of a stored event.
    pub fn clock_of(&self, id: &EventId) -> Option<u64> {
        self.dag.slot(id).map(|s| self.dag.meta(s).clock)
    }

    /// Whether a stored admin event (grant or revocation) is in effect.
    pub fn admin_in_effect(&self, id: &EventId) -> Option<bool> {
        let s = self.dag.slot(id)?;
        let m = self.dag.meta(s);
        matches!(
            m.kind,
            BodyKind::Grant | BodyKind::Revoke | BodyKind::Genesis
        )
        .then(|| self.trust.admin_in_effect(m.aux))
    }

    /// Heap bytes of the DAG and view structures, excluding body bytes (memory report).
    pub fn overhead_bytes(&self) -> usize {
        self.dag.overhead_bytes() + self.view.overhead_bytes()
    }

    /// Sum of stored body bytes.
    pub fn body_bytes(&self) -> u64 {
        self.dag.body_bytes
    }
}
