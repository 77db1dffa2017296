//! The JSON report. Everything in it is a function of the scenario and the seed (maps are
//! `BTreeMap`s, floats are rounded), so two runs give byte-identical files. Wall-clock figures
//! (wall time, deliveries per second, peak RSS) live in a separate `timing.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::world::{Class, Status, World};

/// Percentiles of a distribution.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Dist {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Dist {
    /// From sorted samples, scaled by `scale`.
    pub fn of_sorted(v: &[u64], scale: f64) -> Dist {
        if v.is_empty() {
            return Dist::default();
        }
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 * scale;
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        Dist {
            count: v.len() as u64,
            mean: round3(sum / v.len() as f64 * scale),
            p50: round3(q(0.5)),
            p90: round3(q(0.9)),
            p99: round3(q(0.99)),
            max: round3(q(1.0)),
        }
    }

    /// From unsorted samples.
    pub fn of(mut v: Vec<u64>, scale: f64) -> Dist {
        v.sort_unstable();
        Dist::of_sorted(&v, scale)
    }
}

/// How fast the workload's puts spread (a writer's own acceptance left out).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PutFigures {
    /// Put → accepted by another node, over all (put, other node) pairs, ms.
    pub delivery_ms: Dist,
    /// Per put: until the first other node accepted it, ms.
    pub first_ms: Dist,
    /// Per put: until the last node that has it accepted it, ms.
    pub convergence_ms: Dist,
}

impl PutFigures {
    fn of(w: &World) -> PutFigures {
        let per_put = |times: &[u64]| {
            let v = (w.msgs.iter().zip(times))
                .filter(|(m, t)| m.put && **t > 0)
                .map(|(m, &t)| t - m.created)
                .collect();
            Dist::of(v, 1e-3)
        };
        PutFigures {
            delivery_ms: Dist::of(
                w.put_latencies.iter().map(|&(_, x)| u64::from(x)).collect(),
                1e-3,
            ),
            first_ms: per_put(&w.first_accept),
            convergence_ms: per_put(&w.last_accept),
        }
    }
}

/// The median time until the k-th other node has a put (k = 1, 2, …): a put's receivers
/// sorted by when they accepted it, and the median of each rank over the puts, ms. It shows
/// where the spread between the first and the last receiver comes from (`ate-calibrate`).
pub fn rank_profile(per_put: &mut [Vec<u64>]) -> Vec<f64> {
    let ranks = per_put.iter().map(Vec::len).max().unwrap_or(0);
    per_put.iter_mut().for_each(|v| v.sort_unstable());
    (0..ranks)
        .map(|k| {
            let at: Vec<u64> = per_put.iter().filter_map(|v| v.get(k).copied()).collect();
            Dist::of(at, 1e-3).p50
        })
        .collect()
}

impl PutFigures {
    /// The rank profile of the workload's puts in a finished world.
    pub(crate) fn ranks(w: &World) -> Vec<f64> {
        let mut by_put: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        for &(i, lat) in &w.put_latencies {
            by_put.entry(i).or_default().push(u64::from(lat));
        }
        let mut v: Vec<Vec<u64>> = by_put.into_values().collect();
        rank_profile(&mut v)
    }
}

/// Traffic per node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerNode {
    /// Messages sent.
    pub messages_sent: Dist,
    /// Bytes sent.
    pub bytes_sent: Dist,
    /// Messages received.
    pub messages_received: Dist,
    /// Bytes received.
    pub bytes_received: Dist,
}

/// A run's report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// All checkers passed and the nodes converged.
    pub passed: bool,
    /// Checker failures (at most a few dozen).
    pub violations: Vec<String>,
    /// Messages injected, by class (valid, blind, invalid, junk).
    pub injected: BTreeMap<String, u64>,
    /// Events in the converged view (genesis included).
    pub reference_events: usize,
    /// Time from the start of the liveness phase to one digest on all live nodes, ms.
    pub liveness_converged_ms: Option<f64>,
    /// Simulated time at the end, ms.
    pub simulated_ms: f64,
    /// Live honest nodes at the end.
    pub live_nodes: usize,
    /// Node-event pairs: time from creation to acceptance by that node, ms.
    pub delivery_latency_ms: Dist,
    /// The workload's puts alone (no grants, attacks or revocations), as `ate-calibrate`
    /// measures them on real nodes.
    pub puts: PutFigures,
    /// Per event: time from creation to its acceptance by the last node that has it, ms.
    pub event_convergence_ms: Dist,
    /// Traffic per node.
    pub per_node: PerNode,
    /// Messages delivered by the network model.
    pub deliveries: u64,
    /// Gossip deliveries, and those dropped by the seen cache.
    pub gossip_deliveries: u64,
    /// Gossip deliveries dropped as duplicates by the seen cache.
    pub gossip_duplicates: u64,
    /// Duplicates per gossip delivery.
    pub duplicates_per_delivery: f64,
    /// Events a replica was handed but already had (sync overlap, replays).
    pub replica_duplicates: u64,
    /// Messages dropped because the link was down (crash, partition, leave).
    pub dropped_no_link: u64,
    /// Rejected events by reason label, over all nodes.
    pub rejected: BTreeMap<String, u64>,
    /// Events dropped by full pending buffers.
    pub overloaded: u64,
    /// Local writes the writer's own replica refused (e.g. the grant had not arrived).
    pub local_rejected: u64,
    /// Invalid events accepted by honest nodes (must be 0).
    pub invalid_accepted: u64,
    /// Equivocations detected, summed over live nodes.
    pub equivocations_detected: u64,
    /// Replica heap by the protocol's own accounting at the end (deterministic), MiB.
    pub replica_memory_mib: f64,
}

impl Report {
    pub(crate) fn build(w: &World, conv: Option<u64>, ref_len: usize, passed: bool) -> Report {
        let mut lat: Vec<u64> = w.latencies.iter().map(|&x| u64::from(x)).collect();
        lat.sort_unstable();
        let ev_conv: Vec<u64> = w
            .msgs
            .iter()
            .zip(&w.last_accept)
            .filter(|(m, t)| (m.class == Class::Valid || m.class == Class::Blind) && **t > 0)
            .map(|(m, &t)| t - m.created)
            .collect();
        let tr =
            |f: fn(&crate::world::Traffic) -> u64| Dist::of(w.traffic.iter().map(f).collect(), 1.0);
        let mut injected = BTreeMap::new();
        for m in &w.msgs {
            let k = match m.class {
                Class::Valid => "valid",
                Class::Blind => "blind",
                Class::Invalid => "invalid",
                Class::Junk => "junk",
                Class::Shadow => "shadow",
            };
            *injected.entry(k.to_string()).or_insert(0) += 1;
        }
        let c = &w.counters;
        let live: Vec<_> = (w.nodes.iter().zip(&w.link))
            .filter(|(n, l)| l.status == Status::Up && !n.byzantine)
            .filter_map(|(n, _)| n.replica.as_deref())
            .collect();
        Report {
            scenario: w.sc.name.clone(),
            seed: w.seed,
            nodes: w.nodes.len(),
            passed,
            violations: w.violations.iter().take(50).cloned().collect(),
            injected,
            reference_events: ref_len,
            liveness_converged_ms: conv.map(|us| round3(us as f64 / 1000.0)),
            simulated_ms: round3(w.now as f64 / 1000.0),
            live_nodes: live.len(),
            delivery_latency_ms: Dist::of_sorted(&lat, 1e-3),
            puts: PutFigures::of(w),
            event_convergence_ms: Dist::of(ev_conv, 1e-3),
            per_node: PerNode {
                messages_sent: tr(|t| t.sent_msgs),
                bytes_sent: tr(|t| t.sent_bytes),
                messages_received: tr(|t| t.recv_msgs),
                bytes_received: tr(|t| t.recv_bytes),
            },
            deliveries: c.deliveries,
            gossip_deliveries: c.gossip_deliveries,
            gossip_duplicates: c.gossip_duplicates,
            duplicates_per_delivery: round3(
                c.gossip_duplicates as f64 / c.gossip_deliveries.max(1) as f64,
            ),
            replica_duplicates: c.replica_duplicates,
            dropped_no_link: c.dropped_no_link,
            rejected: c
                .rejected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            overloaded: c.overloaded,
            local_rejected: c.local_rejected,
            invalid_accepted: c.invalid_accepted,
            equivocations_detected: live.iter().map(|r| r.stats().equivocations).sum(),
            replica_memory_mib: round3(w.replica_bytes() as f64 / (1 << 20) as f64),
        }
    }
}

/// Data for the plots, kept beside the report.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Sorted delivery latencies, ms.
    pub latencies_ms: Vec<f64>,
    /// Sorted per-event convergence times, ms.
    pub event_ms: Vec<f64>,
    /// (simulated s, mean bytes sent per node, max bytes sent by a node).
    pub bytes: Vec<(f64, f64, f64)>,
}

impl Series {
    pub(crate) fn of(w: &World) -> Series {
        let mut lat: Vec<u32> = w.latencies.clone();
        lat.sort_unstable();
        let step = (lat.len() / 2000).max(1);
        let mut ev: Vec<f64> = w
            .msgs
            .iter()
            .zip(&w.last_accept)
            .filter(|(m, t)| (m.class == Class::Valid || m.class == Class::Blind) && **t > 0)
            .map(|(m, &t)| (t - m.created) as f64 / 1000.0)
            .collect();
        ev.sort_by(f64::total_cmp);
        Series {
            latencies_ms: lat
                .iter()
                .step_by(step)
                .map(|&x| f64::from(x) / 1000.0)
                .collect(),
            event_ms: ev,
            bytes: w
                .samples
                .iter()
                .map(|&(t, m, x)| (t as f64 / 1e6, m, x as f64))
                .collect(),
        }
    }
}
