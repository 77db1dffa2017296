//! Counters for `/metrics` (Prometheus text format).
//!
//! Network counters are atomics bumped by the event loop; per-chain figures (events, pending,
//! rejections by reason) come from the replicas' own stats at scrape time, so there is one
//! source of truth for each number.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use ate_protocol::replica::SyncStats;

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
    /// Reconciliation, summed over chains (deltas of the replicas' `SyncStats`).
    pub recon: ReconCounters,
}

/// Reconciliation and catch-up counters (see `ate_protocol::replica::SyncStats`).
#[derive(Debug, Default)]
pub struct ReconCounters {
    /// Sessions we started.
    pub sessions_started: AtomicU64,
    /// Sessions that ended normally.
    pub sessions_done: AtomicU64,
    /// Sessions that failed, expired or were cut by a disconnect.
    pub sessions_failed: AtomicU64,
    /// Reconciliation messages received (rounds).
    pub rounds: AtomicU64,
    /// Reconciliation messages sent.
    pub msgs_sent: AtomicU64,
    /// Ranges sent.
    pub ranges_sent: AtomicU64,
    /// Ranges received.
    pub ranges_received: AtomicU64,
    /// Reconciliation bytes sent.
    pub bytes_sent: AtomicU64,
    /// Reconciliation bytes received.
    pub bytes_received: AtomicU64,
    /// Ids found missing here.
    pub ids_we_lack: AtomicU64,
    /// Ids found missing at peers.
    pub ids_peer_lacks: AtomicU64,
    /// Events streamed to peers.
    pub events_streamed: AtomicU64,
    /// Batches streamed to peers.
    pub batches_streamed: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds what a replica call changed in its reconciliation counters.
    pub fn add_sync(&self, before: &SyncStats, after: &SyncStats) {
        let r = &self.recon;
        let pairs = [
            (
                &r.sessions_started,
                before.sessions_started,
                after.sessions_started,
            ),
            (&r.sessions_done, before.sessions_done, after.sessions_done),
            (
                &r.sessions_failed,
                before.sessions_failed,
                after.sessions_failed,
            ),
            (&r.rounds, before.rounds, after.rounds),
            (&r.msgs_sent, before.msgs_sent, after.msgs_sent),
            (&r.ranges_sent, before.ranges_sent, after.ranges_sent),
            (
                &r.ranges_received,
                before.ranges_received,
                after.ranges_received,
            ),
            (&r.bytes_sent, before.bytes_sent, after.bytes_sent),
            (
                &r.bytes_received,
                before.bytes_received,
                after.bytes_received,
            ),
            (&r.ids_we_lack, before.ids_we_lack, after.ids_we_lack),
            (
                &r.ids_peer_lacks,
                before.ids_peer_lacks,
                after.ids_peer_lacks,
            ),
            (
                &r.events_streamed,
                before.events_streamed,
                after.events_streamed,
            ),
            (
                &r.batches_streamed,
                before.batches_streamed,
                after.batches_streamed,
            ),
        ];
        for (counter, b, a) in pairs {
            if a > b {
                Metrics::add(counter, a - b);
            }
        }
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
        let r = &self.recon;
        let recon = [
            (
                "ate_recon_sessions_total",
                "result=\"started\"",
                &r.sessions_started,
            ),
            (
                "ate_recon_sessions_total",
                "result=\"done\"",
                &r.sessions_done,
            ),
            (
                "ate_recon_sessions_total",
                "result=\"failed\"",
                &r.sessions_failed,
            ),
            ("ate_recon_rounds_total", "", &r.rounds),
            (
                "ate_recon_messages_total",
                "direction=\"out\"",
                &r.msgs_sent,
            ),
            (
                "ate_recon_ranges_total",
                "direction=\"out\"",
                &r.ranges_sent,
            ),
            (
                "ate_recon_ranges_total",
                "direction=\"in\"",
                &r.ranges_received,
            ),
            ("ate_recon_bytes_total", "direction=\"out\"", &r.bytes_sent),
            (
                "ate_recon_bytes_total",
                "direction=\"in\"",
                &r.bytes_received,
            ),
            ("ate_recon_ids_total", "missing=\"here\"", &r.ids_we_lack),
            ("ate_recon_ids_total", "missing=\"peer\"", &r.ids_peer_lacks),
            ("ate_sync_streamed_events_total", "", &r.events_streamed),
            ("ate_sync_streamed_batches_total", "", &r.batches_streamed),
        ];
        let counters = counters
            .into_iter()
            .chain(recon.into_iter().map(|(n, l, c)| (n, l, get(c))));
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
