//! Counters for `/metrics` (Prometheus text format).
//!
//! Network counters are atomics bumped by the event loop; per-chain figures (events, pending,
//! rejections by reason) come from the replicas' own stats at scrape time, so there is one
//! source of truth for each number.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::node::ChainStatus;

/// Network counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Gossip messages received.
    pub gossip_in_msgs: AtomicU64,
    /// Chains loaded from a snapshot plus the log after it.
    pub snapshots_restored: AtomicU64,
    /// Snapshots that failed their checks or did not match the log (the log was replayed).
    pub snapshots_ignored: AtomicU64,
    /// Events received in gossip bundles.
    pub gossip_in_events: AtomicU64,
    /// Gossip bytes received.
    pub gossip_in_bytes: AtomicU64,
    /// Gossip messages published.
    pub gossip_out_msgs: AtomicU64,
    /// Gossip bytes published.
    pub gossip_out_bytes: AtomicU64,
    /// Publishes that found every peer queue full and were retried later.
    pub gossip_backpressure: AtomicU64,
    /// Sync requests sent.
    pub sync_out_msgs: AtomicU64,
    /// Sync bytes sent (requests and responses).
    pub sync_out_bytes: AtomicU64,
    /// Sync requests received.
    pub sync_in_msgs: AtomicU64,
    /// Sync bytes received (requests and responses).
    pub sync_in_bytes: AtomicU64,
    /// Failed sync requests (timeouts, refused streams, bad frames).
    pub sync_failures: AtomicU64,
    /// Replica calls that validated gossip (messages per call = in / batches).
    pub gossip_batches: AtomicU64,
    /// Dials started from DNS joins and mDNS.
    pub dials: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders everything in Prometheus text format.
    pub fn render(&self, peers: usize, chains: &[ChainStatus]) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            (
                "ate_gossip_messages_total",
                "direction=\"in\"",
                get(&self.gossip_in_msgs),
            ),
            (
                "ate_gossip_messages_total",
                "direction=\"out\"",
                get(&self.gossip_out_msgs),
            ),
            (
                "ate_snapshots_total",
                "result=\"restored\"",
                get(&self.snapshots_restored),
            ),
            (
                "ate_snapshots_total",
                "result=\"ignored\"",
                get(&self.snapshots_ignored),
            ),
            (
                "ate_gossip_events_total",
                "direction=\"in\"",
                get(&self.gossip_in_events),
            ),
            (
                "ate_gossip_bytes_total",
                "direction=\"in\"",
                get(&self.gossip_in_bytes),
            ),
            (
                "ate_gossip_bytes_total",
                "direction=\"out\"",
                get(&self.gossip_out_bytes),
            ),
            (
                "ate_gossip_backpressure_total",
                "",
                get(&self.gossip_backpressure),
            ),
            (
                "ate_sync_messages_total",
                "direction=\"in\"",
                get(&self.sync_in_msgs),
            ),
            (
                "ate_sync_messages_total",
                "direction=\"out\"",
                get(&self.sync_out_msgs),
            ),
            (
                "ate_sync_bytes_total",
                "direction=\"in\"",
                get(&self.sync_in_bytes),
            ),
            (
                "ate_sync_bytes_total",
                "direction=\"out\"",
                get(&self.sync_out_bytes),
            ),
            ("ate_sync_failures_total", "", get(&self.sync_failures)),
            ("ate_dials_total", "", get(&self.dials)),
            (
                "ate_gossip_validation_batches_total",
                "",
                get(&self.gossip_batches),
            ),
        ];
        for (name, labels, v) in counters {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
        let _ = writeln!(out, "ate_peers {peers}");
        for c in chains {
            let l = format!("chain=\"{}\"", c.id);
            let _ = writeln!(out, "ate_chain_events{{{l}}} {}", c.events);
            let _ = writeln!(out, "ate_chain_pending{{{l}}} {}", c.pending);
            let _ = writeln!(out, "ate_events_accepted_total{{{l}}} {}", c.stats.accepted);
            let _ = writeln!(
                out,
                "ate_events_duplicate_total{{{l}}} {}",
                c.stats.duplicates
            );
            let _ = writeln!(
                out,
                "ate_pending_dropped_total{{{l}}} {}",
                c.stats.pending_dropped
            );
            let _ = writeln!(
                out,
                "ate_equivocations_total{{{l}}} {}",
                c.stats.equivocations
            );
            for (reason, n) in &c.stats.rejected {
                let _ = writeln!(
                    out,
                    "ate_events_rejected_total{{{l},reason=\"{reason}\"}} {n}"
                );
            }
        }
        out
    }
}
