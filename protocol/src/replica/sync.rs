//! The direct sync protocol: answering fetches and catching peers up from their heads.
//!
//! A peer that connects sends its heads; we send every event outside the causal past of the
//! heads we know, in slot order (dependencies first), one bounded batch at a time, flagged
//! `more` so the peer asks again with its new heads. Heads we do not know we fetch. This is the
//! simple catch-up; range-based set reconciliation replaces it later (DESIGN §5).

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
                if more {
                    self.out.push(Output::Send {
                        to: from,
                        msg: SyncMsg::Heads {
                            heads: self.heads(),
                        },
                    });
                }
            }
        }
    }

    /// Sends `to` the events outside the causal past of its heads that we know, in slot order
    /// (dependencies first), one bounded batch; asks for its heads we lack.
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
        let mut more = false;
        for (s, known) in seen.iter().enumerate() {
            if *known {
                continue;
            }
            if events.len() >= self.config.sync_batch_events || size >= self.config.sync_batch_bytes
            {
                more = true;
                break;
            }
            let b = self.dag.event(s as Slot).encode();
            size += b.len();
            events.push(b);
        }
        if !events.is_empty() {
            self.out.push(Output::Send {
                to,
                msg: SyncMsg::Events { events, more },
            });
        }
    }
}
