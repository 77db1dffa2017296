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
use crate::preverify::{self, Prechecked, Verdicts};
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

/// Envelopes replayed into a replica per call at start-up.
const REPLAY_CHUNK: usize = 4096;

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
    waiting: u32,
    /// Events that got no verdict with an id (they did not decode far enough to have one).
    undecided: u32,
}

impl Tally {
    /// Forward a bundle only if every event in it is valid or already known; one invalid
    /// event penalises the sender (an honest peer validates before it forwards).
    fn acceptance(&self) -> MessageAcceptance {
        if self.invalid > 0 || self.undecided > 0 {
            MessageAcceptance::Reject
        } else if self.waiting > 0 || self.valid == 0 {
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
        let mut anti_entropy = tokio::time::interval(Duration::from_secs(10));
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

    /// Starts serving every chain that has a log in the data directory.
    pub(crate) fn load_chains(&mut self) -> anyhow::Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let chains = journal.chains()?;
        for chain in chains {
            match self.open_log(chain, None, None) {
                Ok(replica) => {
                    self.install_chain(replica);
                }
                Err(e) => tracing::error!(
                    chain = %chain.short(),
                    "not serving this chain: {e}"
                ),
            }
        }
        Ok(())
    }

    /// Opens a chain's log and rebuilds its replica: from the chain's snapshot plus the log
    /// frames after it when there is a good one, else by replaying the whole log into
    /// `replica` (or into a replica made from the log's first frame, its genesis).
    fn open_log(
        &mut self,
        chain: ChainId,
        genesis: Option<&[u8]>,
        replica: Option<Replica>,
    ) -> Result<Replica, String> {
        let started = Instant::now();
        let from_snapshot = self.restore_snapshot(chain, genesis);
        let used_snapshot = from_snapshot.is_some();
        let (replica, skip) = match from_snapshot {
            Some((r, info)) => (Some(r), Some(info)),
            None => (replica, None),
        };
        match self.replay_log(chain, genesis, replica, skip)? {
            Some(r) => {
                if used_snapshot {
                    Metrics::add(&self.metrics.snapshots_restored, 1);
                }
                self.log_opened(chain, &r, started, used_snapshot);
                Ok(r)
            }
            None => {
                // The snapshot did not line up with the log: forget it and replay everything.
                tracing::warn!(
                    chain = %chain.short(),
                    "the snapshot does not match the redo log; replaying the whole log"
                );
                if let Some(j) = &self.journal {
                    j.drop_snapshot(&chain);
                }
                Metrics::add(&self.metrics.snapshots_ignored, 1);
                let fresh = match genesis {
                    Some(g) => Some(self.new_replica(g).map_err(|e| e.to_string())?),
                    None => None,
                };
                let r = self
                    .replay_log(chain, genesis, fresh, None)?
                    .ok_or("the log could not be replayed")?;
                self.log_opened(chain, &r, started, false);
                Ok(r)
            }
        }
    }

    fn new_replica(&self, genesis: &[u8]) -> Result<Replica, ate_protocol::replica::GenesisError> {
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        Replica::with_checker(genesis, self.replica_config.clone(), checker)
    }

    /// The replica from the chain's snapshot file, if it has a good one.
    fn restore_snapshot(
        &self,
        chain: ChainId,
        genesis: Option<&[u8]>,
    ) -> Option<(Replica, SnapshotInfo)> {
        let j = self.journal.as_ref()?;
        let bytes = j.read_snapshot(&chain)?;
        let genesis = match genesis {
            Some(g) => g.to_vec(),
            None => j.first_frame(&chain)?,
        };
        let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
        let restored = SnapshotInfo::read(&bytes).and_then(|info| {
            Replica::restore(&genesis, &bytes, self.replica_config.clone(), checker)
                .map(|r| (r, info))
        });
        match restored {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(chain = %chain.short(), "ignoring the snapshot: {e}");
                Metrics::add(&self.metrics.snapshots_ignored, 1);
                None
            }
        }
    }

    /// Replays the log into a replica, skipping the frames a snapshot covers. `Ok(None)` when
    /// the log does not hold what the snapshot says it covers.
    fn replay_log(
        &mut self,
        chain: ChainId,
        genesis: Option<&[u8]>,
        replica: Option<Replica>,
        snapshot: Option<SnapshotInfo>,
    ) -> Result<Option<Replica>, String> {
        let mut state = ReplayState {
            replica,
            chunk: Vec::new(),
            checker: self.checker.clone(),
            config: self.replica_config.clone(),
            error: None,
            invalid: 0,
            seen: 0,
            skip: snapshot.map_or(0, |i| i.events),
            last: snapshot.map(|i| i.last),
            mismatch: std::rc::Rc::new(std::cell::Cell::new(false)),
        };
        let mismatch = state.mismatch.clone();
        let mut last_log = Instant::now();
        let mut progress = |done: u64, total: u64| {
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!(
                    chain = %chain.short(),
                    "replaying the log: {} of {} MiB",
                    done >> 20,
                    total >> 20
                );
            }
        };
        let Some(journal) = self.journal.as_mut() else {
            return Err("the node has no data directory".into());
        };
        let root = journal.root().display().to_string();
        let skip = state.skip;
        let mut replay = |bytes: &[u8]| state.push(bytes);
        let mut accept =
            |r: &ate_store::Recovery| skip == 0 || (r.frames >= skip && !mismatch.get());
        let opened = journal
            .open(chain, genesis, &mut replay, &mut progress, &mut accept)
            .map_err(|e| {
                format!(
                    "{e} (logs in {root}; `ate node run --repair` cuts a corrupt log at the damage)"
                )
            })?;
        let Some(opened) = opened else {
            return Ok(None);
        };
        state.flush();
        if let Some(e) = state.error {
            return Err(e);
        }
        let Some(replica) = state.replica else {
            return Err("the log holds no genesis".into());
        };
        let r = &opened.recovery;
        if let Some(t) = &r.torn_tail {
            tracing::warn!(
                chain = %chain.short(),
                "cut a torn tail of the log: {} bytes at {}:{} ({:?})",
                t.bytes_cut, t.segment, t.offset, t.problem
            );
        }
        if let Some(rep) = &r.repaired {
            tracing::warn!(chain = %chain.short(), "repaired the log: {rep:?}");
        }
        if state.invalid > 0 {
            tracing::warn!(
                chain = %chain.short(),
                "{} logged events did not validate on replay and were skipped",
                state.invalid
            );
        }
        Ok(Some(replica))
    }

    fn log_opened(&self, chain: ChainId, r: &Replica, started: Instant, snapshot: bool) {
        tracing::info!(
            chain = %chain.short(),
            events = r.len(),
            snapshot,
            "chain loaded in {:.2?}",
            started.elapsed()
        );
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
        self.chains.insert(
            id,
            Chain {
                replica,
                topic,
                peers: BTreeSet::new(),
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

    // ---- signature checks off the loop ----

    fn enqueue(&mut self, chain: ChainId, work: Work) {
        let seq = self.next_job;
        self.next_job += 1;
        self.to_check.push_back(Job { seq, chain, work });
        self.start_checks();
    }

    /// Sends queued jobs to blocking threads, up to the limit.
    fn start_checks(&mut self) {
        while self.checking < max_check_jobs() {
            let Some(job) = self.to_check.pop_front() else {
                return;
            };
            self.checking += 1;
            let tx = self.checked_tx.clone();
            tokio::task::spawn_blocking(move || {
                let verdicts = match &job.work {
                    Work::Gossip { events, .. } | Work::Sync { events, .. } => {
                        preverify::check_envelopes(&job.chain, events)
                    }
                    Work::Local { events, .. } => preverify::check_events(events),
                };
                // The loop is gone only at shutdown; the batch is then moot.
                let _ = tx.send(Checked { job, verdicts });
            });
        }
    }

    /// A job's signatures are checked: feed it (and any later ones already done) in order.
    fn on_checked(&mut self, done: Checked) {
        self.checking = self.checking.saturating_sub(1);
        self.checked.insert(done.job.seq, done);
        while let Some(next) = self.checked.remove(&self.next_feed) {
            self.next_feed += 1;
            self.checker.install(next.verdicts);
            let chain = next.job.chain;
            match next.job.work {
                Work::Local { events, reply } => {
                    let result = self.finish_submit(chain, events);
                    self.after_durable(Action::Reply(reply, result));
                }
                Work::Gossip {
                    events,
                    waiting,
                    tallies,
                    tags,
                } => self.validate_gossip(chain, events, waiting, tallies, tags),
                Work::Sync { from, events } => {
                    self.sync_jobs = self.sync_jobs.saturating_sub(1);
                    self.progress.entry(chain).or_default().received += events.len() as u64;
                    let more = false;
                    let msg = SyncMsg::Events { events, more };
                    self.feed(chain, Input::Sync { from, msg }, None);
                }
            }
            self.checker.clear();
        }
        self.release_more();
        self.start_checks();
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
            chains,
            waiting_for_genesis: self.wanted.iter().copied().collect(),
        }
    }

    fn dial(&mut self, addrs: Vec<Multiaddr>) {
        let own: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        for addr in addrs {
            if own.contains(&addr) {
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
        rest
    }

    // ---- durability ----

    /// Runs `a` once everything accepted so far is durable (at once without a data dir).
    fn after_durable(&mut self, a: Action) {
        if self.last_ticket <= self.durable_ticket {
            self.act(a, None);
        } else {
            self.held.push_back((self.last_ticket, a));
        }
    }

    /// A ticket completed: release what waited for it. A failed ticket's actions are
    /// cancelled (writers get an error, nothing is published or forwarded).
    fn on_durable(&mut self, done: Done) {
        self.durable_ticket = self.durable_ticket.max(done.ticket);
        while let Some((t, _)) = self.held.front() {
            if *t > done.ticket {
                break;
            }
            let Some((t, a)) = self.held.pop_front() else {
                break;
            };
            let failed = match &done.result {
                Err(e) if t == done.ticket => Some(e.clone()),
                _ => None,
            };
            self.act(a, failed);
        }
    }

    fn act(&mut self, a: Action, failed: Option<String>) {
        let Some(e) = failed else {
            match a {
                Action::Publish(chain, bundle) => self.publish(chain, bundle),
                Action::Change(chain, change) => self.subscribers.publish(&chain, change),
                Action::Validate(id, source, acceptance) => self.validate(&id, &source, acceptance),
                Action::Reply(reply, result) => {
                    let _ = reply.send(result);
                }
                Action::Snapshot(job) => self.write_snapshot(*job),
                Action::Compacted(chain, reply, mut report) => {
                    if let Some(j) = &self.journal {
                        report.log_bytes_after = j.log_bytes(&chain);
                    }
                    let _ = reply.send(Ok(report));
                }
            }
            return;
        };
        match a {
            Action::Publish(chain, _) | Action::Change(chain, _) => self.mark_broken(chain, &e),
            Action::Validate(id, source, _) => {
                self.validate(&id, &source, MessageAcceptance::Ignore)
            }
            Action::Reply(reply, _) => {
                let _ = reply.send(Err(NodeError::NotDurable(e)));
            }
            Action::Compacted(chain, reply, _) => {
                self.mark_broken(chain, &e);
                let _ = reply.send(Err(NodeError::Storage(chain, e)));
            }
            Action::Snapshot(job) => {
                job.busy.store(false, std::sync::atomic::Ordering::SeqCst);
                if let Some(r) = job.reply {
                    let _ = r.send(Err(NodeError::NotDurable(e)));
                }
            }
        }
    }

    // ---- snapshots ----

    /// Takes a snapshot of `chain` now; it is written once the log holds everything in it.
    fn take_snapshot(
        &mut self,
        chain: ChainId,
        reply: Option<oneshot::Sender<Result<(), NodeError>>>,
    ) {
        let Some(c) = self.chains.get_mut(&chain) else {
            if let Some(r) = reply {
                let _ = r.send(Err(NodeError::UnknownChain(chain)));
            }
            return;
        };
        if self.journal.is_none() || self.broken.contains_key(&chain) {
            if let Some(r) = reply {
                let _ = r.send(Err(NodeError::NoData));
            }
            return;
        }
        let started = Instant::now();
        let bytes = c.replica.snapshot();
        tracing::debug!(
            chain = %chain.short(),
            events = c.replica.len(),
            bytes = bytes.len(),
            "snapshot taken in {:.2?}",
            started.elapsed()
        );
        c.snapshot_at = c.replica.len();
        c.snapshot_busy
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let busy = c.snapshot_busy.clone();
        self.after_durable(Action::Snapshot(Box::new(SnapshotJob {
            chain,
            bytes,
            busy,
            reply,
        })));
    }

    fn write_snapshot(&mut self, job: SnapshotJob) {
        let Some(j) = &self.journal else {
            return;
        };
        let (path, dir) = j.snapshot_target(&job.chain);
        tokio::task::spawn_blocking(move || {
            let r = crate::journal::write_snapshot(&path, &dir, &job.bytes);
            if let Err(e) = &r {
                tracing::warn!(chain = %job.chain.short(), "cannot write the snapshot {}: {e}", path.display());
            }
            job.busy.store(false, std::sync::atomic::Ordering::SeqCst);
            if let Some(reply) = job.reply {
                let _ = reply.send(r.map_err(|e| NodeError::Storage(job.chain, e.to_string())));
            }
        });
    }

    /// Compacts a chain in memory, then rewrites its log (and snapshots it: the old snapshot
    /// numbers the old log's frames).
    fn compact(
        &mut self,
        chain: ChainId,
        reply: oneshot::Sender<Result<crate::node::CompactReport, NodeError>>,
    ) {
        if let Some(e) = self.broken.get(&chain) {
            let _ = reply.send(Err(NodeError::Storage(chain, e.clone())));
            return;
        }
        let Some(c) = self.chains.get_mut(&chain) else {
            let _ = reply.send(Err(NodeError::UnknownChain(chain)));
            return;
        };
        let done = c.replica.compact();
        let mut report = crate::node::CompactReport {
            pruned: done.pruned.len(),
            compacted_total: c.replica.compacted_len(),
            bytes_freed: done.bytes_freed,
            log_bytes_before: 0,
            log_bytes_after: 0,
        };
        let genesis = c.replica.event(&EventId(chain.0)).map(|g| g.encode());
        let payloads: Option<Vec<Vec<u8>>> = match (&self.journal, genesis) {
            (Some(_), Some(g)) if report.pruned > 0 => Some(
                std::iter::once(g)
                    .chain(c.replica.envelopes_in_order())
                    .collect(),
            ),
            _ => None,
        };
        if let Some(j) = self.journal.as_mut() {
            report.log_bytes_before = j.log_bytes(&chain);
            report.log_bytes_after = report.log_bytes_before;
            if let Some(p) = payloads {
                self.last_ticket = j.rewrite(chain, p);
                self.take_snapshot(chain, None);
            }
        }
        self.after_durable(Action::Compacted(chain, reply, report));
    }

    /// Snapshots every chain; answers once all are written.
    fn checkpoint(&mut self, reply: oneshot::Sender<Result<usize, NodeError>>) {
        let chains: Vec<ChainId> = self.chains.keys().copied().collect();
        let mut waits = Vec::new();
        for chain in chains {
            let (tx, rx) = oneshot::channel();
            self.take_snapshot(chain, Some(tx));
            waits.push(rx);
        }
        tokio::spawn(async move {
            let mut n = 0;
            for w in waits {
                match w.await {
                    Ok(Ok(())) => n += 1,
                    Ok(Err(e)) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = reply.send(Err(NodeError::Closed));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(n));
        });
    }

    fn backup(
        &mut self,
        chain: ChainId,
        reply: oneshot::Sender<Result<crate::journal::BackupSource, NodeError>>,
    ) {
        if !self.chains.contains_key(&chain) {
            let _ = reply.send(Err(NodeError::UnknownChain(chain)));
            return;
        }
        let Some(j) = &self.journal else {
            let _ = reply.send(Err(NodeError::NoData));
            return;
        };
        // The writer thread answers; relay its answer without holding up the loop.
        let (tx, rx) = oneshot::channel();
        j.backup(chain, tx);
        tokio::spawn(async move {
            let r = match rx.await {
                Ok(r) => r.map_err(|e| NodeError::Storage(chain, e)),
                Err(_) => Err(NodeError::Closed),
            };
            let _ = reply.send(r);
        });
    }

    fn mark_broken(&mut self, chain: ChainId, e: &str) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.broken.entry(chain) {
            tracing::error!(
                chain = %chain.short(),
                "the redo log failed ({e}); refusing writes to this chain until restart"
            );
            v.insert(e.to_string());
        }
    }

    fn publish(&mut self, chain: ChainId, bytes: Vec<u8>) {
        let Some(c) = self.chains.get(&chain) else {
            return;
        };
        let topic = c.topic.clone();
        let len = bytes.len() as u64;
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, bytes.clone())
        {
            Ok(_) => {
                Metrics::add(&self.metrics.gossip_out_msgs, 1);
                Metrics::add(&self.metrics.gossip_out_bytes, len);
            }
            Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                // Backpressure: keep it and retry on the next tick; never drop a local write
                // (it is stored either way, and sync reaches peers that miss the gossip).
                Metrics::add(&self.metrics.gossip_backpressure, 1);
                if self.retry.len() < MAX_RETRY {
                    self.retry.push_back((chain, bytes));
                }
            }
            Err(e) => tracing::debug!(chain = %chain.short(), "publish: {e}"),
        }
    }

    fn send_request(&mut self, peer: libp2p::PeerId, chain: ChainId, msg: SyncMsg) {
        Metrics::add(&self.metrics.sync_out_msgs, 1);
        Metrics::add(&self.metrics.sync_out_bytes, wire_len(&msg) as u64);
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest { chain, msg });
        self.in_flight.insert(id, chain);
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let addrs = found.iter().map(|(_, a)| a.clone()).collect();
                for (peer, addr) in found {
                    let entry = self
                        .lan_peers
                        .entry(peer)
                        .or_insert_with(|| (Vec::new(), Instant::now()));
                    if !entry.0.contains(&addr) {
                        entry.0.push(addr);
                    }
                }
                self.dial(addrs);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, _) in gone {
                    self.lan_peers.remove(&peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                for addr in info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!("listening on {address}"),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                let wanted: Vec<ChainId> = self.wanted.iter().copied().collect();
                for chain in wanted {
                    self.send_request(
                        peer_id,
                        chain,
                        SyncMsg::GetEvents {
                            ids: vec![chain.into()],
                        },
                    );
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.last_sync_in.retain(|(_, p), _| *p != peer_id);
                tracing::info!(peer = %peer_id, "disconnected");
                let n = self.peers.num(&peer_id);
                let chains: Vec<ChainId> = self.chains.keys().copied().collect();
                for chain in chains {
                    if let Some(c) = self.chains.get_mut(&chain) {
                        c.peers.remove(&peer_id);
                    }
                    self.feed(chain, Input::PeerDown(n), None);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "outgoing connection failed: {error}");
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, e: gossipsub::Event) {
        match e {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                Metrics::add(&self.metrics.gossip_in_msgs, 1);
                Metrics::add(&self.metrics.gossip_in_bytes, message.data.len() as u64);
                let Some(&chain) = self.topics.get(&message.topic) else {
                    self.validate(&message_id, &propagation_source, MessageAcceptance::Ignore);
                    return;
                };
                match crate::bundle::decode(&message.data) {
                    Ok(events) => {
                        Metrics::add(&self.metrics.gossip_in_events, events.len() as u64);
                        self.gossip_events += events.len();
                        self.gossip.push(Gossiped {
                            chain,
                            source: propagation_source,
                            msg_id: message_id,
                            events,
                        });
                    }
                    Err(e) => {
                        tracing::debug!(peer = %propagation_source, "rejecting gossip: {e}");
                        self.validate(&message_id, &propagation_source, MessageAcceptance::Reject);
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(&chain) = self.topics.get(&topic) {
                    if let Some(c) = self.chains.get_mut(&chain) {
                        c.peers.insert(peer_id);
                    }
                    // One end starts on subscription (two sessions would each find the
                    // difference, and each end would send it); a follower also starts one
                    // itself when it installs the chain.
                    if self.peer_id() < peer_id {
                        let n = self.peers.num(&peer_id);
                        self.feed(chain, Input::PeerUp(n), None);
                    }
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(c) = self
                    .topics
                    .get(&topic)
                    .and_then(|id| self.chains.get_mut(id))
                {
                    c.peers.remove(&peer_id);
                }
            }
            _ => {}
        }
    }

    fn validate(&mut self, id: &MessageId, source: &libp2p::PeerId, a: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, a);
    }

    /// Validates the buffered gossip messages, one replica call per chain, and reports each
    /// message's verdict to gossipsub: all valid (or known) → forward; anything waiting on a
    /// missing dependency, or nothing new → ignore; anything invalid → reject (the sender is
    /// penalised).
    fn flush_gossip(&mut self) {
        if self.gossip.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.gossip);
        self.gossip_events = 0;
        Metrics::add(&self.metrics.gossip_batches, 1);
        let mut by_chain: BTreeMap<ChainId, Vec<Gossiped>> = BTreeMap::new();
        for g in batch {
            by_chain.entry(g.chain).or_default().push(g);
        }
        for (chain, msgs) in by_chain {
            // Verdicts name the event id; match them back to messages by id.
            let mut waiting: HashMap<_, VecDeque<usize>> = HashMap::new();
            let mut events = Vec::new();
            let mut tags = Vec::with_capacity(msgs.len());
            let mut tallies = vec![Tally::default(); msgs.len()];
            for (i, m) in msgs.into_iter().enumerate() {
                for data in m.events {
                    match ate_protocol::event::envelope_id(Some(&chain), &data) {
                        Some((id, _)) => waiting.entry(id).or_default().push_back(i),
                        None => tallies[i].undecided += 1,
                    }
                    events.push(data);
                }
                tags.push((m.msg_id, m.source));
            }
            self.enqueue(
                chain,
                Work::Gossip {
                    events,
                    waiting,
                    tallies,
                    tags,
                },
            );
        }
    }

    /// Feeds a checked gossip batch to its replica and reports each message's verdict.
    fn validate_gossip(
        &mut self,
        chain: ChainId,
        events: Vec<Vec<u8>>,
        mut waiting: HashMap<ate_protocol::EventId, VecDeque<usize>>,
        mut tallies: Vec<Tally>,
        tags: Vec<(MessageId, libp2p::PeerId)>,
    ) {
        let source = tags.first().map(|m| m.1);
        let from = source.map(|s| self.peers.num(&s)).unwrap_or(PeerId(0));
        let outputs = self.feed(chain, Input::Fetched { from, events }, None);
        for o in outputs {
            if let Output::Verdict {
                id: Some(id),
                verdict,
                ..
            } = o
                && let Some(i) = waiting.get_mut(&id).and_then(VecDeque::pop_front)
            {
                let t = &mut tallies[i];
                match verdict {
                    Verdict::Valid => t.valid += 1,
                    Verdict::Invalid(_) => t.invalid += 1,
                    Verdict::Pending { .. } | Verdict::Overloaded => t.waiting += 1,
                    Verdict::Duplicate => {}
                }
            }
        }
        // Ids that never got a verdict: the replica could not read them.
        for idxs in waiting.values() {
            for &i in idxs {
                tallies[i].undecided += 1;
            }
        }
        for ((msg_id, source), t) in tags.into_iter().zip(tallies) {
            self.after_durable(Action::Validate(msg_id, source, t.acceptance()));
        }
    }

    fn on_sync(&mut self, e: request_response::Event<SyncRequest, SyncResponse>) {
        match e {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let chain = self.in_flight.remove(&request_id);
                    if let Some(chain) = chain {
                        self.on_response(peer, chain, response);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                self.in_flight.remove(&request_id);
                Metrics::add(&self.metrics.sync_failures, 1);
                tracing::debug!(%peer, "sync request failed: {error}");
            }
            request_response::Event::InboundFailure { error, peer, .. } => {
                Metrics::add(&self.metrics.sync_failures, 1);
                tracing::debug!(%peer, "inbound sync failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        peer: libp2p::PeerId,
        req: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        Metrics::add(&self.metrics.sync_in_msgs, 1);
        Metrics::add(&self.metrics.sync_in_bytes, wire_len(&req.msg) as u64);
        let n = self.peers.num(&peer);
        let response = if !self.chains.contains_key(&req.chain) {
            SyncResponse {
                msgs: Vec::new(),
                unknown_chain: true,
            }
        } else if let SyncMsg::Events { events, more } = req.msg {
            self.on_sync_events(peer, req.chain, events, more);
            SyncResponse::default()
        } else {
            let outputs = self.feed(
                req.chain,
                Input::Sync {
                    from: n,
                    msg: req.msg,
                },
                Some(n),
            );
            let msgs: Vec<SyncMsg> = outputs
                .into_iter()
                .filter_map(|o| match o {
                    Output::Send { msg, .. } => Some(msg),
                    _ => None,
                })
                .collect();
            SyncResponse {
                msgs,
                unknown_chain: false,
            }
        };
        let bytes: u64 = response.msgs.iter().map(|m| wire_len(m) as u64).sum();
        Metrics::add(&self.metrics.sync_out_bytes, bytes);
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    fn on_response(&mut self, peer: libp2p::PeerId, chain: ChainId, resp: SyncResponse) {
        let bytes: u64 = resp.msgs.iter().map(|m| wire_len(m) as u64).sum();
        Metrics::add(&self.metrics.sync_in_bytes, bytes);
        let n = self.peers.num(&peer);
        if resp.unknown_chain {
            // The peer does not follow it: forget any session we started with it there.
            self.feed(chain, Input::PeerDown(n), None);
            return;
        }
        for msg in resp.msgs {
            if !self.chains.contains_key(&chain) && self.wanted.contains(&chain) {
                self.try_genesis(chain, &msg);
            }
            if !self.chains.contains_key(&chain) {
                continue;
            }
            match msg {
                SyncMsg::Events { events, more } => self.on_sync_events(peer, chain, events, more),
                msg => {
                    self.feed(chain, Input::Sync { from: n, msg }, None);
                }
            }
        }
    }

    /// Synced events go through the signature-check pipeline like gossip. A stream's next
    /// batch is asked for at once (it crosses the network while this one is checked) unless
    /// `MAX_SYNC_JOBS` batches already wait, in which case it is asked for when they drain:
    /// the receiver's checks pace the sender.
    fn on_sync_events(
        &mut self,
        peer: libp2p::PeerId,
        chain: ChainId,
        events: Vec<Vec<u8>>,
        more: bool,
    ) {
        let from = self.peers.num(&peer);
        self.last_sync_in.insert((chain, peer), Instant::now());
        if !events.is_empty() {
            self.sync_jobs += 1;
            self.enqueue(chain, Work::Sync { from, events });
        }
        if more {
            self.more_due.push_back((peer, chain));
            self.release_more();
        }
    }

    /// Asks for the next batch of waiting streams while the check pipeline has room.
    fn release_more(&mut self) {
        while self.sync_jobs < MAX_SYNC_JOBS {
            let Some((peer, chain)) = self.more_due.pop_front() else {
                return;
            };
            if self.swarm.is_connected(&peer) {
                self.send_request(peer, chain, SyncMsg::More);
            }
        }
    }

    /// A response to a genesis request for a wanted chain: start following it.
    fn try_genesis(&mut self, chain: ChainId, msg: &SyncMsg) {
        let SyncMsg::Events { events, .. } = msg else {
            return;
        };
        for bytes in events {
            let is_it = Event::decode(
                None,
                bytes,
                &Params {
                    max_event_bytes: 1 << 20,
                    max_key_bytes: 1 << 20,
                },
            )
            .is_ok_and(|e| e.id.0 == chain.0);
            if is_it && self.add_chain(bytes).is_ok() {
                return;
            }
        }
    }

    // ---- timers ----

    fn on_tick(&mut self) {
        self.redial_lan_peers();
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

/// Feeds a log's envelopes to a replica in chunks while the log is read.
struct ReplayState {
    replica: Option<Replica>,
    chunk: Vec<Vec<u8>>,
    checker: Arc<Prechecked>,
    config: ate_protocol::Config,
    error: Option<String>,
    invalid: u64,
    /// Frames read so far, and how many a restored snapshot already covers.
    seen: u64,
    skip: u64,
    last: Option<EventId>,
    mismatch: std::rc::Rc<std::cell::Cell<bool>>,
}

impl ReplayState {
    fn push(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // Frames a snapshot covers are already in the replica; the last of them must be the
        // event the snapshot names, or the two do not belong together.
        if self.seen < self.skip {
            self.seen += 1;
            if self.seen == self.skip {
                let id = self
                    .replica
                    .as_ref()
                    .and_then(|r| ate_protocol::event::envelope_id(Some(&r.chain()), bytes))
                    .map(|(id, _)| id);
                let genesis_only = self.skip == 1;
                if !genesis_only && id != self.last {
                    self.mismatch.set(true);
                }
            }
            return;
        }
        if self.replica.is_none() {
            let checker: Arc<dyn ate_protocol::verify::SignatureCheck> = self.checker.clone();
            match Replica::with_checker(bytes, self.config.clone(), checker) {
                Ok(r) => self.replica = Some(r),
                Err(e) => self.error = Some(format!("the log's first frame is not a genesis: {e}")),
            }
            return;
        }
        self.chunk.push(bytes.to_vec());
        if self.chunk.len() >= REPLAY_CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if self.chunk.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.chunk);
        for o in r.handle(0, Input::Replay(events)) {
            if let Output::Verdict {
                verdict: Verdict::Invalid(_),
                ..
            } = o
            {
                self.invalid += 1;
            }
        }
    }
}
