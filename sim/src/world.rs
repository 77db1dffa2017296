//! The discrete-event engine: virtual time, one queue, the nodes and the wire.
//!
//! Time is in simulated microseconds. Every future happening (a delivery, a heartbeat, a
//! scheduled action) is an [`Entry`] in one `BinaryHeap`, ordered by `(time, sequence number)`
//! so two entries at the same instant run in the order they were scheduled (FIFO tie-break, as
//! iroh-gossip's simulator does). Nothing here reads a clock or iterates a hash map, so a run
//! is a function of the scenario and the seed.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use ate_protocol::{ChainId, EventId, Params, PeerId, Replica, SharedEnvelope, SyncMsg};

use crate::memo::{FastMap, FastSet, MemoCheck};
use crate::queue::{Entry, Queue};
use crate::rng::Rng;
use crate::scenario::Scenario;

/// Simulated microseconds.
pub(crate) type Micros = u64;

/// What the simulator knows about a message it injected (by construction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A valid event with effect (honest writes, grants, equivocations).
    Valid,
    /// A valid event by a revoked writer on a branch blind to the revocation: no effect.
    Blind,
    /// Invalid by construction: no honest node may ever store it.
    Invalid,
    /// Bytes that do not decode (no event id at all).
    Junk,
    /// A corrupted copy (bad signature) of a valid event: same event id, so the same gossip
    /// message id as the genuine event.
    Shadow,
}

/// One message of the global table: events are stored once and shared by all nodes.
#[derive(Debug)]
pub(crate) struct Msg {
    pub(crate) id: EventId,
    /// The envelope, decoded once for all the replicas it is handed to.
    pub(crate) env: SharedEnvelope,
    /// Its length in bytes.
    pub(crate) len: u32,
    pub(crate) created: Micros,
    pub(crate) class: Class,
    /// The gossip message id (DESIGN §5: the event id), as the index of the first message
    /// registered with this event id; the seen cache and IHAVE work on it.
    pub(crate) gid: u32,
    /// An honest workload put (what the put figures of the report are about).
    pub(crate) put: bool,
}

/// What travels on a link.
#[derive(Debug)]
pub(crate) enum Wire {
    /// A gossip message (index into the message table).
    Gossip(u32),
    /// Lazy gossip: "I have these" (one list shared by the peers it goes to).
    IHave(Rc<[u32]>),
    /// "Send me these".
    IWant(Box<[u32]>),
    /// A direct sync message of the replica.
    Sync(Box<SyncMsg>),
}

/// A scheduled happening.
#[derive(Debug)]
pub(crate) enum Ev {
    /// A message arrives at `to`.
    Deliver {
        to: u32,
        from: u32,
        wire: Wire,
    },
    /// `to` has spent the CPU a message costs and handles it (only with `node.cpu_per_msg_us`).
    Received {
        to: u32,
        from: u32,
        wire: Wire,
    },
    /// A node's validation batch has lingered long enough (only with `node.linger_ms`).
    Flush {
        node: u32,
        epoch: u32,
    },
    /// A node has spent the CPU a batch costs; the replica judges it.
    Validate {
        node: u32,
        epoch: u32,
        batch: Box<[(u32, u32)]>,
    },
    /// The fairly shared host may have finished tasks (stale unless `generation` is the
    /// host's current one).
    HostCheck {
        generation: u64,
    },
    Heartbeat(u32),
    Action(u32),
    Sample,
}

/// Whether a node takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Up,
    /// Crashed; may restart.
    Down,
    /// Left for good.
    Left,
    /// A late joiner that has not joined yet.
    NotJoined,
}

/// A growable bit set (one per message, over node indices: see [`World::seen`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    /// Room for `n` bits up front.
    pub(crate) fn with_len(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    pub(crate) fn clear(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w &= !(1 << (i % 64));
        }
    }
    pub(crate) fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Sets bit `i`; returns whether it was already set.
    pub(crate) fn set(&mut self, i: u32) -> bool {
        let w = i as usize / 64;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let was = self.0[w] & (1 << (i % 64)) != 0;
        self.0[w] |= 1 << (i % 64);
        was
    }
}

/// Per-node traffic counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Traffic {
    pub(crate) sent_msgs: u64,
    pub(crate) sent_bytes: u64,
    pub(crate) recv_msgs: u64,
    pub(crate) recv_bytes: u64,
}

/// What every message touches at both ends of a link, kept dense and apart from [`Node`]:
/// with ten thousand nodes, reading a whole node per delivery (most are duplicates that stop
/// at the seen cache) was a cache miss each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub(crate) status: Status,
    /// Ignores every input (a revoked writer on its blind branch).
    pub(crate) deaf: bool,
    pub(crate) region: u8,
    /// Partition side: nodes talk only within their group.
    pub(crate) group: u32,
}

/// One simulated node: a real replica plus the gossip layer the node gets from libp2p.
/// (Its link state, traffic counters and seen cache live in dense tables of the [`World`].)
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) replica: Option<Box<Replica>>,
    /// Runs attacks and is excluded from honest checks.
    pub(crate) byzantine: bool,
    /// Answers every new gossip message with a corrupted copy (the shadow attack), this many
    /// more times.
    pub(crate) shadows_left: usize,
    pub(crate) peers: Vec<u32>,
    pub(crate) mesh: Vec<u32>,
    /// Gossip messages waiting for the replica's verdict (delayed Accept): (message, sender,
    /// the node's heartbeat count when held). gossipsub forgets an unjudged message after
    /// [`crate::gossip::HISTORY_LENGTH`] heartbeats, and so does the node (`node/src/event_loop/waiting.rs`).
    pub(crate) held: Vec<(u32, u32, u64)>,
    /// (heartbeat window, message) of what this node published or forwarded recently, for
    /// IHAVE (gossipsub's mcache); windows older than `history_gossip` are dropped.
    pub(crate) mcache: std::collections::VecDeque<(u32, u32)>,
    /// The current heartbeat window.
    pub(crate) window: u32,
    /// The redo log: indices of persisted events, in order (kept only when a scenario
    /// restarts nodes from their logs).
    pub(crate) log: Vec<u32>,
    /// Restart from the log after a crash.
    pub(crate) restart_with_log: bool,
    pub(crate) uplink_free: Micros,
    /// When this node's CPU is next free (with `node.cpu_*`).
    pub(crate) cpu_free: Micros,
    /// Gossip (message, sender) waiting for the next validation (with `node.linger_ms`).
    pub(crate) batch: Vec<(u32, u32)>,
    /// (gossip id, peer): copies that arrived while the message waited in `batch`; gossipsub
    /// does not forward it back to those peers.
    pub(crate) sent_copy: Vec<(u32, u32)>,
    /// Incremented when the node goes down, so work scheduled before is dropped.
    pub(crate) epoch: u32,
    pub(crate) rng: Rng,
    pub(crate) heartbeats: u64,
}

/// Counters of the whole run (all deterministic).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) deliveries: u64,
    pub(crate) gossip_deliveries: u64,
    pub(crate) gossip_duplicates: u64,
    pub(crate) replica_duplicates: u64,
    pub(crate) dropped_no_link: u64,
    pub(crate) rejected: BTreeMap<&'static str, u64>,
    pub(crate) overloaded: u64,
    pub(crate) local_rejected: u64,
    pub(crate) invalid_accepted: u64,
    pub(crate) control_bytes: u64,
}

/// The simulation.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) sc: Scenario,
    pub(crate) seed: u64,
    pub(crate) now: Micros,
    pub(crate) queue: Queue,
    next_seq: u64,
    pub(crate) rng: Rng,
    pub(crate) nodes: Vec<Node>,
    /// Per node: link state (see [`Link`]).
    pub(crate) link: Vec<Link>,
    /// Per node: traffic counters.
    pub(crate) traffic: Vec<Traffic>,
    /// Per gossip id: the nodes whose gossipsub seen cache holds it. Kept by message rather
    /// than by node because the messages in flight at any moment are few, so their bit sets
    /// stay in cache while deliveries hop between random nodes.
    pub(crate) seen: Vec<Bits>,
    /// Per message: the nodes whose acceptance was counted for latency (survives restarts).
    pub(crate) recorded: Vec<Bits>,
    /// Whether nodes keep redo logs (some fault restarts a node from its log).
    pub(crate) keep_logs: bool,
    pub(crate) msgs: Vec<Msg>,
    pub(crate) by_id: FastMap<EventId, u32>,
    pub(crate) invalid_ids: FastSet<EventId>,
    pub(crate) genesis: Vec<u8>,
    /// The chain and its params (what messages are decoded for).
    pub(crate) chain: ChainId,
    pub(crate) params: Params,
    pub(crate) checker: Arc<MemoCheck>,
    pub(crate) counters: Counters,
    /// Per-delivery latency, µs (node accepted the event − event created).
    pub(crate) latencies: Vec<u32>,
    /// Per event: the latest acceptance by any node.
    pub(crate) last_accept: Vec<Micros>,
    /// Per event: the first acceptance by a node other than its writer (0: none yet).
    pub(crate) first_accept: Vec<Micros>,
    /// Workload puts only, writers' own acceptances left out: write → visible on another
    /// node: (message index of the put, µs), what `ate-calibrate` measures on real nodes.
    pub(crate) put_latencies: Vec<(u32, u32)>,
    pub(crate) violations: Vec<String>,
    /// (time, mean bytes sent per node, max bytes sent by one node).
    pub(crate) samples: Vec<(Micros, f64, u64)>,
    pub(crate) loss: f64,
    pub(crate) faults_on: bool,
    pub(crate) actions: Vec<(Micros, crate::actors::Action)>,
    pub(crate) actors: crate::actors::Actors,
    /// Deliveries closer together than this (the shortest possible network delay) cannot
    /// cause each other, so their replica calls may run in parallel (see `batch`); 0: off.
    pub(crate) lookahead_us: u64,
    /// Threads for those replica calls.
    pub(crate) threads: usize,
    /// While a batch is gathered: the replica calls it defers.
    pub(crate) deferred: Option<Vec<crate::batch::Job>>,
    /// Worker threads for batches (started on first use).
    pub(crate) pool: Option<crate::batch::Pool>,
    /// The replicas' pending bound (a per-step invariant).
    pub(crate) max_pending: usize,
    /// When each core of the shared host is next free (`node.host_cores`; empty: no host).
    pub(crate) cores: Vec<Micros>,
    /// The host, when its cores are shared fairly (`node.host_sharing = "fair"`).
    pub(crate) fair: Option<crate::host::FairHost>,
}

impl World {
    pub(crate) fn schedule(&mut self, at: Micros, ev: Ev) {
        self.next_seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.next_seq,
            ev,
        });
    }

    /// Runs every entry due up to `until`; returns false when the queue is empty.
    pub(crate) fn run_until(&mut self, until: Micros) -> bool {
        while let Some(at) = self.queue.peek_at() {
            if at > until {
                self.now = until;
                return true;
            }
            if self.lookahead_us > 0 && self.next_is_batchable() {
                self.run_batch(until);
                continue;
            }
            let Some(e) = self.queue.pop() else { break };
            self.now = e.at;
            self.step(e.ev);
        }
        self.now = until;
        false
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, wire } => self.deliver(to, from, wire),
            Ev::Received { to, from, wire } => {
                if self.link[to as usize].status == Status::Up {
                    self.receive(to, from, wire);
                } else {
                    self.counters.dropped_no_link += 1;
                }
            }
            Ev::Flush { node, epoch } => self.flush(node, epoch),
            Ev::Validate { node, epoch, batch } => self.validate(node, epoch, &batch),
            Ev::HostCheck { generation } => self.host_check(generation),
            Ev::Heartbeat(n) => self.heartbeat(n),
            Ev::Action(i) => self.act(i),
            Ev::Sample => self.sample(),
        }
    }

    fn sample(&mut self) {
        let total: u64 = self.traffic.iter().map(|t| t.sent_bytes).sum();
        let max = self.traffic.iter().map(|t| t.sent_bytes).max().unwrap_or(0);
        let mean = total as f64 / self.nodes.len().max(1) as f64;
        self.samples.push((self.now, mean, max));
        let at = self.now + 100_000;
        self.schedule(at, Ev::Sample);
    }

    pub(crate) fn linked(&self, a: u32, b: u32) -> bool {
        let (x, y) = (&self.link[a as usize], &self.link[b as usize]);
        x.status == Status::Up && y.status == Status::Up && x.group == y.group
    }

    pub(crate) fn is_up(&self, n: u32) -> bool {
        self.link[n as usize].status == Status::Up
    }

    /// Puts a message on the wire: uplink serialization, latency with jitter, loss as
    /// retransmission delay (the transports are TCP or QUIC: a lost packet arrives late).
    pub(crate) fn send(&mut self, from: u32, to: u32, wire: Wire) {
        if !self.linked(from, to) {
            self.counters.dropped_no_link += 1;
            return;
        }
        let size = self.wire_size(&wire) as u64;
        let net = &self.sc.network;
        let rto_us = (net.rto_ms * 1000.0) as u64;
        let tx_us = (size as f64 * 8.0 / net.uplink_mbps) as u64;
        let (ra, rb) = (
            self.link[from as usize].region as usize,
            self.link[to as usize].region as usize,
        );
        let one_way_us = net.rtt_ms[ra][rb] * 500.0;
        let jitter_us = net.jitter_ms * 1000.0;
        let loss = self.loss;
        let node = &mut self.nodes[from as usize];
        let start = node.uplink_free.max(self.now);
        node.uplink_free = start + tx_us;
        let j = (node.rng.unit() * 2.0 - 1.0) * jitter_us;
        let mut lat = (one_way_us + j).max(0.0) as u64;
        let mut tries = 0;
        while tries < 6 && node.rng.chance(loss) {
            lat += rto_us << tries;
            tries += 1;
        }
        let t = &mut self.traffic[from as usize];
        t.sent_msgs += 1;
        t.sent_bytes += size;
        let at = start + tx_us + lat;
        self.schedule(at, Ev::Deliver { to, from, wire });
    }

    /// Bytes on the wire (framing approximated by a small constant; sync messages exactly as
    /// postcard encodes them, see [`crate::size::sync_size`]).
    pub(crate) fn wire_size(&self, wire: &Wire) -> usize {
        const FRAME: usize = 24;
        match wire {
            Wire::Gossip(i) => FRAME + 40 + self.msgs[*i as usize].len as usize,
            Wire::IHave(ids) => FRAME + 8 + 32 * ids.len(),
            Wire::IWant(ids) => FRAME + 8 + 32 * ids.len(),
            Wire::Sync(m) => FRAME + crate::size::sync_size(m),
        }
    }

    pub(crate) fn deliver(&mut self, to: u32, from: u32, wire: Wire) {
        if !self.linked(from, to) {
            self.counters.dropped_no_link += 1;
            return;
        }
        let size = self.wire_size(&wire) as u64;
        self.counters.deliveries += 1;
        let t = &mut self.traffic[to as usize];
        t.recv_msgs += 1;
        t.recv_bytes += size;
        if self.link[to as usize].deaf {
            return;
        }
        let cost = self.sc.node.cpu_per_msg_us;
        if cost > 0.0 {
            self.cpu(to, cost as u64, Some(Ev::Received { to, from, wire }));
            return;
        }
        self.receive(to, from, wire);
    }

    /// Node `n` spends CPU (`mean_us` on average), then `then` happens. First come first
    /// served: after what the node is already doing and, on a shared host, on the first core
    /// free. On a fairly shared host: alongside every other task (see `host`).
    pub(crate) fn cpu(&mut self, n: u32, mean_us: u64, then: Option<Ev>) {
        let node = &mut self.nodes[n as usize];
        let cost_us = if self.sc.node.cpu_exponential {
            // Exponential with that mean (inverse transform; 1 - u is in (0, 1]).
            (-(mean_us as f64) * (1.0 - node.rng.unit()).ln()).round() as u64
        } else {
            mean_us
        };
        if let Some(host) = self.fair.as_mut() {
            let at = host.submit(self.now, cost_us, then);
            let generation = host.generation;
            self.schedule(at, Ev::HostCheck { generation });
            return;
        }
        let mut start = self.now.max(node.cpu_free);
        let core = (0..self.cores.len()).min_by_key(|&k| (self.cores[k], k));
        if let Some(k) = core {
            start = start.max(self.cores[k]);
            self.cores[k] = start + cost_us;
        }
        node.cpu_free = start + cost_us;
        if let Some(ev) = then {
            self.schedule(start + cost_us, ev);
        }
    }

    /// Carries on with the tasks the fairly shared host has finished.
    fn host_check(&mut self, generation: u64) {
        let Some(host) = self.fair.as_mut() else {
            return;
        };
        if host.generation != generation {
            return;
        }
        let (done, next) = host.finish(self.now);
        if let Some(at) = next {
            let generation = host.generation;
            self.schedule(at, Ev::HostCheck { generation });
        }
        for ev in done {
            self.step(ev);
        }
    }

    /// Handles a message that has arrived (and, with a CPU model, been paid for).
    fn receive(&mut self, to: u32, from: u32, wire: Wire) {
        match wire {
            Wire::Gossip(i) => self.on_gossip(to, from, i),
            Wire::IHave(ids) => self.on_ihave(to, from, &ids),
            Wire::IWant(ids) => {
                for i in ids.iter() {
                    self.send(to, from, Wire::Gossip(*i));
                }
            }
            Wire::Sync(m) => {
                let input = ate_protocol::Input::Sync {
                    from: PeerId(u64::from(from)),
                    msg: *m,
                };
                self.feed(to, input, None);
            }
        }
    }

    /// Registers a message in the global table (or finds it) and returns its index.
    pub(crate) fn register(&mut self, id: EventId, bytes: Vec<u8>, class: Class) -> u32 {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let i = self.msgs.len() as u32;
        if class == Class::Invalid {
            self.invalid_ids.insert(id);
        }
        self.msgs.push(Msg {
            id,
            len: bytes.len() as u32,
            env: SharedEnvelope::decode(self.chain, self.params, bytes),
            created: self.now,
            class,
            gid: i,
            put: false,
        });
        self.by_id.insert(id, i);
        self.note_msg();
        i
    }

    /// Per-message tables grow with the message table.
    fn note_msg(&mut self) {
        self.last_accept.push(0);
        self.first_accept.push(0);
        self.seen.push(Bits::with_len(self.nodes.len()));
        self.recorded.push(Bits::with_len(self.nodes.len()));
    }

    /// Registers a corrupted copy of message `of`: its own bytes, the same gossip id.
    pub(crate) fn register_shadow(&mut self, of: u32, bytes: Vec<u8>) -> u32 {
        let i = self.msgs.len() as u32;
        let m = &self.msgs[of as usize];
        let (id, gid) = (m.id, m.gid);
        self.msgs.push(Msg {
            id,
            len: bytes.len() as u32,
            env: SharedEnvelope::decode(self.chain, self.params, bytes),
            created: self.now,
            class: Class::Shadow,
            gid,
            put: false,
        });
        self.note_msg();
        i
    }

    /// A fresh replica for node `n` sharing the memoizing checker.
    pub(crate) fn new_replica(&mut self, n: u32) -> Option<Box<Replica>> {
        let config = ate_protocol::Config {
            hash_seed: Rng::derive(self.seed, 1_000_000 + u64::from(n)).next_u64(),
            ..Default::default()
        };
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        match Replica::with_checker(&self.genesis, config, checker) {
            Ok(r) => Some(Box::new(r)),
            Err(e) => {
                self.violations
                    .push(format!("node {n}: genesis refused: {e}"));
                None
            }
        }
    }

    /// Deterministic (platform-independent) estimate of the replicas' heap: the protocol's own
    /// accounting of its structures plus body bytes.
    pub(crate) fn replica_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .map(|r| r.overhead_bytes() as u64 + r.body_bytes())
            .sum()
    }

    pub(crate) fn new_world(sc: Scenario, seed: u64) -> World {
        World {
            sc,
            seed,
            now: 0,
            queue: Queue::default(),
            next_seq: 0,
            rng: Rng::derive(seed, 0),
            nodes: Vec::new(),
            link: Vec::new(),
            traffic: Vec::new(),
            seen: Vec::new(),
            recorded: Vec::new(),
            keep_logs: false,
            msgs: Vec::new(),
            by_id: FastMap::default(),
            invalid_ids: FastSet::default(),
            genesis: Vec::new(),
            chain: ChainId([0; 32]),
            params: Params::default(),
            checker: Arc::new(MemoCheck::default()),
            counters: Counters::default(),
            latencies: Vec::new(),
            last_accept: Vec::new(),
            first_accept: Vec::new(),
            put_latencies: Vec::new(),
            violations: Vec::new(),
            samples: Vec::new(),
            loss: 0.0,
            faults_on: true,
            actions: Vec::new(),
            actors: crate::actors::Actors::default(),
            cores: Vec::new(),
            fair: None,
            max_pending: ate_protocol::Config::default().max_pending_events,
            lookahead_us: 0,
            threads: 1,
            deferred: None,
            pool: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_and_get() {
        let mut b = Bits::default();
        assert!(!b.get(130));
        assert!(!b.set(130));
        assert!(b.set(130));
        assert!(b.get(130) && !b.get(129));
    }
}
