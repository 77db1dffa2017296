//! Gossip messages whose events wait for a missing dependency.
//!
//! The node validates gossip itself: gossipsub keeps a message it has not been told about in
//! its cache and forwards it only on `Accept`. A message carrying an event that waits for a
//! dependency (say, a writer's second put arriving before its first) cannot be judged yet.
//! Reporting `Ignore` at once would drop it, and once the dependency came and the event was
//! stored no peer would hear of it by gossip: only from anti-entropy, up to its interval later.
//! So such a message is held until each of its waiting events is decided, then reported:
//! `Accept` (gossipsub forwards it, as the simulator's nodes do) or `Reject` if one turned out
//! invalid. gossipsub forgets an unjudged message after its history window (5 heartbeats of
//! 500 ms), so a message held longer than that is given up (`Ignore`); at most `MAX_HELD`
//! are held at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ate_protocol::{ChainId, EventId, Verdict};
use libp2p::gossipsub::{MessageAcceptance, MessageId};

/// Messages held at once; beyond it a waiting message is ignored at once, as before.
const MAX_HELD: usize = 10_000;
/// gossipsub's history window: after it the message is gone from its cache.
const HOLD_FOR: Duration = Duration::from_millis(2_500);

struct Held {
    msg_id: MessageId,
    source: libp2p::PeerId,
    /// Events still undecided.
    waiting: u32,
    invalid: bool,
    since: Instant,
}

/// A verdict to report to gossipsub for a held message.
pub(super) type Report = (MessageId, libp2p::PeerId, MessageAcceptance);

#[derive(Default)]
pub(super) struct WaitingGossip {
    msgs: HashMap<u64, Held>,
    by_event: HashMap<(ChainId, EventId), Vec<u64>>,
    next: u64,
}

impl WaitingGossip {
    /// Holds a message until `events` (its waiting events) are decided; false when full
    /// (the caller reports it at once).
    pub(super) fn hold(
        &mut self,
        chain: ChainId,
        msg_id: MessageId,
        source: libp2p::PeerId,
        events: &[EventId],
        now: Instant,
    ) -> bool {
        if self.msgs.len() >= MAX_HELD || events.is_empty() {
            return false;
        }
        let key = self.next;
        self.next += 1;
        for id in events {
            self.by_event.entry((chain, *id)).or_default().push(key);
        }
        let waiting = events.len() as u32;
        let held = Held {
            msg_id,
            source,
            waiting,
            invalid: false,
            since: now,
        };
        self.msgs.insert(key, held);
        true
    }

    /// The replica decided an event: the held messages it completes, with their verdicts.
    pub(super) fn decided(&mut self, chain: ChainId, id: EventId, v: &Verdict) -> Vec<Report> {
        if self.by_event.is_empty() || matches!(v, Verdict::Pending { .. }) {
            return Vec::new();
        }
        let Some(keys) = self.by_event.remove(&(chain, id)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in keys {
            let Some(m) = self.msgs.get_mut(&key) else {
                continue;
            };
            match v {
                Verdict::Valid | Verdict::Duplicate => m.waiting = m.waiting.saturating_sub(1),
                Verdict::Invalid(_) => {
                    m.waiting = m.waiting.saturating_sub(1);
                    m.invalid = true;
                }
                // Evicted from the replica's buffer: it will not be decided here.
                Verdict::Overloaded | Verdict::Pending { .. } => {
                    if let Some(m) = self.msgs.remove(&key) {
                        out.push((m.msg_id, m.source, MessageAcceptance::Ignore));
                    }
                    continue;
                }
            }
            if m.waiting == 0
                && let Some(m) = self.msgs.remove(&key)
            {
                let a = if m.invalid {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Accept
                };
                out.push((m.msg_id, m.source, a));
            }
        }
        out
    }

    /// Gives up messages held past gossipsub's window (their events may still be stored
    /// later; peers then get them by anti-entropy).
    pub(super) fn expire(&mut self, now: Instant) -> Vec<Report> {
        let old: Vec<u64> = (self.msgs.iter())
            .filter(|(_, m)| now.duration_since(m.since) >= HOLD_FOR)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in old {
            if let Some(m) = self.msgs.remove(&k) {
                out.push((m.msg_id, m.source, MessageAcceptance::Ignore));
            }
        }
        // Drop the entries of messages gone (expired, or given up on another event).
        if !self.by_event.is_empty() {
            let msgs = &self.msgs;
            self.by_event.retain(|_, keys| {
                keys.retain(|k| msgs.contains_key(k));
                !keys.is_empty()
            });
        }
        out
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.msgs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_protocol::Reason;

    fn ids() -> (ChainId, EventId, EventId, libp2p::PeerId) {
        let chain = ChainId([9; 32]);
        (
            chain,
            EventId([1; 32]),
            EventId([2; 32]),
            libp2p::PeerId::random(),
        )
    }

    #[test]
    fn a_message_is_accepted_once_all_its_waiting_events_are_stored() {
        let (chain, a, b, peer) = ids();
        let mut w = WaitingGossip::default();
        let msg = MessageId::from(vec![1]);
        assert!(w.hold(chain, msg.clone(), peer, &[a, b], Instant::now()));
        assert!(
            w.decided(chain, a, &Verdict::Pending { missing: vec![] })
                .is_empty()
        );
        assert!(w.decided(chain, a, &Verdict::Valid).is_empty());
        let out = w.decided(chain, b, &Verdict::Duplicate);
        assert_eq!(out, vec![(msg, peer, MessageAcceptance::Accept)]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn one_invalid_event_rejects_and_eviction_ignores() {
        let (chain, a, b, peer) = ids();
        let mut w = WaitingGossip::default();
        let (m1, m2) = (MessageId::from(vec![1]), MessageId::from(vec![2]));
        w.hold(chain, m1.clone(), peer, &[a], Instant::now());
        w.hold(chain, m2.clone(), peer, &[b], Instant::now());
        let bad = Verdict::Invalid(Reason::BadSignature);
        assert_eq!(
            w.decided(chain, a, &bad),
            vec![(m1, peer, MessageAcceptance::Reject)]
        );
        assert_eq!(
            w.decided(chain, b, &Verdict::Overloaded),
            vec![(m2, peer, MessageAcceptance::Ignore)]
        );
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn held_messages_expire_after_gossipsubs_window() {
        let (chain, a, _, peer) = ids();
        let mut w = WaitingGossip::default();
        let t0 = Instant::now();
        let msg = MessageId::from(vec![1]);
        w.hold(chain, msg.clone(), peer, &[a], t0);
        assert!(w.expire(t0 + HOLD_FOR / 2).is_empty());
        assert_eq!(
            w.expire(t0 + HOLD_FOR),
            vec![(msg, peer, MessageAcceptance::Ignore)]
        );
        assert!(w.by_event.is_empty());
        // A verdict after that finds nothing.
        assert!(w.decided(chain, a, &Verdict::Valid).is_empty());
    }
}
