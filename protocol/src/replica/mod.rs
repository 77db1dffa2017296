//! The sans-IO replica of one chain (DESIGN §1).
//!
//! A [`Replica`] is a state machine with one entry point, [`Replica::handle`]: the node and the
//! simulator feed it [`Input`]s with the current time and carry out the [`Output`]s it returns.
//! It never reads a clock, a socket or a file, so the simulator can run thousands of them
//! deterministically and the node runs exactly the same logic.
//!
//! * Inputs: local events, gossip bytes, sync messages, fetched events, peer up/down, ticks.
//! * Outputs: publish (gossip), send (sync), persist (redo log), verdicts (gossip validation
//!   and peer scoring), view changes (subscribers).
//! * Getters: [`Replica::view`], [`Replica::heads`], [`Replica::stats`], ...
//!
//! Ingest of a batch: cheap decode checks → duplicate filter → one batch signature check →
//! per event, dependencies (missing ones park the event in the pending buffer and ask the
//! sender for them) → structural rules (`seq`/`prev`/`clock`) → the chain of trust → store,
//! view, outputs → release anything that was waiting on it.

use std::collections::VecDeque;

use crate::dag::{Dag, NONE, Placement, Slot};
use crate::event::{Body, BodyKind, DecodeError, Event, Params, Rights, ValueHead};
use crate::ids::{ChainId, EventId, PeerId, PublicKey};
use crate::pending::{Pending, Waiting};
use crate::trust::{AdminEvent, AdminKind, Question, Target, Trust};
use crate::verify::{Ed25519Batch, SigItem, SignatureCheck};
use crate::view::View;

mod compact;
mod decoded;
mod getters;
mod recon;
mod snapshot;
mod sync;
mod types;
mod validate;
pub use compact::Compaction;
pub use decoded::SharedEnvelope;
pub use recon::PeerSyncInfo;
pub use snapshot::{SNAPSHOT_FORMAT_VERSION, SnapshotError, SnapshotInfo};
pub use types::*;

/// The replica of one chain.
#[derive(Debug)]
pub struct Replica {
    pub(crate) chain: ChainId,
    pub(crate) params: Params,
    pub(crate) name: String,
    config: Config,
    pub(crate) dag: Dag,
    pub(crate) trust: Trust,
    pub(crate) view: View,
    pending: Pending,
    checker: std::sync::Arc<dyn SignatureCheck>,
    stats: Stats,
    equivocations: Vec<Equivocation>,
    /// Ids recently found invalid (bounded), so their dependents fail fast.
    invalid: VecDeque<EventId>,
    out: Vec<Output>,
    /// Missing ids to ask each peer for, gathered during one `handle` call.
    wants: std::collections::BTreeMap<PeerId, std::collections::BTreeSet<EventId>>,
    /// Reconciliation sessions, catch-up queues and the id index (see `recon.rs`).
    recon: recon::ReconState,
}

const MAX_REMEMBERED_INVALID: usize = 4096;
const MAX_EQUIVOCATIONS_KEPT: usize = 1024;

impl Replica {
    /// Starts a replica from a genesis envelope.
    pub fn new(genesis: &[u8], config: Config) -> Result<Replica, GenesisError> {
        Self::with_checker(genesis, config, std::sync::Arc::new(Ed25519Batch))
    }

    /// Like [`Replica::new`], with an injected signature checker (the simulator memoizes).
    pub fn with_checker(
        genesis: &[u8],
        config: Config,
        checker: std::sync::Arc<dyn SignatureCheck>,
    ) -> Result<Replica, GenesisError> {
        let ev = Event::decode(
            None,
            genesis,
            &Params {
                max_event_bytes: 1 << 20,
                max_key_bytes: 1 << 20,
            },
        )?;
        let Some(Body::Genesis(g)) = &ev.body else {
            return Err(GenesisError::Decode(DecodeError::BadHeader(
                "expected a genesis event",
            )));
        };
        if !g.roots.contains(&ev.header.author) || !ev.verify() {
            return Err(GenesisError::NotSignedByRoot);
        }
        let chain = ChainId(ev.id.0);
        let mut dag = Dag::new(config.hash_seed);
        let author = dag
            .author_index(&ev.header.author)
            .ok_or(GenesisError::NotSignedByRoot)?;
        let own_set = dag.admin_sets.with(0, 0);
        let mut trust = Trust::new(g.roots.clone(), g.next.clone());
        let at = Placement {
            author,
            prev: NONE,
            parents: &[],
            admin_set: own_set,
            aux: 0,
            effective: true,
        };
        let _ = dag.insert(&ev, at);
        trust.push(AdminEvent {
            clock: 0,
            id: ev.id,
            author: ev.header.author,
            deps_set: 0,
            own_set,
            kind: AdminKind::Genesis,
        });
        let _ = trust.recompute_global(&dag.admin_sets);
        Ok(Replica {
            chain,
            params: g.params,
            name: g.name.clone(),
            config,
            dag,
            trust,
            view: View::default(),
            pending: Pending::default(),
            checker,
            stats: Stats {
                accepted: 1,
                ..Default::default()
            },
            equivocations: Vec::new(),
            invalid: VecDeque::new(),
            out: Vec::new(),
            wants: Default::default(),
            recon: Default::default(),
        })
    }

    /// The one entry point: feed an input at time `now`, get the outputs to carry out.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Output> {
        match input {
            Input::LocalEvent(ev) => {
                let bytes = ev.encode();
                self.ingest(now, None, vec![(Ok(*ev), bytes)], true);
            }
            Input::LocalBatch(evs) => {
                let batch = evs.into_iter().map(|ev| {
                    let bytes = ev.encode();
                    (Ok(ev), bytes)
                });
                self.ingest(now, None, batch.collect(), true);
            }
            Input::Gossip { from, bytes } => self.on_bytes(now, Some(from), vec![bytes]),
            Input::GossipDecoded { from, envelope } => self.on_decoded(now, from, &envelope),
            Input::Fetched { from, events } => self.on_bytes(now, Some(from), events),
            Input::Replay(events) => self.on_bytes(now, None, events),
            Input::Sync { from, msg } => self.on_sync(now, from, msg),
            Input::PeerUp(peer) => self.start_recon(now, peer, true),
            Input::Reconcile(peer) => self.start_recon(now, peer, false),
            Input::PeerDown(peer) => self.recon_peer_down(peer),
            Input::Tick => {
                self.on_tick(now);
                self.recon_tick(now);
            }
        }
        self.flush_wants();
        std::mem::take(&mut self.out)
    }

    fn on_bytes(&mut self, now: Millis, from: Option<PeerId>, events: Vec<Vec<u8>>) {
        let chain = self.chain;
        let mut decoded = Vec::with_capacity(events.len());
        for b in events {
            let res = Event::decode(Some(&chain), &b, &self.params);
            self.sort_decoded(from, res, b, &mut decoded);
        }
        self.ingest(now, from, decoded, false);
    }

    /// Files a decoded envelope for [`Replica::ingest`], except our own genesis: it comes
    /// back in sync answers, and it is not an error to see it.
    fn sort_decoded(
        &mut self,
        from: Option<PeerId>,
        res: Result<Event, DecodeError>,
        bytes: Vec<u8>,
        into: &mut Vec<(Result<Event, DecodeError>, Vec<u8>)>,
    ) {
        let chain = self.chain;
        match res {
            Err(DecodeError::BadHeader(_))
                if crate::event::envelope_id(None, &bytes)
                    .is_some_and(|(id, _)| id.0 == chain.0) =>
            {
                self.verdict(from, Some(id_of(&chain)), Verdict::Duplicate)
            }
            res => into.push((res, bytes)),
        }
    }

    fn verdict(&mut self, from: Option<PeerId>, id: Option<EventId>, verdict: Verdict) {
        match &verdict {
            Verdict::Valid => self.stats.accepted += 1,
            Verdict::Duplicate => self.stats.duplicates += 1,
            Verdict::Invalid(r) => *self.stats.rejected.entry(r.label()).or_default() += 1,
            Verdict::Overloaded => self.stats.pending_dropped += 1,
            Verdict::Pending { .. } => {}
        }
        self.out.push(Output::Verdict { from, id, verdict });
    }

    /// Batch ingest: filter, verify signatures together, then accept one by one.
    fn ingest(
        &mut self,
        now: Millis,
        from: Option<PeerId>,
        batch: Vec<(Result<Event, DecodeError>, Vec<u8>)>,
        local: bool,
    ) {
        // Copies of one id inside a batch are all checked: a copy with a bad signature must not
        // shadow a good one. The first valid copy is stored; later ones are duplicates.
        let mut fresh: Vec<(Event, Vec<u8>)> = Vec::with_capacity(batch.len());
        for (res, bytes) in batch {
            match res {
                Err(e) => self.verdict(from, None, Verdict::Invalid(e.into())),
                Ok(ev) if self.dag.contains(&ev.id) || self.pending.contains(&ev.id) => {
                    self.verdict(from, Some(ev.id), Verdict::Duplicate)
                }
                Ok(ev) => fresh.push((ev, bytes)),
            }
        }
        // Decompress unknown author keys once per batch; a bad key fails its event.
        let mut keys = Vec::with_capacity(fresh.len());
        let mut temp: Vec<(PublicKey, ed25519_dalek::VerifyingKey)> = Vec::new();
        for (ev, _) in &fresh {
            let a = &ev.header.author;
            let vk = match self.dag.known_author(a) {
                Some(i) => Some(self.dag.authors[i as usize].vk),
                None => match temp.iter().find(|(k, _)| k == a) {
                    Some((_, vk)) => Some(*vk),
                    None => crate::verify::author_key(a).inspect(|vk| temp.push((*a, *vk))),
                },
            };
            keys.push(vk);
        }
        let mut ok = Vec::new();
        {
            let idx: Vec<usize> = (0..fresh.len()).filter(|&i| keys[i].is_some()).collect();
            let items: Vec<SigItem<'_>> = idx
                .iter()
                .filter_map(|&i| {
                    let vk = keys[i].as_ref()?;
                    Some(SigItem {
                        key: vk,
                        id: &fresh[i].0.id,
                        sig: &fresh[i].0.sig,
                    })
                })
                .collect();
            let mut verdicts = Vec::new();
            self.checker.check(&items, &mut verdicts);
            ok.resize(fresh.len(), false);
            for (j, &i) in idx.iter().enumerate() {
                ok[i] = verdicts.get(j).copied().unwrap_or(false);
            }
        }
        for (i, (ev, bytes)) in fresh.into_iter().enumerate() {
            if keys[i].is_none() {
                self.verdict(from, Some(ev.id), Verdict::Invalid(Reason::BadAuthorKey));
            } else if !ok[i] {
                self.verdict(from, Some(ev.id), Verdict::Invalid(Reason::BadSignature));
            } else {
                self.accept_or_park(now, from, ev, bytes, local);
            }
        }
    }

    fn accept_or_park(
        &mut self,
        now: Millis,
        from: Option<PeerId>,
        ev: Event,
        bytes: Vec<u8>,
        local: bool,
    ) {
        let mut queue = vec![(ev, bytes, from, local)];
        while let Some((ev, bytes, from, local)) = queue.pop() {
            let id = ev.id;
            if self.dag.contains(&id) || self.pending.contains(&id) {
                self.verdict(from, Some(id), Verdict::Duplicate);
                continue;
            }
            match self.check_deps(&ev) {
                Deps::Missing(missing) => {
                    if !self.make_room(ev.header.clock, &id, bytes.len()) {
                        self.verdict(from, Some(id), Verdict::Overloaded);
                        continue;
                    }
                    if let Some(peer) = from {
                        for m in &missing {
                            // Ids already waiting here will be accepted with them.
                            if !self.pending.contains(m)
                                && self.pending.should_request(m, now, self.config.refetch_ms)
                            {
                                self.wants.entry(peer).or_default().insert(*m);
                            }
                        }
                    }
                    self.pending.add(
                        Waiting {
                            event: ev,
                            bytes,
                            from,
                            since_ms: now,
                            missing: 0,
                        },
                        &missing,
                    );
                    self.verdict(from, Some(id), Verdict::Pending { missing });
                }
                Deps::Invalid => {
                    self.verdict(from, Some(id), Verdict::Invalid(Reason::InvalidDependency));
                    self.forget_invalid(id, &mut queue);
                }
                Deps::Ready(prev, parents) => match self.validate(&ev, prev, &parents) {
                    Err(reason) => {
                        self.verdict(from, Some(id), Verdict::Invalid(reason));
                        self.forget_invalid(id, &mut queue);
                    }
                    Ok(at_set) => {
                        self.store(ev, &bytes, prev, &parents, at_set);
                        self.out.push(Output::Persist {
                            id,
                            bytes: bytes.clone(),
                        });
                        if local {
                            self.out.push(Output::Publish(bytes));
                        }
                        self.verdict(from, Some(id), Verdict::Valid);
                        for w in self.pending.arrived(&id) {
                            queue.push((w.event, w.bytes, w.from, false));
                        }
                    }
                },
            }
        }
    }

    /// Makes room in the pending buffer for an event of `clock`: when full, the newest waiting
    /// event is evicted if it is newer than this one; otherwise this one is refused.
    fn make_room(&mut self, clock: u64, id: &EventId, size: usize) -> bool {
        loop {
            let full = self.pending.len() >= self.config.max_pending_events
                || self.pending.bytes + size > self.config.max_pending_bytes;
            if !full {
                return true;
            }
            match self.pending.newest() {
                Some(newest) if newest > (clock, *id) => {
                    self.pending.evict(&newest.1);
                    self.stats.pending_dropped += 1;
                }
                _ => return false,
            }
        }
    }

    fn forget_invalid(
        &mut self,
        id: EventId,
        queue: &mut Vec<(Event, Vec<u8>, Option<PeerId>, bool)>,
    ) {
        if self.invalid.len() >= MAX_REMEMBERED_INVALID {
            self.invalid.pop_front();
        }
        self.invalid.push_back(id);
        for w in self.pending.take_dependents(&id) {
            queue.push((w.event, w.bytes, w.from, false));
        }
    }

    fn check_deps(&self, ev: &Event) -> Deps {
        let mut missing = Vec::new();
        let mut parents = Vec::with_capacity(ev.header.parents.len());
        let mut deps: Vec<&EventId> = ev.header.parents.iter().collect();
        deps.extend(ev.header.prev.as_ref());
        // A compacted put names its previous version in its stub.
        let stub_previous = match &ev.body {
            None => ev.put_head().and_then(|h| h.previous),
            Some(_) => None,
        };
        if let Some(Body::Put(p)) = &ev.body {
            deps.extend(p.previous.as_ref());
        }
        deps.extend(stub_previous.as_ref());
        for (i, d) in deps.iter().enumerate() {
            match self.dag.slot(d) {
                Some(s) if i < ev.header.parents.len() => parents.push(s),
                Some(_) => {}
                None if self.invalid.contains(d) => return Deps::Invalid,
                None => missing.push(**d),
            }
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Deps::Missing(missing);
        }
        let prev = ev
            .header
            .prev
            .and_then(|p| self.dag.slot(&p))
            .unwrap_or(NONE);
        Deps::Ready(prev, parents)
    }

    fn store(&mut self, ev: Event, _bytes: &[u8], prev: Slot, parents: &[Slot], at_set: u32) {
        let Some(author) = self.dag.author_index(&ev.header.author) else {
            return;
        };
        let slot_next = self.dag.len() as Slot;
        // A put's key and links: from its body, or from its stub if it came compacted.
        let stub_head = if ev.body.is_none() {
            ev.put_head()
        } else {
            None
        };
        let head = match (&ev.body, &stub_head) {
            (Some(Body::Put(p)), _) => Some((p.key.as_str(), p.previous, p.seq)),
            (None, Some(h)) => Some((h.key.as_str(), h.previous, h.seq)),
            _ => None,
        };
        match &ev.body {
            Some(Body::Put(_)) | None => {
                // A put, with its body or compacted to its stub: placed in the view alike.
                let Some((key, previous, seq)) = head else {
                    return;
                };
                // `validate` accepted it; unless something was revoked or rotated, that
                // means it has effect (see `Trust::nothing_cut`): one authority pass, not two.
                let has_effect = |trust: &Trust| {
                    let sets = &self.dag.admin_sets;
                    trust.put_has_effect(sets, &ev.header.author, key, slot_next, at_set)
                };
                let effective = self.trust.nothing_cut() || has_effect(&self.trust);
                debug_assert_eq!(effective, has_effect(&self.trust), "effect ≠ acceptance");
                let at = Placement {
                    author,
                    prev,
                    parents,
                    admin_set: at_set,
                    aux: NONE,
                    effective,
                };
                let (slot, other) = self.dag.insert(&ev, at);
                let previous = previous.and_then(|q| self.dag.slot(&q)).unwrap_or(NONE);
                let rec = self.view.insert(&self.dag, slot, key, previous, seq);
                self.dag.meta[slot as usize].aux = rec;
                self.note_equivocation(slot, other);
                if effective {
                    self.out.push(Output::Changed(ViewChange {
                        key: key.to_string(),
                        id: ev.id,
                        kind: ChangeKind::Added,
                    }));
                }
            }
            Some(Body::Grant(_) | Body::Revoke(_) | Body::ReadKeyShare(_) | Body::Rotate(_)) => {
                let ordinal = self.trust.admins.len() as u32;
                let own_set = self.dag.admin_sets.with(at_set, ordinal);
                let kind = match &ev.body {
                    Some(Body::ReadKeyShare(s)) => AdminKind::Share {
                        scope: s.scope.clone(),
                        epoch: s.epoch,
                        key_id: s.key_id,
                    },
                    Some(Body::Rotate(r)) => {
                        let sets = &self.dag.admin_sets;
                        let author = &ev.header.author;
                        let Ok((lineage, depth)) =
                            self.trust.check_rotation(sets, author, r, at_set)
                        else {
                            return;
                        };
                        AdminKind::Rotate {
                            lineage,
                            depth,
                            old: *author,
                            new: r.next_root,
                            next: r.next_commitment,
                            key_events: self.key_events_in_past(author, prev, parents),
                        }
                    }
                    Some(Body::Grant(g)) => AdminKind::Grant {
                        to: g.to,
                        scope: g.scope.clone(),
                        rights: g.rights,
                    },
                    Some(Body::Revoke(r)) => AdminKind::Revoke {
                        key: r.key,
                        scope: r.scope.clone(),
                        key_events: self.key_events_in_past(&r.key, prev, parents),
                    },
                    _ => return,
                };
                let at = Placement {
                    author,
                    prev,
                    parents,
                    admin_set: own_set,
                    aux: ordinal,
                    effective: true,
                };
                let (slot, other) = self.dag.insert(&ev, at);
                self.trust.push(AdminEvent {
                    clock: ev.header.clock,
                    id: ev.id,
                    author: ev.header.author,
                    deps_set: at_set,
                    own_set,
                    kind,
                });
                self.note_equivocation(slot, other);
                let changed = self.trust.recompute_global(&self.dag.admin_sets);
                if !changed.is_empty() {
                    self.reevaluate(&changed);
                }
            }
            _ => {}
        }
    }

    /// `key`'s events in the causal past of an event with these links, sorted.
    fn key_events_in_past(&self, key: &PublicKey, prev: Slot, parents: &[Slot]) -> Vec<Slot> {
        let mut from: Vec<Slot> = parents.to_vec();
        if prev != NONE {
            from.push(prev);
        }
        match self.dag.known_author(key) {
            Some(a) => self.dag.author_events_in_past(&from, a),
            None => Vec::new(),
        }
    }

    fn note_equivocation(&mut self, slot: Slot, other: Option<Slot>) {
        let Some(other) = other else { return };
        self.stats.equivocations += 1;
        if self.equivocations.len() < MAX_EQUIVOCATIONS_KEPT {
            self.equivocations.push(Equivocation {
                author: self.dag.author_key(slot),
                seq: self.dag.meta(slot).seq,
                events: [self.dag.id(other), self.dag.id(slot)],
            });
        }
    }

    /// Re-decides the effect of every put by `authors` (after a revocation changed things).
    fn reevaluate(&mut self, authors: &[PublicKey]) {
        let idx: Vec<u32> = authors
            .iter()
            .filter_map(|a| self.dag.known_author(a))
            .collect();
        let mut touched = std::collections::BTreeSet::new();
        for slot in 0..self.dag.len() as Slot {
            let m = *self.dag.meta(slot);
            if m.kind != BodyKind::Put || !idx.contains(&m.author) {
                continue;
            }
            let Some(record_key) = self.dag.head_ref(slot).map(|h| h.key.to_string()) else {
                continue;
            };
            let key = self.dag.author_key(slot);
            let now = self.trust.put_has_effect(
                &self.dag.admin_sets,
                &key,
                &record_key,
                slot,
                m.admin_set,
            );
            if now != m.effective {
                self.dag.set_effective(slot, now);
                touched.insert(m.aux);
                let kind = if now {
                    ChangeKind::Restored
                } else {
                    ChangeKind::Disabled
                };
                self.out.push(Output::Changed(ViewChange {
                    key: record_key,
                    id: self.dag.id(slot),
                    kind,
                }));
            }
        }
        for rec in touched {
            let dag = &self.dag;
            self.view.rebuild(dag, rec, &|s| dag.put_links(s));
        }
    }

    fn on_tick(&mut self, now: Millis) {
        let dropped = self.pending.expire(now, self.config.pending_timeout_ms);
        self.stats.pending_dropped += dropped as u64;
        // Ask again for what a lost request or response never brought.
        let max = self.config.max_get_ids * 4;
        for (peer, id) in self.pending.refetch(now, self.config.refetch_ms, max) {
            self.wants.entry(peer).or_default().insert(id);
        }
    }

    /// Turns the ids wanted during this call into one `GetEvents` per peer (chunked), so a
    /// burst of out-of-order events costs a few requests, not one each.
    fn flush_wants(&mut self) {
        for (peer, ids) in std::mem::take(&mut self.wants) {
            let ids: Vec<EventId> = ids.into_iter().collect();
            for chunk in ids.chunks(self.config.max_get_ids.max(1)) {
                self.out.push(Output::Send {
                    to: peer,
                    msg: SyncMsg::GetEvents {
                        ids: chunk.to_vec(),
                    },
                });
            }
        }
    }
}

/// An event whose author lacks the right, or breaks a rotation or sealing rule, for `why`.
fn refused(h: &crate::event::Header, need: Rights, target: &str, why: &str) -> Reason {
    Reason::NotAuthorized {
        author: h.author.short(),
        need,
        target: format!("{target}: {why}"),
    }
}

fn id_of(chain: &ChainId) -> EventId {
    EventId(chain.0)
}

enum Deps {
    Ready(Slot, Vec<Slot>),
    Missing(Vec<EventId>),
    Invalid,
}
