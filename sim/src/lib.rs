//! # ate-sim — the deterministic simulator (DESIGN §9)
//!
//! Thousands of real [`ate_protocol::Replica`]s in one process, over a discrete-event network
//! model: virtual time, one seeded RNG with per-node streams, regions with an RTT matrix,
//! jitter, loss, bandwidth, partitions, churn, a gossipsub-like mesh, honest workloads and
//! adversaries. The same scenario and seed give a byte-identical report.
//!
//! * [`scenario`]: the TOML scenario format, validated.
//! * `world`: the engine (queue, nodes, wire); `gossip`: the mesh; `actors`: workload and
//!   attacks; `faults`: partitions and churn; [`vopr`]: the safety and liveness phases.
//! * [`report`] and [`plot`]: JSON report and SVG plots.
//! * [`memo`]: the memoizing signature checker all simulated nodes share.
//!
//! Determinism: `report.json` is a function of the scenario and the seed (byte-identical across
//! runs; a test checks it). Wall-clock figures (wall and CPU time, deliveries per second, peak
//! RSS) are not, so the binary writes them to a separate `timing.json`.
//!
//! Modelling choices worth knowing: loss is TCP-like (a lost transmission arrives one
//! retransmission timeout later, doubling per repeat), since libp2p runs over TCP or QUIC;
//! GRAFT/PRUNE take effect on both ends at once; anti-entropy is a `PeerUp` to one random peer
//! every `anti_entropy_ms` (the replica has no timer of its own for it); gossip message ids are
//! event ids (DESIGN §5), so a corrupted copy shares the genuine event's id (`shadow` attack).
//!
//! Error policy: a bad scenario is a [`scenario::ScenarioError`] naming file, line and field;
//! a checker failure is a failed [`vopr::Outcome`], never a panic.

/// The protocol core the simulator drives.
pub use ate_protocol as protocol;

mod actors;
mod batch;
mod faults;
mod gossip;
mod host;
pub mod memo;
pub mod plot;
mod queue;
pub mod report;
pub mod rng;
pub mod scenario;
mod size;
pub mod vopr;
mod world;

pub use scenario::Scenario;
pub use vopr::{Outcome, run, run_threads};

#[cfg(test)]
mod tests;
