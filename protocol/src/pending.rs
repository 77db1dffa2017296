//! A bounded buffer for events whose dependencies have not arrived yet.
//!
//! Gossip delivers events in any order, so a valid event may arrive before its parents. It
//! waits here (signature already checked, so junk cannot fill the buffer for free) while the
//! replica asks the sender for the missing ids. Past the count or byte bound, or after the
//! timeout, events are dropped and counted; a later sync brings them back.

use std::collections::{BTreeMap, BTreeSet};

use crate::det::HashMap;

use crate::event::Event;
use crate::ids::{EventId, PeerId};
use crate::replica::Millis;

#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) event: Event,
    pub(crate) bytes: Vec<u8>,
    pub(crate) from: Option<PeerId>,
    pub(crate) since_ms: Millis,
    /// Missing dependency ids not yet arrived.
    pub(crate) missing: usize,
}

/// The pending buffer.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) events: BTreeMap<EventId, Waiting>,
    /// Missing id → events waiting for it.
    waiting_on: HashMap<EventId, Vec<EventId>>,
    /// When each missing id was last asked for.
    requested: HashMap<EventId, Millis>,
    /// Waiting events by `(clock, id)`, for eviction of the newest.
    by_clock: BTreeSet<(u64, EventId)>,
    pub(crate) bytes: usize,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.events.contains_key(id)
    }

    /// The waiting event with the highest `(clock, id)`: the one to evict when the buffer is
    /// full and an older event arrives (older events are closer to what we already have, so
    /// they are the ones that unblock the rest).
    pub(crate) fn newest(&self) -> Option<(u64, EventId)> {
        self.by_clock.last().copied()
    }

    /// Removes one waiting event (eviction); it will come back through a fetch or a sync.
    pub(crate) fn evict(&mut self, id: &EventId) -> bool {
        let Some(w) = self.remove(id) else {
            return false;
        };
        let _ = w;
        let events = &self.events;
        self.waiting_on.retain(|_, ws| {
            ws.retain(|x| events.contains_key(x));
            !ws.is_empty()
        });
        true
    }

    /// Adds an event waiting on `missing`. The caller has checked the bounds.
    pub(crate) fn add(&mut self, w: Waiting, missing: &[EventId]) {
        let id = w.event.id;
        self.bytes += w.bytes.len();
        self.by_clock.insert((w.event.header.clock, id));
        for m in missing {
            self.waiting_on.entry(*m).or_default().push(id);
        }
        self.events.insert(
            id,
            Waiting {
                missing: missing.len(),
                ..w
            },
        );
    }

    /// Marks `id` as asked for at `now`; false if it was asked for less than `again_ms` ago.
    pub(crate) fn should_request(&mut self, id: &EventId, now: Millis, again_ms: Millis) -> bool {
        match self.requested.get(id) {
            Some(&t) if now.saturating_sub(t) < again_ms => false,
            _ => {
                self.requested.insert(*id, now);
                true
            }
        }
    }

    /// Missing ids not asked for in the last `again_ms`, each with a peer to ask (the sender of
    /// an event waiting for it); at most `max`. Marks them asked.
    pub(crate) fn refetch(
        &mut self,
        now: Millis,
        again_ms: Millis,
        max: usize,
    ) -> Vec<(PeerId, EventId)> {
        let mut out = Vec::new();
        let mut ids: Vec<&EventId> = self.waiting_on.keys().collect();
        ids.sort();
        for m in ids {
            if out.len() >= max {
                break;
            }
            // An id that is itself waiting here is not missing, just not yet accepted.
            let stale = !self.events.contains_key(m)
                && self
                    .requested
                    .get(m)
                    .is_none_or(|&t| now.saturating_sub(t) >= again_ms);
            let peer = self.waiting_on[m]
                .iter()
                .find_map(|w| self.events.get(w).and_then(|e| e.from));
            if let (true, Some(peer)) = (stale, peer) {
                out.push((peer, *m));
            }
        }
        for (_, m) in &out {
            self.requested.insert(*m, now);
        }
        out
    }

    /// `id` arrived (accepted or rejected): returns the events that no longer miss anything.
    pub(crate) fn arrived(&mut self, id: &EventId) -> Vec<Waiting> {
        // Usually nothing waits: skip the lookups (each a cache miss in an idle table).
        if !self.requested.is_empty() {
            self.requested.remove(id);
        }
        if self.waiting_on.is_empty() {
            return Vec::new();
        }
        let mut ready = Vec::new();
        for w in self.waiting_on.remove(id).unwrap_or_default() {
            let done = match self.events.get_mut(&w) {
                Some(entry) => {
                    entry.missing = entry.missing.saturating_sub(1);
                    entry.missing == 0
                }
                None => false,
            };
            if done && let Some(entry) = self.remove(&w) {
                ready.push(entry);
            }
        }
        ready
    }

    /// Events waiting (directly) on `id`, removed: used when `id` turned out invalid.
    pub(crate) fn take_dependents(&mut self, id: &EventId) -> Vec<Waiting> {
        self.requested.remove(id);
        let ids = self.waiting_on.remove(id).unwrap_or_default();
        ids.iter().filter_map(|w| self.remove(w)).collect()
    }

    fn remove(&mut self, id: &EventId) -> Option<Waiting> {
        let w = self.events.remove(id)?;
        self.bytes -= w.bytes.len();
        self.by_clock.remove(&(w.event.header.clock, *id));
        Some(w)
    }

    /// Drops events older than `timeout_ms`; returns how many.
    pub(crate) fn expire(&mut self, now: Millis, timeout_ms: Millis) -> usize {
        let old: Vec<EventId> = self
            .events
            .iter()
            .filter(|(_, w)| now.saturating_sub(w.since_ms) >= timeout_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            self.remove(id);
        }
        if !old.is_empty() {
            // Forget waits whose waiters are all gone.
            let events = &self.events;
            self.waiting_on.retain(|_, ws| {
                ws.retain(|w| events.contains_key(w));
                !ws.is_empty()
            });
            let waiting_on = &self.waiting_on;
            self.requested.retain(|id, _| waiting_on.contains_key(id));
        }
        old.len()
    }

    /// Missing ids, for re-requesting.
    pub(crate) fn missing_ids(&self) -> impl Iterator<Item = &EventId> {
        self.waiting_on.keys()
    }
}
