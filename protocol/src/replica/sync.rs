//! The direct sync protocol: answering fetches, reconciliation rounds and batches.
//!
//! Catch-up is range-based set reconciliation (see [`super::recon`]): `Recon` rounds find
//! the difference, `Events` batches stream what the peer lacks (`more` → the peer answers
//! `More` for the next one), `GetEvents` fetches what we lack and missing parents.
//!
//! `Heads` is the older catch-up, kept only as an answer (nothing sends it any more): we send
//! one batch of the events outside the causal past of the heads we know.

use super::*;

impl Replica {
    pub(super) fn on_sync(&mut self, now: Millis, from: PeerId, msg: SyncMsg) {
        match msg {
            SyncMsg::Heads { heads } => self.send_missing(from, &heads),
            SyncMsg::GetEvents { ids } => {
                let mut events = Vec::new();
                let mut size = 0;
                for id in ids.iter().take(self.config.max_get_ids) {
                    if let Some(s) = self.dag.slot(id) {
                        let b = self.dag.event(s).encode();
                        size += b.len();
                        events.push(b);
                        if size >= self.config.sync_batch_bytes {
                            break;
                        }
                    }
                }
                if !events.is_empty() {
                    self.out.push(Output::Send {
                        to: from,
                        msg: SyncMsg::Events {
                            events,
                            more: false,
                        },
                    });
                }
            }
            SyncMsg::Events { events, more } => {
                self.on_bytes(now, Some(from), events);
                self.after_sync_events(now, from);
                if more {
                    self.out.push(Output::Send {
                        to: from,
                        msg: SyncMsg::More,
                    });
                }
            }
            SyncMsg::Recon(msg) => self.on_recon(now, from, msg),
            SyncMsg::More => self.on_more(now, from),
        }
    }

    /// Sends `to` the events outside the causal past of its heads that we know, in slot order
    /// (dependencies first), one bounded batch (no more); asks for its heads we lack.
    fn send_missing(&mut self, to: PeerId, their_heads: &[EventId]) {
        let unknown: Vec<EventId> = their_heads
            .iter()
            .filter(|h| !self.dag.contains(h))
            .take(self.config.max_get_ids)
            .copied()
            .collect();
        if !unknown.is_empty() {
            self.out.push(Output::Send {
                to,
                msg: SyncMsg::GetEvents { ids: unknown },
            });
        }
        let known: Vec<Slot> = their_heads
            .iter()
            .filter_map(|h| self.dag.slot(h))
            .collect();
        let mut seen = vec![false; self.dag.len()];
        // The peer follows this chain, so it has the genesis (slot 0).
        if let Some(g) = seen.first_mut() {
            *g = true;
        }
        let mut stack = known;
        while let Some(s) = stack.pop() {
            if std::mem::replace(&mut seen[s as usize], true) {
                continue;
            }
            stack.extend_from_slice(self.dag.parents(s));
            let p = self.dag.meta(s).prev;
            if p != NONE {
                stack.push(p);
            }
        }
        let mut events = Vec::new();
        let mut size = 0;
        for (s, known) in seen.iter().enumerate() {
            if *known {
                continue;
            }
            // One batch only: reconciliation finds the rest.
            if events.len() >= self.config.sync_batch_events || size >= self.config.sync_batch_bytes
            {
                break;
            }
            let b = self.dag.event(s as Slot).encode();
            size += b.len();
            events.push(b);
        }
        if !events.is_empty() {
            self.out.push(Output::Send {
                to,
                msg: SyncMsg::Events {
                    events,
                    more: false,
                },
            });
        }
    }
}
