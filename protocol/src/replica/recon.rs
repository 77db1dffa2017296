//! Catch-up and anti-entropy by range-based set reconciliation (DESIGN §5), per peer.
//!
//! The replica keeps a [`ReconIndex`] of its `(clock, id)` set and, per peer, at most two
//! [`Session`]s (one we started, one the peer started), the events found missing at the peer
//! (an *outbox*, streamed in bounded batches) and the ids found missing here (*wants*,
//! requested in chunks with `GetEvents`).
//!
//! * `PeerUp` starts a session (replacing ours, if any); `Reconcile` starts one unless ours
//!   is still running (periodic anti-entropy).
//! * Each step's `peer_lacks` go to the outbox; the first batch goes out at once with `more`
//!   when there is more, and the next only when the peer answers `More`: one batch in flight
//!   per peer, so a slow receiver paces the sender (backpressure) and the outbox, not the
//!   network, holds the rest. Both of a peer's sessions can name the same events (each side
//!   may start one); a bitmap over slots sends an event once per stream (it is cleared when
//!   the outbox runs dry, so a later session can send again what the peer lost).
//! * `we_lack` goes to the wants; one `GetEvents` chunk is out at a time, the next follows
//!   when events from that peer arrive.
//! * `PeerDown` drops everything about the peer; a later session resumes (agreeing ranges end
//!   in its first round trip). `Tick` expires sessions and re-sends a batch or a chunk whose
//!   answer never came.
//!
//! Memory is bounded: sessions hold at most one message (`max_msg_bytes`), the outbox and the
//! wants at most `max_sync_queue` entries (4 and 32 bytes each) plus one bit per stored event
//! while the outbox is in use, for at most `max_sync_peers` peers.
//!
//! Session nonces are derived from the injected `recon_seed` by a keyed hash of the chain,
//! the peer and a counter: unpredictable to peers, never repeated, deterministic under a
//! seeded simulator, and no new input is needed to carry randomness in.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::reconcile::{ReconError, ReconIndex, ReconKey, ReconMsg, Role, Session, Step};

/// Reconciliation state of a replica.
#[derive(Debug, Default)]
pub(crate) struct ReconState {
    /// The id set in reconciliation order; rebuilt whenever it does not cover the DAG (at
    /// first use and after a snapshot restore), brought up to date when used.
    index: Option<ReconIndex>,
    /// How many DAG slots (from the first) the index holds. Events stored since go in when
    /// the index is next used, in storage order: a run of inserts walks the same few tree
    /// nodes while they are in cache, where an insert per stored event paid for the walk
    /// every time (a cache miss or more each, with thousands of replicas in one simulator).
    indexed: usize,
    peers: BTreeMap<PeerId, PeerSync>,
    /// Sessions started, for nonce derivation.
    counter: u64,
    stats: SyncStats,
}

/// What we hold about one peer.
#[derive(Debug, Default)]
struct PeerSync {
    initiator: Option<Session>,
    responder: Option<Session>,
    /// Events the peer lacks, dependencies first.
    outbox: VecDeque<Slot>,
    /// One bit per slot queued since the outbox was last empty (sent ones included: both of
    /// a peer's sessions may name an event after its batch left).
    queued: Vec<u64>,
    /// A batch with `more` went out at this time and no `More` came back yet.
    awaiting_more_since: Option<Millis>,
    /// Ids the peer holds and we lack.
    wants: VecDeque<EventId>,
    /// A `GetEvents` for `wants` went out at this time.
    get_since: Option<Millis>,
}

impl PeerSync {
    /// Marks `slot` as queued; false if it already was.
    fn mark(&mut self, slot: Slot) -> bool {
        let (w, b) = (slot as usize / 64, slot % 64);
        if self.queued.len() <= w {
            self.queued.resize(w + 1, 0);
        }
        let was = self.queued[w] & (1 << b) != 0;
        self.queued[w] |= 1 << b;
        !was
    }

    fn session(&mut self, role: Role) -> &mut Option<Session> {
        match role {
            Role::Initiator => &mut self.initiator,
            Role::Responder => &mut self.responder,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.outbox.capacity() * 4
            + self.queued.capacity() * 8
            + self.wants.capacity() * 32
            + self.initiator.as_ref().map_or(0, Session::heap_bytes)
            + self.responder.as_ref().map_or(0, Session::heap_bytes)
    }
}

/// How a peer's catch-up stands (for progress reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerSyncInfo {
    /// Events waiting to be streamed to the peer.
    pub outbox: usize,
    /// Ids waiting to be requested from the peer.
    pub wants: usize,
    /// Reconciliation sessions running with the peer (0–2).
    pub sessions: usize,
}

impl Replica {
    /// Counters of reconciliation and catch-up.
    pub fn sync_stats(&self) -> SyncStats {
        self.recon.stats
    }

    /// Catch-up state per peer with any (sessions, outbox or wants).
    pub fn sync_peers(&self) -> Vec<(PeerId, PeerSyncInfo)> {
        self.recon
            .peers
            .iter()
            .map(|(p, s)| {
                let info = PeerSyncInfo {
                    outbox: s.outbox.len(),
                    wants: s.wants.len(),
                    sessions: usize::from(s.initiator.is_some())
                        + usize::from(s.responder.is_some()),
                };
                (*p, info)
            })
            .collect()
    }

    /// Heap bytes of the reconciliation index and the per-peer state.
    pub fn sync_heap_bytes(&self) -> usize {
        self.recon.index.as_ref().map_or(0, ReconIndex::heap_bytes)
            + self
                .recon
                .peers
                .values()
                .map(PeerSync::heap_bytes)
                .sum::<usize>()
    }

    /// Brings the index up to date: inserts the events stored since it was last used, and
    /// builds it from the DAG if it still does not hold exactly the stored events.
    fn ensure_index(&mut self) {
        let n = self.dag.len();
        let dag = &self.dag;
        if let Some(ix) = self.recon.index.as_mut() {
            for s in self.recon.indexed.min(n)..n {
                ix.insert(dag.meta(s as Slot).clock, dag.id(s as Slot));
            }
        }
        self.recon.indexed = n;
        if self.recon.index.as_ref().is_some_and(|ix| ix.len() == n) {
            return;
        }
        let keys = (0..n as Slot)
            .map(|s| ReconKey::new(self.dag.meta(s).clock, self.dag.id(s)))
            .collect();
        self.recon.index = Some(ReconIndex::from_keys(keys));
    }

    fn session_nonce(&mut self, peer: PeerId) -> [u8; 16] {
        self.recon.counter += 1;
        let mut h = blake3::Hasher::new_keyed(&self.config.recon_seed);
        h.update(b"ate v1 recon nonce");
        h.update(&self.chain.0);
        h.update(&peer.0.to_le_bytes());
        h.update(&self.recon.counter.to_le_bytes());
        let mut nonce = [0; 16];
        nonce.copy_from_slice(&h.finalize().as_bytes()[..16]);
        nonce
    }

    /// Whether `peer` has, or may get, reconciliation state.
    fn has_room_for(&self, peer: PeerId) -> bool {
        self.recon.peers.contains_key(&peer) || self.recon.peers.len() < self.config.max_sync_peers
    }

    /// Starts a session with `peer`; with `force` false only if ours is not running.
    pub(super) fn start_recon(&mut self, now: Millis, peer: PeerId, force: bool) {
        if !self.has_room_for(peer) {
            return;
        }
        // Periodic sessions wait while one of ours runs or a catch-up with the peer is under
        // way (a session would report the events still in flight as missing).
        let busy = self.recon.peers.get(&peer).is_some_and(|p| {
            p.initiator
                .as_ref()
                .is_some_and(|s| !s.is_done() && !s.is_expired(now))
                || !p.outbox.is_empty()
                || !p.wants.is_empty()
                || p.get_since.is_some()
        });
        if !force && busy {
            return;
        }
        let nonce = self.session_nonce(peer);
        self.ensure_index();
        let Some(index) = self.recon.index.as_ref() else {
            return;
        };
        let (session, msg) = Session::initiate(index, &self.config.recon, nonce, now);
        self.recon.stats.sessions_started += 1;
        let p = self.recon.peers.entry(peer).or_default();
        // An `Open` that lists our few ids asks nothing back: that session is already over.
        let done = session.is_done();
        if std::mem::replace(&mut p.initiator, (!done).then_some(session)).is_some() {
            self.recon.stats.sessions_failed += 1;
        }
        if done {
            self.recon.stats.sessions_done += 1;
        }
        self.send_recon(peer, msg);
        self.forget_if_idle(peer);
    }

    fn send_recon(&mut self, to: PeerId, msg: ReconMsg) {
        let s = &mut self.recon.stats;
        s.msgs_sent += 1;
        s.ranges_sent += msg.ranges().len() as u64;
        s.bytes_sent += msg.encoded_len() as u64;
        self.out.push(Output::Send {
            to,
            msg: SyncMsg::Recon(msg),
        });
    }

    /// A reconciliation message from `from`.
    pub(super) fn on_recon(&mut self, now: Millis, from: PeerId, msg: ReconMsg) {
        let len = msg.encoded_len();
        let s = &mut self.recon.stats;
        s.rounds += 1;
        s.bytes_received += len as u64;
        s.ranges_received += msg.ranges().len() as u64;
        let role = msg.addressee();
        // Peers use the same limits; a bigger message is refused before any work.
        if len > self.config.recon.max_msg_bytes || !self.has_room_for(from) {
            self.end_session(from, role, false);
            return;
        }
        self.ensure_index();
        let Some(index) = self.recon.index.as_ref() else {
            return;
        };
        let cfg = &self.config.recon;
        let p = self.recon.peers.entry(from).or_default();
        let result = match (role, msg) {
            (Role::Responder, open @ ReconMsg::Open { .. }) => {
                if p.responder.is_some() {
                    self.recon.stats.sessions_failed += 1;
                }
                Session::respond(index, cfg, open, now).map(|(s, step)| {
                    p.responder = Some(s);
                    step
                })
            }
            (role, msg) => match p.session(role).as_mut() {
                Some(s) => s.handle(index, msg, now),
                None => Err(ReconError::Finished),
            },
        };
        match result {
            Ok(step) => self.apply_step(now, from, role, step),
            Err(e) => {
                let _: ReconError = e;
                self.end_session(from, role, false);
            }
        }
    }

    fn end_session(&mut self, peer: PeerId, role: Role, ok: bool) {
        let Some(p) = self.recon.peers.get_mut(&peer) else {
            return;
        };
        if p.session(role).take().is_some() {
            match ok {
                true => self.recon.stats.sessions_done += 1,
                false => self.recon.stats.sessions_failed += 1,
            }
        }
        self.forget_if_idle(peer);
    }

    fn forget_if_idle(&mut self, peer: PeerId) {
        let idle = self.recon.peers.get(&peer).is_some_and(|p| {
            p.initiator.is_none()
                && p.responder.is_none()
                && p.outbox.is_empty()
                && p.wants.is_empty()
                && p.awaiting_more_since.is_none()
                && p.get_since.is_none()
        });
        if idle {
            self.recon.peers.remove(&peer);
        }
    }

    fn apply_step(&mut self, now: Millis, peer: PeerId, role: Role, step: Step) {
        if let Some(reply) = step.reply {
            self.send_recon(peer, reply);
        }
        let stats = &mut self.recon.stats;
        stats.ids_peer_lacks += step.peer_lacks.len() as u64;
        stats.ids_we_lack += step.we_lack.len() as u64;
        let max = self.config.max_sync_queue;
        if let Some(p) = self.recon.peers.get_mut(&peer) {
            for id in &step.peer_lacks {
                let Some(slot) = self.dag.slot(id) else {
                    continue;
                };
                if p.outbox.len() >= max {
                    stats.queue_dropped += 1;
                } else if p.mark(slot) {
                    p.outbox.push_back(slot);
                }
            }
            for id in step.we_lack {
                if p.wants.len() >= max {
                    stats.queue_dropped += 1;
                } else {
                    p.wants.push_back(id);
                }
            }
        }
        let (stream, fetch) = match self.recon.peers.get(&peer) {
            Some(p) => (
                p.awaiting_more_since.is_none() && !p.outbox.is_empty(),
                p.get_since.is_none() && !p.wants.is_empty(),
            ),
            None => (false, false),
        };
        if stream {
            self.send_batch(now, peer);
        }
        if fetch {
            self.request_wants(now, peer);
        }
        if step.done {
            self.end_session(peer, role, true);
        }
    }

    /// Sends `peer` the next bounded batch of its outbox.
    fn send_batch(&mut self, now: Millis, peer: PeerId) {
        let Some(p) = self.recon.peers.get_mut(&peer) else {
            return;
        };
        let mut events = Vec::new();
        let mut size = 0;
        while events.len() < self.config.sync_batch_events && size < self.config.sync_batch_bytes {
            let Some(slot) = p.outbox.pop_front() else {
                break;
            };
            let bytes = self.dag.event(slot).encode();
            size += bytes.len();
            events.push(bytes);
        }
        let more = !p.outbox.is_empty();
        p.awaiting_more_since = more.then_some(now);
        if !more {
            p.queued = Vec::new();
            p.outbox = VecDeque::new();
        }
        if events.is_empty() {
            return;
        }
        self.recon.stats.events_streamed += events.len() as u64;
        self.recon.stats.batches_streamed += 1;
        self.out.push(Output::Send {
            to: peer,
            msg: SyncMsg::Events { events, more },
        });
    }

    /// Requests the next chunk of the ids we found missing here from `peer`.
    fn request_wants(&mut self, now: Millis, peer: PeerId) {
        let Some(p) = self.recon.peers.get_mut(&peer) else {
            return;
        };
        let mut ids = Vec::new();
        while ids.len() < self.config.max_get_ids.max(1) {
            let Some(id) = p.wants.pop_front() else {
                break;
            };
            // Skip what arrived meanwhile (by gossip, or from another peer).
            if !self.dag.contains(&id) && !self.pending.contains(&id) {
                ids.push(id);
            }
        }
        p.get_since = (!ids.is_empty()).then_some(now);
        if !ids.is_empty() {
            self.out.push(Output::Send {
                to: peer,
                msg: SyncMsg::GetEvents { ids },
            });
        }
        self.forget_if_idle(peer);
    }

    /// The peer asks for the next batch of its outbox.
    pub(super) fn on_more(&mut self, now: Millis, from: PeerId) {
        if let Some(p) = self.recon.peers.get_mut(&from) {
            p.awaiting_more_since = None;
            self.send_batch(now, from);
            self.forget_if_idle(from);
        }
    }

    /// Events arrived from `from`: the answer to our `GetEvents`, so ask for the next chunk.
    pub(super) fn after_sync_events(&mut self, now: Millis, from: PeerId) {
        if let Some(p) = self.recon.peers.get_mut(&from)
            && p.get_since.take().is_some()
        {
            self.request_wants(now, from);
        }
    }

    /// The peer disconnected: its sessions and queues go (a new session resumes later).
    pub(super) fn recon_peer_down(&mut self, peer: PeerId) {
        if let Some(p) = self.recon.peers.remove(&peer) {
            let open = usize::from(p.initiator.is_some()) + usize::from(p.responder.is_some());
            self.recon.stats.sessions_failed += open as u64;
        }
    }

    /// Expires sessions; re-sends a batch or a chunk whose answer never came.
    pub(super) fn recon_tick(&mut self, now: Millis) {
        let idle_ms = self.config.recon.idle_timeout_ms;
        let refetch_ms = self.config.refetch_ms;
        let peers: Vec<PeerId> = self.recon.peers.keys().copied().collect();
        for peer in peers {
            let Some(p) = self.recon.peers.get_mut(&peer) else {
                continue;
            };
            for role in [Role::Initiator, Role::Responder] {
                let slot = p.session(role);
                if slot.as_ref().is_some_and(|s| s.is_expired(now)) {
                    *slot = None;
                    self.recon.stats.sessions_failed += 1;
                }
            }
            let stalled = p
                .awaiting_more_since
                .is_some_and(|t| now.saturating_sub(t) > idle_ms);
            let lost_get = p
                .get_since
                .is_some_and(|t| now.saturating_sub(t) > refetch_ms);
            if stalled {
                p.awaiting_more_since = None;
                self.send_batch(now, peer);
            }
            if lost_get {
                self.request_wants(now, peer);
            }
            self.forget_if_idle(peer);
        }
    }
}

#[cfg(test)]
#[path = "recon_tests.rs"]
mod tests;
