//! Scenario files: what to simulate, as TOML.
//!
//! Every table rejects unknown fields, so a typo is an error that names the file, the line and
//! the field, never a silently ignored knob. After parsing, [`Scenario::validate`] checks what
//! the types cannot (matrix shapes, mesh degrees, probabilities).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A whole scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports.
    pub name: String,
    /// Honest and byzantine nodes together.
    pub nodes: usize,
    /// Default master seed (overridden by `--seed`).
    #[serde(default = "one")]
    pub seed: u64,
    /// Length of the safety phase (faults on), simulated ms.
    pub safety_ms: u64,
    /// Budget of the liveness phase (faults off): all live nodes must agree within it.
    #[serde(default = "default_liveness")]
    pub liveness_budget_ms: u64,
    /// Every this many simulated ms, the full (expensive) checkers run.
    #[serde(default = "default_check")]
    pub full_check_every_ms: u64,
    /// The network model.
    pub network: Network,
    /// The gossip mesh.
    #[serde(default)]
    pub gossip: Gossip,
    /// What handling a message costs a node (batching linger, CPU); free by default.
    #[serde(default)]
    pub node: NodeModel,
    /// What honest users do.
    pub workload: Workload,
    /// Scheduled faults.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Byzantine behaviour.
    #[serde(default)]
    pub adversaries: Vec<Adversary>,
}

fn one() -> u64 {
    1
}
fn default_liveness() -> u64 {
    60_000
}
fn default_check() -> u64 {
    5_000
}

/// Regions, latency, loss, bandwidth.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Region names; nodes are spread over them round-robin.
    pub regions: Vec<String>,
    /// Round-trip times between regions (ms), a square matrix.
    pub rtt_ms: Vec<Vec<f64>>,
    /// Uniform one-way jitter, ± this many ms.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Probability that a transmission is lost and must be retransmitted (TCP-like: the message
    /// arrives, one retransmission timeout later per loss).
    #[serde(default)]
    pub loss: f64,
    /// Retransmission timeout added per loss, ms.
    #[serde(default = "default_rto")]
    pub rto_ms: f64,
    /// Uplink bandwidth of every node, megabits per second.
    #[serde(default = "default_mbps")]
    pub uplink_mbps: f64,
    /// Connections per node (random graph; the mesh is chosen among them). At `nodes - 1` or
    /// more every node is connected to every other (as when all resolve one `--join` name).
    #[serde(default = "default_conns")]
    pub connections: usize,
}

fn default_rto() -> f64 {
    200.0
}
fn default_mbps() -> f64 {
    100.0
}
fn default_conns() -> usize {
    12
}

/// Gossipsub-like mesh parameters (names follow libp2p gossipsub).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gossip {
    /// Target mesh degree.
    pub d: usize,
    /// Below this the heartbeat grafts.
    pub d_low: usize,
    /// Above this the heartbeat prunes.
    pub d_high: usize,
    /// Non-mesh peers that get IHAVE at each heartbeat.
    pub d_lazy: usize,
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Heartbeats of message ids advertised in IHAVE.
    pub history_gossip: usize,
    /// Publish own messages to every connected peer, not only the mesh.
    pub flood_publish: bool,
    /// Period of anti-entropy with one random peer (the replica's `Heads` exchange), ms.
    pub anti_entropy_ms: u64,
}

impl Default for Gossip {
    fn default() -> Self {
        Gossip {
            d: 6,
            d_low: 4,
            d_high: 12,
            d_lazy: 6,
            heartbeat_ms: 1000,
            history_gossip: 3,
            flood_publish: true,
            anti_entropy_ms: 10_000,
        }
    }
}

/// What handling a message costs a node, after the real node (`node/src/event_loop.rs`):
/// gossip is validated in batches that linger a few ms for company, and every message takes
/// CPU time on a host whose cores may be shared. All zero by default: a message is handled the
/// instant it arrives, which is what large scenarios want (and costs no extra queue entries).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeModel {
    /// A gossip message that starts a validation batch waits this long before the replica
    /// sees the batch (the node's `GOSSIP_LINGER`), ms.
    pub linger_ms: f64,
    /// The node's timer wheel rounds a linger deadline up to its next tick (tokio's: 1 ms),
    /// so the real wait is `linger_ms` plus up to one tick; 0: exact.
    pub timer_tick_ms: f64,
    /// CPU per message received (gossip, duplicates included, IHAVE, IWANT, sync), µs. A node
    /// handles one thing at a time, so messages queue behind each other.
    pub cpu_per_msg_us: f64,
    /// CPU per gossip event the replica validates (decode, signature, rules, forwarding), µs.
    pub cpu_per_event_us: f64,
    /// The share of `cpu_per_event_us` a node spends after the event is accepted (and
    /// forwarded): the rest of the work a real node does per event, such as encrypting the
    /// forwarded copies, serving change streams and waking tasks. It delays what the node (and
    /// on a shared host, the others) does next, not this event's acceptance. 0: all before.
    pub cpu_after_share: f64,
    /// CPU costs vary: each is drawn from an exponential distribution with the configured
    /// mean (cache misses, scheduling, other work on the host), instead of being exact.
    pub cpu_exponential: bool,
    /// Every node runs on one host with this many cores (processes on one machine, as in the
    /// loopback calibration); 0: a CPU per node.
    pub host_cores: usize,
    /// How the host's cores are shared ([`HostSharing`]).
    pub host_sharing: HostSharing,
}

impl NodeModel {
    /// CPU per validated event spent before the event is accepted, µs.
    pub fn cpu_before_accept_us(&self) -> f64 {
        self.cpu_per_event_us * (1.0 - self.cpu_after_share)
    }

    /// CPU per validated event spent after it is accepted (`cpu_after_share`), µs.
    pub fn cpu_after_accept_us(&self) -> f64 {
        self.cpu_per_event_us * self.cpu_after_share
    }
}

/// How the nodes on one host share its cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostSharing {
    /// First come first served: a task takes the first free core and runs to its end, and a
    /// node does one thing at a time.
    #[default]
    Fifo,
    /// Every task that wants CPU runs at once, each at `cores / tasks` of a core (at most
    /// one), as Linux's scheduler shares a machine between processes; a node's tasks run side
    /// by side (a real node has several threads).
    Fair,
}

/// Honest users: writers with grants, an admin revoking, late joiners.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Writers granted `Write` over all keys by the root (node 0) at the start.
    pub writers: usize,
    /// Puts written in total.
    pub events: usize,
    /// Puts per simulated second, over all writers.
    pub rate_per_s: f64,
    /// When writing starts (grants go out at time 0).
    #[serde(default = "default_start")]
    pub start_ms: u64,
    /// Distinct record keys.
    #[serde(default = "default_keys")]
    pub keys: usize,
    /// Approximate JSON value size.
    #[serde(default = "default_value")]
    pub value_bytes: usize,
    /// Nodes that are down at the start and join at `late_join_ms`.
    #[serde(default)]
    pub late_joiners: usize,
    /// When late joiners join.
    #[serde(default)]
    pub late_join_ms: u64,
    /// Revocations by the root.
    #[serde(default)]
    pub revoke: Vec<Revocation>,
}

fn default_start() -> u64 {
    2000
}
fn default_keys() -> usize {
    100
}
fn default_value() -> usize {
    100
}

/// The root revokes one writer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// When.
    pub at_ms: u64,
    /// Writer index (0-based).
    pub writer: usize,
    /// The revoked writer keeps writing on a branch that ignores the revocation (its node goes
    /// deaf just before the revocation): valid events that must have no effect.
    #[serde(default)]
    pub blind_writes: usize,
    /// The writer was granted `Admin` (not only `Write`). On its blind branch it first grants
    /// `Write` to a sock puppet, and the puppet makes the blind writes: the revocation must
    /// cascade (DESIGN §3), leaving neither the grant nor the puppet's writes any effect.
    #[serde(default)]
    pub admin: bool,
}

/// A scheduled fault.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Split the network: by region (`by_region = true`) or a random fraction `split`.
    Partition {
        /// When.
        at_ms: u64,
        /// When it heals (the liveness phase heals everything anyway).
        heal_ms: u64,
        /// One side per region.
        #[serde(default)]
        by_region: bool,
        /// Otherwise, this fraction of nodes is cut off from the rest.
        #[serde(default = "half")]
        split: f64,
    },
    /// `count` random honest nodes crash; they restart at `restart_ms`, with or without their log.
    Crash {
        /// When.
        at_ms: u64,
        /// How many.
        count: usize,
        /// When they restart (never if absent).
        restart_ms: Option<u64>,
        /// Restart from the redo log (replayed) or from nothing but the genesis.
        #[serde(default)]
        with_log: bool,
    },
    /// `count` random honest nodes leave for good (clean disconnect).
    Leave {
        /// When.
        at_ms: u64,
        /// How many.
        count: usize,
    },
}

fn half() -> f64 {
    0.5
}

/// What a byzantine node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// Re-sign a put under another author's key (bad signature).
    Forge,
    /// Write without any grant (not authorized).
    NoGrant,
    /// Two events from one replica state (same author, same seq): valid, both kept.
    Equivocate,
    /// Re-send old events.
    Replay,
    /// Flip bytes of a valid event.
    Malformed,
    /// A put over the chain's size limit.
    Oversized,
    /// Random bytes.
    Garbage,
    /// Many unauthorized puts at once.
    Flood,
    /// Answer each new gossip message with a copy whose signature is corrupted (same event id,
    /// so the same gossip message id): tests whether a bad copy can shadow the genuine one.
    Shadow,
}

/// A byzantine node and its attacks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Adversary {
    /// The attack.
    pub attack: Attack,
    /// How many byzantine nodes run it.
    #[serde(default = "one_usize")]
    pub nodes: usize,
    /// First attack, ms.
    pub start_ms: u64,
    /// Attacks per node (for `shadow`: how many messages to answer).
    pub count: usize,
    /// Period between attacks, ms.
    #[serde(default = "default_every")]
    pub every_ms: u64,
}

fn one_usize() -> usize {
    1
}
fn default_every() -> u64 {
    500
}

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Reading the file failed.
    #[error("cannot read {path}: {err}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        err: std::io::Error,
    },
    /// The TOML is malformed or has a wrong or unknown field (the message has line and column).
    #[error("{path}: {err}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, with line, column and a snippet.
        err: String,
    },
    /// The values do not make sense together.
    #[error("{path}: invalid scenario: {msg}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        msg: String,
    },
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ScenarioError::Read {
            path: p.clone(),
            err,
        })?;
        Scenario::parse(&p, &text)
    }

    /// Parses and validates scenario text (`path` only names it in errors).
    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_string(),
            err: e.to_string(),
        })?;
        s.validate().map_err(|msg| ScenarioError::Invalid {
            path: path.to_string(),
            msg,
        })?;
        Ok(s)
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.network;
        let g = &self.gossip;
        let byz: usize = self.adversaries.iter().map(|a| a.nodes).sum();
        let m = &self.node;
        let checks: [(bool, String); 11] = [
            (self.nodes >= 2, "`nodes` must be at least 2".into()),
            (
                !n.regions.is_empty()
                    && n.rtt_ms.len() == n.regions.len()
                    && n.rtt_ms.iter().all(|r| r.len() == n.regions.len()),
                format!(
                    "`network.rtt_ms` must be a {0}x{0} matrix (one row and column per region)",
                    n.regions.len()
                ),
            ),
            (
                n.rtt_ms.iter().flatten().all(|&x| x >= 0.0) && n.jitter_ms >= 0.0,
                "`network.rtt_ms` and `jitter_ms` must not be negative".into(),
            ),
            (
                (0.0..0.9).contains(&n.loss),
                "`network.loss` is a probability in [0, 0.9)".into(),
            ),
            (
                n.uplink_mbps > 0.0 && n.connections >= 1,
                "`uplink_mbps` must be > 0 and `connections` >= 1".into(),
            ),
            (
                g.d_low <= g.d && g.d <= g.d_high && g.d >= 1 && g.heartbeat_ms > 0,
                "gossip degrees must satisfy 1 <= d_low <= d <= d_high, heartbeat_ms > 0".into(),
            ),
            (
                m.linger_ms >= 0.0
                    && m.timer_tick_ms >= 0.0
                    && m.cpu_per_msg_us >= 0.0
                    && m.cpu_per_event_us >= 0.0,
                "`node.linger_ms`, `timer_tick_ms`, `cpu_per_msg_us` and `cpu_per_event_us` \
                 must not be negative"
                    .into(),
            ),
            (
                (0.0..=1.0).contains(&m.cpu_after_share),
                "`node.cpu_after_share` is a share in [0, 1]".into(),
            ),
            (
                self.workload.writers >= 1
                    && self.workload.rate_per_s > 0.0
                    && self.workload.keys >= 1,
                "workload needs writers >= 1, rate_per_s > 0 and keys >= 1".into(),
            ),
            (
                1 + self.workload.writers + byz + self.workload.late_joiners <= self.nodes,
                format!(
                    "the root, {} writers, {} byzantine nodes and {} late joiners need more than {} nodes",
                    self.workload.writers, byz, self.workload.late_joiners, self.nodes
                ),
            ),
            (
                self.workload
                    .revoke
                    .iter()
                    .all(|r| r.writer < self.workload.writers),
                "`revoke.writer` must name a writer index below `workload.writers`".into(),
            ),
        ];
        if let Some((_, msg)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(msg);
        }
        self.validate_timing()
    }

    /// Everything the workload and the adversaries do must happen in the safety phase: the
    /// liveness phase compares the nodes with a reference built from what was sent before it.
    fn validate_timing(&self) -> Result<(), String> {
        let w = &self.workload;
        let writes_end = w.start_ms + (w.events as f64 * 1000.0 / w.rate_per_s).ceil() as u64;
        let mut last = writes_end.max(w.late_join_ms);
        for r in &w.revoke {
            last = last.max(r.at_ms + 50 * r.blind_writes as u64);
        }
        for a in self
            .adversaries
            .iter()
            .filter(|a| a.attack != Attack::Shadow)
        {
            last = last.max(a.start_ms + a.every_ms * a.count.saturating_sub(1) as u64);
        }
        if last >= self.safety_ms {
            return Err(format!(
                "the workload and attacks run until {last} ms but `safety_ms` is {}: raise \
                 `safety_ms` above {last} (the liveness phase must start after the last write)",
                self.safety_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "name = \"x\"\nnodes = 3\nsafety_ms = 1\nbogus = 2\n";
        let err = Scenario::parse("f.toml", text).unwrap_err().to_string();
        assert!(err.contains("f.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }
}
