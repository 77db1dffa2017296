//! # ate-node — the daemon behind `ate node run`, and the in-process node of the `ate` crate
//!
//! A node follows chains: for each it keeps a protocol [`Replica`](ate_protocol::Replica),
//! gossips events on the topic `ate/1/<chain-id>` (gossipsub, anonymous authenticity, manual
//! validation by the replica's verdicts), catches peers up over the `/ate/sync/1`
//! request-response protocol, finds peers by mDNS and by resolving `--join` DNS names, and
//! serves a local HTTP API.
//!
//! ## Error policy
//! Library functions return typed errors ([`NodeError`]) or `anyhow` at start-up edges;
//! bad bytes from peers are verdicts and log lines, never crashes; the HTTP API answers bad
//! requests with a 4xx and a JSON `{"error": …}` that says what was wrong.

pub mod api;
mod behaviour;
mod bundle;
pub mod discovery;
mod event_loop;
pub mod journal;
pub mod keys;
pub mod metrics;
mod node;
mod preverify;
pub mod wire;

pub use node::{
    ChainStatus, Client, Node, NodeConfig, NodeError, NodeStatus, default_quic, default_tcp,
};
