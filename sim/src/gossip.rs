//! The gossipsub-like layer each node gets from libp2p, and the glue to its replica.
//!
//! Per chain a node keeps a mesh of `d` peers among its connections. A new local event is
//! pushed to the mesh (or to every connected peer with `flood_publish`, gossipsub's default).
//! A received message is dropped if its id is in the seen cache; otherwise the replica judges
//! it and only a `Valid` verdict forwards it to the rest of the mesh (manual validation:
//! `Accept`; `Pending` holds it until the replica decides, `Invalid` rejects it). At each
//! heartbeat the mesh is repaired towards `d` (graft below `d_low`, prune above `d_high`) and
//! ids seen in the last `history_gossip` heartbeats are advertised with IHAVE to `d_lazy`
//! non-mesh peers, which answer IWANT for what they miss. GRAFT/PRUNE take effect on both ends
//! at once (their bytes are counted): the simplification costs nothing in dissemination time.

use ate_protocol::{EventId, Input, Output, PeerId, Verdict};

use crate::world::{Class, Ev, Wire, World};

const CONTROL_BYTES: u64 = 64;
/// Heartbeats an unjudged message stays in gossipsub's message cache (its `history_length`,
/// default 5): a message still waiting for its dependencies after that is never forwarded.
pub(crate) const HISTORY_LENGTH: u64 = 5;
const MAX_IHAVE: usize = 5000;

impl World {
    pub(crate) fn on_gossip(&mut self, to: u32, from: u32, i: u32) {
        self.counters.gossip_deliveries += 1;
        let gid = self.msgs[i as usize].gid;
        if self.seen[gid as usize].set(to) {
            self.counters.gossip_duplicates += 1;
            // gossipsub does not forward a message back to peers that sent it a copy while it
            // waited for validation (its "originating peers").
            if self.sc.node.linger_ms > 0.0 {
                let node = &mut self.nodes[to as usize];
                if node
                    .batch
                    .iter()
                    .any(|b| self.msgs[b.0 as usize].gid == gid)
                {
                    node.sent_copy.push((gid, from));
                }
            }
            return;
        }
        let node = &mut self.nodes[to as usize];
        if node.shadows_left > 0 && self.msgs[i as usize].class == Class::Valid {
            node.shadows_left -= 1;
            self.shadow(to, i);
        }
        let linger = self.sc.node.linger_ms;
        if linger > 0.0 {
            let node = &mut self.nodes[to as usize];
            node.batch.push((i, from));
            if node.batch.len() == 1 {
                let mut at = self.now + (linger * 1000.0) as u64;
                let tick = (self.sc.node.timer_tick_ms * 1000.0) as u64;
                if tick > 0 {
                    // Each node's timer wheel started at its own phase.
                    let phase = (u64::from(to) * 7919) % tick;
                    at = (at + tick - phase).div_ceil(tick) * tick + phase - tick;
                }
                let epoch = node.epoch;
                self.schedule(at, Ev::Flush { node: to, epoch });
            }
            return;
        }
        self.judge(to, from, i);
    }

    /// The batch has lingered: pay for its validation (if modelled), then judge it.
    pub(crate) fn flush(&mut self, n: u32, epoch: u32) {
        let up = self.is_up(n);
        let node = &mut self.nodes[n as usize];
        if node.epoch != epoch || !up {
            return;
        }
        let batch = std::mem::take(&mut node.batch);
        let cost = self.sc.node.cpu_before_accept_us();
        if cost > 0.0 {
            let work = (cost * batch.len() as f64) as u64;
            let batch = batch.into_boxed_slice();
            self.cpu(
                n,
                work,
                Some(Ev::Validate {
                    node: n,
                    epoch,
                    batch,
                }),
            );
        } else {
            self.validate(n, epoch, &batch);
        }
    }

    /// The replica judges a batch of gossip messages, one at a time in arrival order.
    pub(crate) fn validate(&mut self, n: u32, epoch: u32, batch: &[(u32, u32)]) {
        if self.nodes[n as usize].epoch != epoch || !self.is_up(n) {
            return;
        }
        for &(i, from) in batch {
            self.judge(n, from, i);
        }
        let after = self.sc.node.cpu_after_accept_us();
        if after > 0.0 {
            // Nothing waits for it: it only keeps the node's (and a shared host's) cores busy.
            self.cpu(n, (after * batch.len() as f64) as u64, None);
        }
    }

    /// Hands gossip message `i` from `from` to node `to`'s replica.
    fn judge(&mut self, to: u32, from: u32, i: u32) {
        let input = Input::GossipDecoded {
            from: PeerId(u64::from(from)),
            envelope: self.msgs[i as usize].env.clone(),
        };
        self.feed(to, input, Some((i, from)));
    }

    pub(crate) fn on_ihave(&mut self, to: u32, from: u32, ids: &[u32]) {
        let seen = &self.seen;
        let want: Vec<u32> = (ids.iter().copied())
            .filter(|&i| !seen[i as usize].get(to))
            .collect();
        if !want.is_empty() {
            self.send(to, from, Wire::IWant(want.into_boxed_slice()));
        }
    }

    /// Publishes message `i` from node `n` (a local event, or an attacker's bytes).
    pub(crate) fn publish(&mut self, n: u32, i: u32) {
        self.seen[i as usize].set(n);
        let node = &mut self.nodes[n as usize];
        node.mcache.push_back((node.window, i));
        let targets = if self.sc.gossip.flood_publish {
            node.peers.clone()
        } else {
            node.mesh.clone()
        };
        for p in targets {
            self.send(n, p, Wire::Gossip(i));
        }
    }

    fn forward(&mut self, n: u32, i: u32, except: u32) {
        let gid = self.msgs[i as usize].gid;
        let node = &mut self.nodes[n as usize];
        let mut skip = Vec::new();
        if !node.sent_copy.is_empty() {
            node.sent_copy.retain(|&(g, p)| {
                if g == gid {
                    skip.push(p);
                }
                g != gid
            });
        }
        // Indexing, not a clone of the mesh: this runs once per accepted event per node.
        for k in 0..node.mesh.len() {
            let p = self.nodes[n as usize].mesh[k];
            if p != except && !skip.contains(&p) {
                self.send(n, p, Wire::Gossip(i));
            }
        }
    }

    /// Feeds one input to node `n`'s replica and carries out the outputs. `gossip` names the
    /// message and sender when the input is a gossip delivery.
    pub(crate) fn feed(&mut self, n: u32, input: Input, gossip: Option<(u32, u32)>) {
        let now = self.now;
        let Some(rep) = self.nodes[n as usize].replica.as_mut() else {
            return;
        };
        if let Some(jobs) = self.deferred.as_mut() {
            jobs.push(crate::batch::Job {
                at: now,
                node: n,
                input,
                gossip,
            });
            return;
        }
        let done = crate::batch::handle(rep, now, input);
        self.finish_feed(n, done, gossip);
    }

    /// Checks a replica call's invariants and carries out its outputs.
    pub(crate) fn finish_feed(
        &mut self,
        n: u32,
        done: crate::batch::Done,
        gossip: Option<(u32, u32)>,
    ) {
        // Per-step invariants: the store only grows, the pending buffer stays in its bound.
        let (before, after, pending) = (done.before, done.after, done.pending);
        if after < before || pending > self.max_pending {
            self.violations.push(format!(
                "node {n}: store went {before} -> {after} events, {pending} pending"
            ));
        }
        for out in done.outs {
            self.on_output(n, out, gossip);
        }
    }

    fn on_output(&mut self, n: u32, out: Output, gossip: Option<(u32, u32)>) {
        match out {
            Output::Publish(bytes) => {
                // Local events are registered by the actor that built them; look it up.
                if let Some(i) = self.index_of_bytes(&bytes) {
                    self.publish(n, i);
                }
            }
            Output::Send { to, msg } => self.send(n, to.0 as u32, Wire::Sync(Box::new(msg))),
            Output::Persist { id, .. } => {
                if self.keep_logs
                    && let Some(&i) = self.by_id.get(&id)
                {
                    self.nodes[n as usize].log.push(i);
                }
            }
            Output::Verdict { id, verdict, .. } => self.on_verdict(n, id, verdict, gossip),
            Output::Changed(_) => {}
        }
    }

    fn index_of_bytes(&self, bytes: &[u8]) -> Option<u32> {
        let i = *self.actors.last_local.as_ref()?;
        (self.msgs[i as usize].env.bytes() == bytes).then_some(i)
    }

    fn on_verdict(
        &mut self,
        n: u32,
        id: Option<EventId>,
        verdict: Verdict,
        gossip: Option<(u32, u32)>,
    ) {
        let idx = id.and_then(|id| self.by_id.get(&id).copied());
        match verdict {
            Verdict::Valid => {
                if let Some(i) = idx {
                    self.on_valid(n, i, gossip);
                }
            }
            Verdict::Duplicate => self.counters.replica_duplicates += 1,
            Verdict::Pending { .. } => {
                if let (Some((g, from)), Some(i)) = (gossip, idx)
                    && self.msgs[g as usize].gid == i
                {
                    let node = &mut self.nodes[n as usize];
                    node.held.push((i, from, node.heartbeats));
                }
            }
            Verdict::Overloaded => self.counters.overloaded += 1,
            Verdict::Invalid(r) => *self.counters.rejected.entry(r.label()).or_default() += 1,
        }
    }

    /// An honest node stored message `i`: check it, record its latency, forward it.
    fn on_valid(&mut self, n: u32, i: u32, gossip: Option<(u32, u32)>) {
        let node = &mut self.nodes[n as usize];
        let byz = node.byzantine;
        let msg = &self.msgs[i as usize];
        if !byz && msg.class == Class::Invalid {
            self.counters.invalid_accepted += 1;
            self.violations.push(format!(
                "safety: honest node {n} accepted invalid event {} at {} ms",
                msg.id.short(),
                self.now / 1000
            ));
        }
        if !self.recorded[i as usize].set(n) {
            let lat = self.now.saturating_sub(msg.created);
            let lat32 = lat.min(u64::from(u32::MAX)) as u32;
            self.latencies.push(lat32);
            if self.actors.last_local != Some(i) {
                if msg.put {
                    self.put_latencies.push((i, lat32));
                }
                let first = &mut self.first_accept[i as usize];
                if *first == 0 {
                    *first = self.now;
                }
            }
            let last = &mut self.last_accept[i as usize];
            *last = (*last).max(self.now);
        }
        let direct = gossip
            .filter(|&(g, _)| self.msgs[g as usize].gid == i)
            .map(|(_, from)| from);
        let held = node
            .held
            .iter()
            .position(|&(h, _, _)| h == i)
            .map(|k| node.held.swap_remove(k).1);
        if let Some(from) = direct.or(held) {
            let node = &mut self.nodes[n as usize];
            node.mcache.push_back((node.window, i));
            self.forward(n, i, from);
        }
    }

    /// Mesh repair, lazy gossip, the replica's tick and periodic anti-entropy.
    pub(crate) fn heartbeat(&mut self, n: u32) {
        let g = self.sc.gossip.clone();
        let next = self.now + g.heartbeat_ms * 1000;
        self.schedule(next, Ev::Heartbeat(n));
        if !self.is_up(n) {
            return;
        }
        self.repair_mesh(n);
        self.lazy_gossip(n);
        let node = &mut self.nodes[n as usize];
        node.heartbeats += 1;
        let beats = node.heartbeats;
        node.held
            .retain(|&(_, _, since)| beats - since < HISTORY_LENGTH);
        if self.link[n as usize].deaf {
            return;
        }
        self.feed(n, Input::Tick, None);
        let every = (g.anti_entropy_ms / g.heartbeat_ms).max(1);
        if self.nodes[n as usize].heartbeats.checked_rem(every) == Some(0) {
            let live = self.live_peers(n);
            let node = &mut self.nodes[n as usize];
            if !live.is_empty() {
                let p = live[node.rng.below(live.len() as u64) as usize];
                // The replica has no anti-entropy timer of its own: a (re)connection makes it
                // send its heads, which is the exchange anti-entropy needs.
                self.feed(n, Input::PeerUp(PeerId(u64::from(p))), None);
            }
        }
    }

    pub(crate) fn live_peers(&self, n: u32) -> Vec<u32> {
        self.nodes[n as usize]
            .peers
            .iter()
            .copied()
            .filter(|&p| self.linked(n, p))
            .collect()
    }

    pub(crate) fn repair_mesh(&mut self, n: u32) {
        let (d, d_low, d_high) = (
            self.sc.gossip.d,
            self.sc.gossip.d_low,
            self.sc.gossip.d_high,
        );
        let live = self.live_peers(n);
        let mesh: Vec<u32> = self.nodes[n as usize]
            .mesh
            .iter()
            .copied()
            .filter(|p| live.contains(p))
            .collect();
        self.nodes[n as usize].mesh = mesh;
        let len = self.nodes[n as usize].mesh.len();
        if len < d_low {
            let node = &mut self.nodes[n as usize];
            let cand: Vec<u32> = live
                .iter()
                .copied()
                .filter(|p| !node.mesh.contains(p))
                .collect();
            for p in node.rng.sample(&cand, d - len) {
                self.graft(n, p);
            }
        } else if len > d_high {
            let node = &mut self.nodes[n as usize];
            let mesh = node.mesh.clone();
            for p in node.rng.sample(&mesh, len - d) {
                self.prune(n, p);
            }
        }
    }

    pub(crate) fn graft(&mut self, a: u32, b: u32) {
        for (x, y) in [(a, b), (b, a)] {
            let m = &mut self.nodes[x as usize].mesh;
            if !m.contains(&y) {
                m.push(y);
            }
        }
        self.traffic[a as usize].sent_bytes += CONTROL_BYTES;
        self.counters.control_bytes += CONTROL_BYTES;
    }

    fn prune(&mut self, a: u32, b: u32) {
        self.nodes[a as usize].mesh.retain(|&p| p != b);
        self.nodes[b as usize].mesh.retain(|&p| p != a);
        self.traffic[a as usize].sent_bytes += CONTROL_BYTES;
        self.counters.control_bytes += CONTROL_BYTES;
    }

    fn lazy_gossip(&mut self, n: u32) {
        let hist = self.sc.gossip.history_gossip.max(1);
        let d_lazy = self.sc.gossip.d_lazy;
        let live = self.live_peers(n);
        let node = &mut self.nodes[n as usize];
        // A new window opens; the last `hist` closed ones are advertised, newest first.
        let closed = node.window;
        node.window += 1;
        let oldest = closed.saturating_sub(hist as u32 - 1);
        while node.mcache.front().is_some_and(|&(w, _)| w < oldest) {
            node.mcache.pop_front();
        }
        let mut ids: Vec<u32> = Vec::new();
        for w in (oldest..=closed).rev() {
            let in_window = node.mcache.iter().filter(|e| e.0 == w).map(|e| e.1);
            ids.extend(in_window.take(MAX_IHAVE - ids.len()));
        }
        if ids.is_empty() || d_lazy == 0 {
            return;
        }
        let cand: Vec<u32> = live
            .into_iter()
            .filter(|p| !node.mesh.contains(p))
            .collect();
        let ids: std::rc::Rc<[u32]> = ids.into();
        for p in node.rng.sample(&cand, d_lazy) {
            self.send(n, p, Wire::IHave(ids.clone()));
        }
    }
}
