//! A bounded buffer for events whose dependencies have not arrived yet.
//!
//! Gossip delivers events in any order, so a valid event may arrive before its parents. It
//! waits here (signature already checked, so junk cannot fill the buffer for free) while the
//! replica asks the sender for the missing ids. Past the count or byte bound, or after the
//! timeout, events are dropped and counted; a later sync brings them back.

use std::collections::{BTreeMap, HashMap};

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
    pub(crate) bytes: usize,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.events.contains_key(id)
    }

    pub(crate) fn is_awaited(&self, id: &EventId) -> bool {
        self.waiting_on.contains_key(id)
    }

    /// Adds an event waiting on `missing`. The caller has checked the bounds.
    pub(crate) fn add(&mut self, w: Waiting, missing: &[EventId]) {
        let id = w.event.id;
        self.bytes += w.bytes.len();
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

    /// `id` arrived (accepted or rejected): returns the events that no longer miss anything.
    pub(crate) fn arrived(&mut self, id: &EventId) -> Vec<Waiting> {
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
        let ids = self.waiting_on.remove(id).unwrap_or_default();
        ids.iter().filter_map(|w| self.remove(w)).collect()
    }

    fn remove(&mut self, id: &EventId) -> Option<Waiting> {
        let w = self.events.remove(id)?;
        self.bytes -= w.bytes.len();
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
        }
        old.len()
    }

    /// Missing ids, for re-requesting.
    pub(crate) fn missing_ids(&self) -> impl Iterator<Item = &EventId> {
        self.waiting_on.keys()
    }
}
