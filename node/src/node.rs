//! The node: one event loop that owns the libp2p swarm and the replicas, and a cloneable
//! [`Client`] that talks to it (the rust-libp2p file-sharing example's shape).
//!
//! Everything that touches a replica happens on the loop's task, so replicas need no locks:
//! the API and the library send a [`Command`] over a bounded channel and await a oneshot
//! reply. The loop maps replica outputs to the network (`Publish` → gossipsub, `Send` → the
//! sync protocol), gossip messages to replica inputs (in batches, so signatures are checked
//! together), and replica verdicts back to gossipsub validation (`Accept`/`Ignore`/`Reject`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ate_protocol::replica::{ChangeKind, Config, Stats, Verdict, ViewChange};
use ate_protocol::{ChainId, Event, EventId, Replica};
use libp2p::Multiaddr;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::event_loop::EventLoop;
use crate::metrics::Metrics;

/// How a node is configured (the flags of `ate node run`, and the config file's keys).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Listen addresses (default TCP and QUIC on port 4100, all interfaces).
    pub listen: Vec<Multiaddr>,
    /// DNS names to join (`NAME[:PORT]`, default port 4100).
    pub join: Vec<String>,
    /// A DNS server to ask instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// Discover peers on the LAN by mDNS.
    pub mdns: bool,
    /// Chains to follow at start.
    pub follow: Vec<ChainId>,
    /// Seed of the node's network identity (random if absent).
    pub identity_seed: Option<[u8; 32]>,
    /// How often `--join` names are resolved again.
    pub join_interval: Duration,
    /// Replica limits.
    pub replica: Config,
    /// Data directory: redo logs live under `DATA/chains` (in memory only when absent).
    pub data: Option<std::path::PathBuf>,
    /// When appended events are made durable.
    pub fsync: crate::journal::Fsync,
    /// Cut a log at a corrupt frame in the middle instead of refusing to serve the chain.
    pub repair: bool,
    /// Snapshot a chain after this many new events (0: only on `checkpoint`, e.g. at stop).
    pub snapshot_every: usize,
    /// Where the logs are kept, instead of files under `data` (tests inject faults this way;
    /// `data` must still be set to turn persistence on).
    pub storage: Option<std::sync::Arc<dyn ate_store::Backend>>,
    /// Gossipsub mesh degree (`mesh_n`; default 6). Changing it changes how many copies of
    /// each message a node receives, which is how `ate-calibrate` separates the CPU cost per
    /// message from the cost per event.
    pub gossip_mesh: Option<usize>,
    /// How often each chain is reconciled with one random peer that follows it (anti-entropy:
    /// what gossip missed arrives at the latest after about this long).
    pub anti_entropy: Duration,
}

impl NodeConfig {
    /// A node for in-process use: TCP on a random loopback port, no mDNS, no joins.
    pub fn local() -> NodeConfig {
        NodeConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            mdns: false,
            ..NodeConfig::default()
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: vec![default_tcp(4100), default_quic(4100)],
            join: Vec::new(),
            dns_server: None,
            mdns: true,
            follow: Vec::new(),
            identity_seed: None,
            join_interval: Duration::from_secs(30),
            replica: Config::default(),
            data: None,
            fsync: crate::journal::Fsync::default(),
            repair: false,
            storage: None,
            snapshot_every: 100_000,
            gossip_mesh: None,
            anti_entropy: Duration::from_secs(10),
        }
    }
}

/// `/ip4/0.0.0.0/tcp/PORT`.
pub fn default_tcp(port: u16) -> Multiaddr {
    format!("/ip4/0.0.0.0/tcp/{port}")
        .parse()
        .unwrap_or_else(|_| Multiaddr::empty())
}

/// `/ip4/0.0.0.0/udp/PORT/quic-v1`.
pub fn default_quic(port: u16) -> Multiaddr {
    format!("/ip4/0.0.0.0/udp/{port}/quic-v1")
        .parse()
        .unwrap_or_else(|_| Multiaddr::empty())
}

/// Errors a node operation can return. Messages say what to do.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The chain is not followed by this node.
    #[error("this node does not follow chain {0}; follow it first (`ate follow {0}`)")]
    UnknownChain(ChainId),
    /// The genesis bytes are not a valid genesis.
    #[error("not a valid genesis event: {0}")]
    BadGenesis(String),
    /// The node has shut down.
    #[error("the node is shutting down")]
    Closed,
    /// The node keeps no redo logs (started without a data directory).
    #[error("this node has no data directory (start it with --data DIR)")]
    NoData,
    /// The chain's redo log cannot be opened or written.
    #[error("the redo log of chain {0} failed: {1}")]
    Storage(ChainId, String),
    /// The events were accepted in memory but could not be made durable, so they are not
    /// acknowledged; the chain refuses writes until the node restarts.
    #[error("the write could not be made durable ({0}); it is not acknowledged")]
    NotDurable(String),
}

/// What the status endpoint reports per chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainStatus {
    /// The chain id.
    pub id: ChainId,
    /// The name from its genesis.
    pub name: String,
    /// Stored events.
    pub events: usize,
    /// DAG heads.
    pub heads: Vec<EventId>,
    /// View digest (hex).
    pub digest: String,
    /// Events waiting for dependencies.
    pub pending: usize,
    /// Counters.
    pub stats: Stats,
    /// Peers subscribed to the chain's topic.
    pub peers: usize,
}

/// What a compaction did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    /// Versions whose bodies were dropped by this compaction.
    pub pruned: usize,
    /// Superseded versions kept whole because a newer one is not settled yet: some admin has
    /// not written since it, or a revocation or rotation is concurrent with it (see
    /// `ate_protocol::Replica::compact`).
    pub unsettled: usize,
    /// Events without bodies now (from this and earlier compactions, or received so).
    pub compacted_total: usize,
    /// Body bytes freed in memory.
    pub bytes_freed: u64,
    /// The log's size on disk before and after (0 without a data directory).
    pub log_bytes_before: u64,
    /// See `log_bytes_before`.
    pub log_bytes_after: u64,
}

/// What the status endpoint reports for the node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// The node's libp2p peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Open connections (a peer may have a few: both ends dialled, TCP and QUIC).
    pub connections: usize,
    /// Followed chains.
    pub chains: Vec<ChainStatus>,
    /// Chains asked for but whose genesis has not arrived yet.
    pub waiting_for_genesis: Vec<ChainId>,
}

/// A read over one replica, run on the loop.
pub(crate) type ReadFn = Box<dyn FnOnce(Option<&Replica>) + Send>;

/// Commands from clients to the loop.
pub(crate) enum Command {
    CreateChain {
        genesis: Vec<u8>,
        reply: oneshot::Sender<Result<ChainId, NodeError>>,
    },
    Follow {
        chain: ChainId,
        reply: oneshot::Sender<()>,
    },
    Submit {
        chain: ChainId,
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Vec<Verdict>, NodeError>>,
    },
    Read {
        chain: ChainId,
        f: ReadFn,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    Subscribe {
        chain: ChainId,
        reply: oneshot::Sender<broadcast::Receiver<ViewChange>>,
    },
    Dial {
        addrs: Vec<Multiaddr>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<usize, NodeError>>,
    },
    Compact {
        chain: ChainId,
        reply: oneshot::Sender<Result<CompactReport, NodeError>>,
    },
    Backup {
        chain: ChainId,
        reply: oneshot::Sender<Result<crate::journal::BackupSource, NodeError>>,
    },
}

/// A handle on a running node. Cheap to clone; every method is a message to the loop.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

impl Client {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Closed)?;
        rx.await.map_err(|_| NodeError::Closed)
    }

    /// Starts following a chain from its genesis envelope (creating it, if it is new).
    pub async fn create_chain(&self, genesis: Vec<u8>) -> Result<ChainId, NodeError> {
        self.ask(|reply| Command::CreateChain { genesis, reply })
            .await?
    }

    /// Follows a chain by id: peers that have it send its genesis and events.
    pub async fn follow(&self, chain: ChainId) -> Result<(), NodeError> {
        self.ask(|reply| Command::Follow { chain, reply }).await
    }

    /// Drops the bodies of superseded versions and rewrites the chain's redo log without them
    /// (headers and signatures stay, so the chain still verifies and peers still sync).
    pub async fn compact(&self, chain: ChainId) -> Result<CompactReport, NodeError> {
        self.ask(|reply| Command::Compact { chain, reply }).await?
    }

    /// Writes a snapshot of every chain (covering only durable events) so the next start
    /// need not replay their logs; returns how many were written. The daemon does this when
    /// it is stopped.
    pub async fn checkpoint(&self) -> Result<usize, NodeError> {
        self.ask(|reply| Command::Checkpoint { reply }).await?
    }

    /// A consistent point of a chain's redo log to copy a backup from, taken after every
    /// write acknowledged so far.
    pub async fn backup(&self, chain: ChainId) -> Result<crate::journal::BackupSource, NodeError> {
        self.ask(|reply| Command::Backup { chain, reply }).await?
    }

    /// Submits locally signed events; returns one verdict per event, in order.
    pub async fn submit(
        &self,
        chain: ChainId,
        events: Vec<Event>,
    ) -> Result<Vec<Verdict>, NodeError> {
        self.ask(|reply| Command::Submit {
            chain,
            events,
            reply,
        })
        .await?
    }

    /// Runs `f` on the chain's replica (on the loop) and returns its result.
    pub async fn read<T: Send + 'static>(
        &self,
        chain: ChainId,
        f: impl FnOnce(&Replica) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let f: ReadFn = Box::new(move |r| {
            let _ = tx.send(r.map(f));
        });
        self.tx
            .send(Command::Read { chain, f })
            .await
            .map_err(|_| NodeError::Closed)?;
        rx.await
            .map_err(|_| NodeError::Closed)?
            .ok_or(NodeError::UnknownChain(chain))
    }

    /// Node and chain status.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// A stream of view changes of one chain.
    pub async fn subscribe(
        &self,
        chain: ChainId,
    ) -> Result<broadcast::Receiver<ViewChange>, NodeError> {
        self.ask(|reply| Command::Subscribe { chain, reply }).await
    }

    /// Dials addresses (discovery does this; tests and the demo too).
    pub async fn dial(&self, addrs: Vec<Multiaddr>) {
        let _ = self.tx.send(Command::Dial { addrs }).await;
    }

    /// The node's network counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    client: Client,
    /// The node's libp2p peer id.
    pub peer_id: libp2p::PeerId,
    task: tokio::task::JoinHandle<()>,
    discovery: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Starts a node on the current tokio runtime.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel(1024);
        let client = Client {
            tx,
            metrics: metrics.clone(),
        };
        let mut event_loop = EventLoop::new(&config, rx, metrics)?;
        event_loop.load_chains()?;
        let peer_id = event_loop.peer_id();
        let task = tokio::spawn(event_loop.run());
        let mut discovery = Vec::new();
        for name in &config.join {
            discovery.push(crate::discovery::spawn_join(
                name.clone(),
                config.dns_server,
                config.join_interval,
                client.clone(),
            )?);
        }
        for chain in &config.follow {
            client.follow(*chain).await?;
        }
        Ok(Node {
            client,
            peer_id,
            task,
            discovery,
        })
    }

    /// A client for this node.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops the node.
    pub fn shutdown(self) {
        for d in &self.discovery {
            d.abort();
        }
        self.task.abort();
    }

    /// Stops the node and waits until its loop is gone and its redo logs are closed (every
    /// append handed to the disk thread is written).
    pub async fn stop(self) {
        for d in &self.discovery {
            d.abort();
        }
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits until the node's loop ends (it runs until the process ends).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Sends view changes to subscribers (bounded; slow subscribers lose old changes, never
/// block the loop).
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    by_chain: BTreeMap<ChainId, broadcast::Sender<ViewChange>>,
}

impl Subscribers {
    pub(crate) fn subscribe(&mut self, chain: ChainId) -> broadcast::Receiver<ViewChange> {
        self.by_chain
            .entry(chain)
            .or_insert_with(|| broadcast::channel(4096).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, chain: &ChainId, change: ViewChange) {
        if let Some(tx) = self.by_chain.get(chain) {
            let _ = tx.send(change);
        }
    }
}

/// Text label of a change kind for the SSE stream.
pub(crate) fn change_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Disabled => "disabled",
        ChangeKind::Restored => "restored",
    }
}
