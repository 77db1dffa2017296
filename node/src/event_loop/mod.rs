//! The node's event loop: swarm events and client commands in, replica inputs and network
//! actions out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ate_protocol::replica::{Input, Output, SyncMsg, Verdict};
use ate_protocol::{ChainId, Event, Params, PeerId, Replica};
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, mdns};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent, build_swarm, topic_for};
use crate::journal::{Done, Journal};
use crate::metrics::Metrics;
use crate::node::{ChainStatus, Command, NodeConfig, NodeError, NodeStatus, Subscribers};
use crate::preverify::{Prechecked, Verdicts};
use crate::wire::{SyncRequest, SyncResponse};
use ate_protocol::EventId;
use ate_protocol::replica::{SnapshotInfo, ViewChange};

/// Gossiped events handled per replica call (signatures are batch-verified per call).
const GOSSIP_BATCH: usize = 256;
/// How long a gossip message may wait for others to fill its validation batch.
const GOSSIP_LINGER: Duration = Duration::from_millis(3);
/// Publishes kept for retry when every peer queue is full.
const MAX_RETRY: usize = 100_000;

struct Chain {
    replica: Replica,
    topic: IdentTopic,
    /// Peers subscribed to the topic.
    peers: BTreeSet<libp2p::PeerId>,
    /// Events in the replica when the last snapshot was taken.
    snapshot_at: usize,
    /// A snapshot is being written.
    snapshot_busy: Arc<std::sync::atomic::AtomicBool>,
}

/// A batch on its way through signature checking (on a blocking thread) to the replica.
/// Batches reach the replica in the order they were made, whatever order the checks end in.
struct Job {
    seq: u64,
    chain: ChainId,
    work: Work,
}

enum Work {
    /// Gossip messages of one chain, flattened into one batch.
    Gossip {
        events: Vec<Vec<u8>>,
        /// Event ids → the message each came in (front first).
        waiting: HashMap<ate_protocol::EventId, VecDeque<usize>>,
        tallies: Vec<Tally>,
        tags: Vec<(MessageId, libp2p::PeerId)>,
    },
    /// Events a peer streamed or sent on request (`SyncMsg::Events`), fed as that message
    /// once checked (so the replica continues the stream or its fetches).
    Sync { from: PeerId, events: Vec<Vec<u8>> },
    /// A local write, answered once the replica has decided.
    Local {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Vec<Verdict>, NodeError>>,
    },
}

/// Something that may happen only once the events before it are durable (DESIGN §7).
enum Action {
    Publish(ChainId, Vec<u8>),
    Change(ChainId, ViewChange),
    Validate(MessageId, libp2p::PeerId, MessageAcceptance),
    Reply(
        oneshot::Sender<Result<Vec<Verdict>, NodeError>>,
        Result<Vec<Verdict>, NodeError>,
    ),
    /// Write a snapshot file (only once every event it covers is durable in the log).
    Snapshot(Box<SnapshotJob>),
    /// Answer a compaction once the rewritten log is durable.
    Compacted(
        ChainId,
        oneshot::Sender<Result<crate::node::CompactReport, NodeError>>,
        crate::node::CompactReport,
    ),
}

struct SnapshotJob {
    chain: ChainId,
    bytes: Vec<u8>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    reply: Option<oneshot::Sender<Result<(), NodeError>>>,
}

/// A job whose signatures have been checked.
struct Checked {
    job: Job,
    verdicts: Verdicts,
}

/// Most signature-check jobs on blocking threads at once, per node.
fn max_check_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// A gossip message (a bundle of envelopes) waiting to be validated in the next batch.
struct Gossiped {
    chain: ChainId,
    source: libp2p::PeerId,
    msg_id: MessageId,
    events: Vec<Vec<u8>>,
}

/// What the replica said about the events of one gossip message.
#[derive(Default, Clone, Copy)]
struct Tally {
    valid: u32,
    invalid: u32,
    /// Events waiting for a dependency (the message is held until they are decided).
    waiting: u32,
    /// Events the replica had no room to hold.
    dropped: u32,
    /// Events that got no verdict with an id (they did not decode far enough to have one).
    undecided: u32,
}

impl Tally {
    /// Forward a bundle only if every event in it is valid or already known; one invalid
    /// event penalises the sender (an honest peer validates before it forwards).
    fn acceptance(&self) -> MessageAcceptance {
        if self.invalid > 0 || self.undecided > 0 {
            MessageAcceptance::Reject
        } else if self.waiting > 0 || self.dropped > 0 || self.valid == 0 {
            MessageAcceptance::Ignore
        } else {
            MessageAcceptance::Accept
        }
    }
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<Metrics>,
    chains: BTreeMap<ChainId, Chain>,
    topics: HashMap<TopicHash, ChainId>,
    /// Chains asked for by id whose genesis has not arrived.
    wanted: BTreeSet<ChainId>,
    peers: PeerTable,
    subscribers: Subscribers,
    gossip: Vec<Gossiped>,
    /// Events in `gossip`.
    gossip_events: usize,
    /// Addresses known to be a connected peer's (the address we dialled, the listen
    /// addresses it reported by identify): `--join` re-resolves its names every interval, and
    /// dialling a peer it is connected to again would only open one more connection.
    peer_addrs: HashMap<Multiaddr, libp2p::PeerId>,
    /// How often anti-entropy runs (`NodeConfig::anti_entropy`).
    anti_entropy: Duration,
    /// Validated gossip messages whose events wait for a dependency.
    waiting_gossip: waiting::WaitingGossip,
    retry: VecDeque<(ChainId, Vec<u8>)>,
    /// The checker every replica uses; verdicts are installed around each call.
    checker: Arc<Prechecked>,
    checked_tx: mpsc::UnboundedSender<Checked>,
    checked_rx: mpsc::UnboundedReceiver<Checked>,
    /// Jobs not yet sent to a blocking thread (at most `max_check_jobs` are out at once).
    to_check: VecDeque<Job>,
    checking: usize,
    /// Checked jobs waiting for an earlier one.
    checked: BTreeMap<u64, Checked>,
    next_job: u64,
    next_feed: u64,
    /// The redo logs, when the node has a data directory.
    journal: Option<Journal>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// The newest ticket issued, and the newest known durable (tickets complete in order).
    last_ticket: u64,
    durable_ticket: u64,
    /// Actions waiting for their ticket.
    held: VecDeque<(u64, Action)>,
    /// Take a snapshot of a chain after this many new events (0: only when asked).
    snapshot_every: usize,
    /// Chains whose log failed: they take no more writes until the node restarts.
    broken: BTreeMap<ChainId, String>,
    replica_config: ate_protocol::Config,
    started: Instant,
    /// Requests in flight, for failure accounting.
    in_flight: HashMap<OutboundRequestId, ChainId>,
    /// Peers found by mDNS, their addresses and when we last dialled them: dials can fail
    /// (simultaneous dials, a listener not up yet) and mDNS reports a peer only once.
    lan_peers: HashMap<libp2p::PeerId, (Vec<Multiaddr>, Instant)>,
    /// Batches of synced events queued for or in signature checks, not yet fed.
    sync_jobs: usize,
    /// Streams whose next batch we will ask for (`More`) once `sync_jobs` is low again.
    more_due: VecDeque<(libp2p::PeerId, ChainId)>,
    /// Catch-up progress per chain, for log lines.
    progress: BTreeMap<ChainId, Progress>,
    last_progress_log: Instant,
    /// State of the generator that picks a random peer for anti-entropy.
    rng: u64,
    /// When each peer last sent us synced events for a chain: no periodic session with a
    /// peer that is catching us up (it would report the events still in flight as missing).
    last_sync_in: HashMap<(ChainId, libp2p::PeerId), Instant>,
}

/// Synced events a chain received, as of its last progress line.
#[derive(Default)]
struct Progress {
    received: u64,
    logged: u64,
}

/// Checked-but-not-fed batches of synced events at which we stop asking for more: the
/// sender's next batch crosses the network while these are checked, and no more pile up.
const MAX_SYNC_JOBS: usize = 3;

/// Bytes from the OS RNG (the node's secrets: reconciliation nonces, peer choice).
fn os_random() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    Ok(seed)
}

/// libp2p peer ids ↔ the replicas' small peer numbers.
#[derive(Default)]
struct PeerTable {
    by_libp2p: HashMap<libp2p::PeerId, u64>,
    by_num: HashMap<u64, libp2p::PeerId>,
}

impl PeerTable {
    fn num(&mut self, p: &libp2p::PeerId) -> PeerId {
        let next = self.by_libp2p.len() as u64 + 1;
        let n = *self.by_libp2p.entry(*p).or_insert(next);
        self.by_num.insert(n, *p);
        PeerId(n)
    }

    fn libp2p(&self, p: PeerId) -> Option<libp2p::PeerId> {
        self.by_num.get(&p.0).copied()
    }
}

mod checks;
mod network;
mod storage;
mod waiting;

impl EventLoop {
    pub(crate) fn new(
        config: &NodeConfig,
        commands: mpsc::Receiver<Command>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut swarm = build_swarm(config)?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        }
        let (checked_tx, checked_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let seed = os_random().map_err(|e| anyhow::anyhow!("cannot read /dev/urandom: {e}"))?;
        let mut replica_config = config.replica.clone();
        // Reconciliation nonces must be unpredictable to peers: derive them from a secret.
        replica_config.recon_seed = seed;
        let pick = blake3::derive_key("ate node v1 anti-entropy peer choice", &seed);
        let mut rng = [0u8; 8];
        rng.copy_from_slice(&pick[..8]);
        let rng = u64::from_le_bytes(rng) | 1;
        let journal = match &config.data {
            Some(dir) => Some(Journal::start(
                dir,
                config.storage.clone(),
                config.fsync,
                config.repair,
                done_tx,
            )?),
            None => None,
        };
        Ok(EventLoop {
            swarm,
            commands,
            metrics,
            chains: BTreeMap::new(),
            topics: HashMap::new(),
            wanted: BTreeSet::new(),
            peers: PeerTable::default(),
            subscribers: Subscribers::default(),
            gossip: Vec::new(),
            gossip_events: 0,
            waiting_gossip: Default::default(),
            peer_addrs: HashMap::new(),
            anti_entropy: config.anti_entropy.max(Duration::from_millis(100)),
            retry: VecDeque::new(),
            checker: Arc::new(Prechecked::default()),
            checked_tx,
            checked_rx,
            to_check: VecDeque::new(),
            checking: 0,
            checked: BTreeMap::new(),
            next_job: 0,
            next_feed: 0,
            journal,
            done_rx,
            last_ticket: 0,
            durable_ticket: 0,
            held: VecDeque::new(),
            broken: BTreeMap::new(),
            snapshot_every: config.snapshot_every,
            replica_config,
            started: Instant::now(),
            in_flight: HashMap::new(),
            lan_peers: HashMap::new(),
            sync_jobs: 0,
            more_due: VecDeque::new(),
            progress: BTreeMap::new(),
            last_progress_log: Instant::now(),
            rng,
            last_sync_in: HashMap::new(),
        })
    }

    pub(crate) fn peer_id(&self) -> libp2p::PeerId {
        *self.swarm.local_peer_id()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut anti_entropy = tokio::time::interval(self.anti_entropy);
        // Gossip is validated in batches (one batch signature check): a batch is flushed when
        // it is full or GOSSIP_LINGER after its first message, whichever comes first.
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            let linger = async move {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    self.on_swarm_event(event);
                    while self.gossip_events < GOSSIP_BATCH {
                        match self.swarm.select_next_some().now_or_never() {
                            Some(event) => self.on_swarm_event(event),
                            None => break,
                        }
                    }
                    if self.gossip_events >= GOSSIP_BATCH {
                        self.flush_gossip();
                        flush_at = None;
                    } else if !self.gossip.is_empty() && flush_at.is_none() {
                        flush_at = Some(tokio::time::Instant::now() + GOSSIP_LINGER);
                    }
                }
                _ = linger => {
                    self.flush_gossip();
                    flush_at = None;
                }
                Some(done) = self.checked_rx.recv() => self.on_checked(done),
                Some(done) = self.done_rx.recv() => self.on_durable(done),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => return,
                },
                _ = tick.tick() => self.on_tick(),
                _ = anti_entropy.tick() => self.on_anti_entropy(),
            }
        }
    }

    // ---- commands ----

    fn on_command(&mut self, c: Command) {
        match c {
            Command::CreateChain { genesis, reply } => {
                let _ = reply.send(self.add_chain(&genesis));
            }
            Command::Follow { chain, reply } => {
                self.follow(chain);
                let _ = reply.send(());
            }
            Command::Submit {
                chain,
                events,
                reply,
            } => self.submit(chain, events, reply),
            Command::Read { chain, f } => f(self.chains.get(&chain).map(|c| &c.replica)),
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Subscribe { chain, reply } => {
                let _ = reply.send(self.subscribers.subscribe(chain));
            }
            Command::Dial { addrs } => self.dial(addrs),
            Command::Backup { chain, reply } => self.backup(chain, reply),
            Command::Checkpoint { reply } => self.checkpoint(reply),
            Command::Compact { chain, reply } => self.compact(chain, reply),
        }
    }

    fn add_chain(&mut self, genesis: &[u8]) -> Result<ChainId, NodeError> {
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        let replica = Replica::with_checker(genesis, self.replica_config.clone(), checker)
            .map_err(|e| NodeError::BadGenesis(e.to_string()))?;
        let id = replica.chain();
        if self.chains.contains_key(&id) {
            return Ok(id);
        }
        let replica = match self.journal.is_some() {
            true => self
                .open_log(id, Some(genesis), Some(replica))
                .map_err(|e| NodeError::Storage(id, e))?,
            false => replica,
        };
        Ok(self.install_chain(replica))
    }

    fn install_chain(&mut self, replica: Replica) -> ChainId {
        let id = replica.chain();
        let topic = topic_for(&id);
        // Raise gossipsub's size limit to the chain's own event limit.
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::warn!(chain = %id.short(), "cannot subscribe to gossip topic: {e:?}");
        }
        self.topics.insert(topic.hash(), id);
        self.wanted.remove(&id);
        tracing::info!(chain = %id.short(), name = replica.name(), "following chain");
        // Peers that subscribed before the chain was installed (a chain followed by id waits
        // for its genesis, and their `Subscribed` came meanwhile): anti-entropy picks from
        // these, so none may be missing.
        let hash = topic.hash();
        let peers: BTreeSet<libp2p::PeerId> = (self.swarm.behaviour().gossipsub.all_peers())
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(p, _)| *p)
            .collect();
        self.chains.insert(
            id,
            Chain {
                replica,
                topic,
                peers,
                snapshot_at: 0,
                snapshot_busy: Arc::default(),
            },
        );
        // Catch up from everyone already connected who follows it.
        let peers: Vec<libp2p::PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let n = self.peers.num(&p);
            self.feed(id, Input::PeerUp(n), None);
        }
        id
    }

    fn follow(&mut self, chain: ChainId) {
        if self.chains.contains_key(&chain) {
            return;
        }
        self.wanted.insert(chain);
        let topic = topic_for(&chain);
        let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&topic);
        self.ask_for_genesis(chain);
    }

    fn ask_for_genesis(&mut self, chain: ChainId) {
        let peers: Vec<libp2p::PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let msg = SyncMsg::GetEvents {
                ids: vec![chain.into()],
            };
            self.send_request(p, chain, msg);
        }
    }

    fn submit(
        &mut self,
        chain: ChainId,
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Vec<Verdict>, NodeError>>,
    ) {
        if !self.chains.contains_key(&chain) {
            let _ = reply.send(Err(NodeError::UnknownChain(chain)));
            return;
        }
        if let Some(e) = self.broken.get(&chain) {
            let _ = reply.send(Err(NodeError::Storage(chain, e.clone())));
            return;
        }
        self.enqueue(chain, Work::Local { events, reply });
    }

    fn finish_submit(
        &mut self,
        chain: ChainId,
        events: Vec<Event>,
    ) -> Result<Vec<Verdict>, NodeError> {
        if !self.chains.contains_key(&chain) {
            return Err(NodeError::UnknownChain(chain));
        }
        let ids: Vec<_> = events.iter().map(|e| e.id).collect();
        let outputs = self.feed(chain, Input::LocalBatch(events), None);
        // One verdict per submitted event, matched by id (the first verdict for each id).
        let mut by_id: HashMap<_, VecDeque<Verdict>> = HashMap::new();
        for o in outputs {
            if let Output::Verdict {
                from: None,
                id: Some(id),
                verdict,
            } = o
            {
                by_id.entry(id).or_default().push_back(verdict);
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                by_id
                    .get_mut(id)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(Verdict::Duplicate)
            })
            .collect())
    }

    fn status(&mut self) -> NodeStatus {
        let chains = self
            .chains
            .values()
            .map(|c| {
                let r = &c.replica;
                ChainStatus {
                    id: r.chain(),
                    name: r.name().to_string(),
                    events: r.len(),
                    heads: r.heads(),
                    digest: r.view().digest_hex(),
                    pending: r.pending_len(),
                    stats: r.stats().clone(),
                    peers: c.peers.len(),
                }
            })
            .collect();
        NodeStatus {
            peer_id: self.peer_id().to_string(),
            listen: self.swarm.listeners().map(|a| a.to_string()).collect(),
            peers: self.swarm.connected_peers().count(),
            connections: self
                .swarm
                .network_info()
                .connection_counters()
                .num_established() as usize,
            chains,
            waiting_for_genesis: self.wanted.iter().copied().collect(),
        }
    }

    fn dial(&mut self, addrs: Vec<Multiaddr>) {
        let own: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        for addr in addrs {
            let connected =
                (self.peer_addrs.get(&addr)).is_some_and(|p| self.swarm.is_connected(p));
            if own.contains(&addr) || connected {
                continue;
            }
            Metrics::add(&self.metrics.dials, 1);
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!("dial {addr} failed: {e}");
            }
        }
    }

    // ---- replica plumbing ----

    /// Feeds one input to a chain's replica and carries out its outputs. Sync messages for
    /// `reply_to` are returned instead of sent (they answer a request). Returns the outputs
    /// the caller may want to inspect (verdicts).
    fn feed(&mut self, chain: ChainId, input: Input, reply_to: Option<PeerId>) -> Vec<Output> {
        let now = self.now_ms();
        let Some(c) = self.chains.get_mut(&chain) else {
            return Vec::new();
        };
        let before = c.replica.sync_stats();
        let outputs = c.replica.handle(now, input);
        self.metrics.add_sync(&before, &c.replica.sync_stats());
        let mut rest = Vec::new();
        let mut to_publish = Vec::new();
        let mut to_persist = Vec::new();
        let mut changes = Vec::new();
        for o in outputs {
            match o {
                Output::Publish(bytes) => to_publish.push(bytes),
                Output::Send { to, msg } if Some(to) == reply_to => {
                    rest.push(Output::Send { to, msg })
                }
                Output::Send { to, msg } => {
                    if let Some(p) = self.peers.libp2p(to) {
                        self.send_request(p, chain, msg);
                    }
                }
                Output::Persist { bytes, .. } => to_persist.push(bytes),
                Output::Changed(change) => changes.push(change),
                v @ Output::Verdict { .. } => rest.push(v),
            }
        }
        if !to_persist.is_empty()
            && let Some(j) = self.journal.as_mut()
        {
            self.last_ticket = j.append(chain, to_persist);
        }
        for bundle in crate::bundle::encode_all(to_publish) {
            self.after_durable(Action::Publish(chain, bundle));
        }
        for change in changes {
            self.after_durable(Action::Change(chain, change));
        }
        // Held gossip messages whose last waiting event was just decided (after the append
        // above: an accepted message is forwarded only once its events are durable).
        for o in &rest {
            if let Output::Verdict {
                id: Some(id),
                verdict,
                ..
            } = o
            {
                for (msg, source, a) in self.waiting_gossip.decided(chain, *id, verdict) {
                    self.after_durable(Action::Validate(msg, source, a));
                }
            }
        }
        rest
    }

    // ---- timers ----

    fn on_tick(&mut self) {
        self.redial_lan_peers();
        for (msg, source, a) in self.waiting_gossip.expire(Instant::now()) {
            self.validate(&msg, &source, a);
        }
        self.log_sync_progress();
        if self.snapshot_every > 0 {
            let due: Vec<ChainId> = self
                .chains
                .iter()
                .filter(|(_, c)| {
                    c.replica.len() >= c.snapshot_at + self.snapshot_every
                        && !c.snapshot_busy.load(std::sync::atomic::Ordering::SeqCst)
                })
                .map(|(id, _)| *id)
                .collect();
            for chain in due {
                self.take_snapshot(chain, None);
            }
        }
        let chains: Vec<ChainId> = self.chains.keys().copied().collect();
        for chain in chains {
            self.feed(chain, Input::Tick, None);
        }
        let n = self.retry.len();
        for _ in 0..n {
            let Some((chain, bytes)) = self.retry.pop_front() else {
                break;
            };
            self.publish(chain, bytes);
        }
        let wanted: Vec<ChainId> = self.wanted.iter().copied().collect();
        for chain in wanted {
            self.ask_for_genesis(chain);
        }
    }

    /// Dials LAN peers we know of but are not connected to, at most every 2 s each.
    fn redial_lan_peers(&mut self) {
        let now = Instant::now();
        let mut to_dial = Vec::new();
        for (peer, (addrs, last)) in &mut self.lan_peers {
            if !self.swarm.is_connected(peer) && now.duration_since(*last) >= Duration::from_secs(2)
            {
                *last = now;
                to_dial.push((*peer, addrs.clone()));
            }
        }
        for (peer, addrs) in to_dial {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addrs)
                .build();
            Metrics::add(&self.metrics.dials, 1);
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "redial failed: {e}");
            }
        }
    }

    /// Anti-entropy: every interval, reconcile each chain with one random peer that follows
    /// it (unless a session we started with that peer is still running). In sync, that costs
    /// one round trip of a few dozen bytes.
    fn on_anti_entropy(&mut self) {
        let chains: Vec<(ChainId, Vec<libp2p::PeerId>)> = self
            .chains
            .iter()
            .map(|(id, c)| (*id, c.peers.iter().copied().collect()))
            .collect();
        for (chain, peers) in chains {
            if peers.is_empty() {
                continue;
            }
            let p = peers[(self.next_random() % peers.len() as u64) as usize];
            let busy = self
                .last_sync_in
                .get(&(chain, p))
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10));
            if busy {
                continue;
            }
            let n = self.peers.num(&p);
            self.feed(chain, Input::Reconcile(n), None);
        }
    }

    /// xorshift64* over a state seeded from the OS RNG.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A log line every few seconds per chain that is catching up or catching a peer up.
    fn log_sync_progress(&mut self) {
        if self.last_progress_log.elapsed() < Duration::from_secs(2) {
            return;
        }
        let secs = self.last_progress_log.elapsed().as_secs_f64();
        self.last_progress_log = Instant::now();
        for (chain, c) in &self.chains {
            let sending: usize = c.replica.sync_peers().iter().map(|(_, i)| i.outbox).sum();
            let p = self.progress.entry(*chain).or_default();
            let got = p.received - p.logged;
            p.logged = p.received;
            if got > 0 || sending > 0 {
                tracing::info!(
                    chain = %chain.short(),
                    events = c.replica.len(),
                    pending = c.replica.pending_len(),
                    "sync: received {got} events ({:.0}/s), {sending} queued for peers",
                    got as f64 / secs
                );
            }
        }
    }
}

/// `msg.encode().len()` without encoding event batches (megabytes) just to count them.
fn wire_len(msg: &SyncMsg) -> usize {
    let varint = |v: usize| (usize::BITS - v.leading_zeros()).div_ceil(7).max(1) as usize;
    match msg {
        SyncMsg::Events { events, .. } => {
            let body: usize = events.iter().map(|e| varint(e.len()) + e.len()).sum();
            1 + varint(events.len()) + body + 1
        }
        SyncMsg::Recon(m) => 1 + m.encoded_len(),
        other => other.encode().len(),
    }
}
