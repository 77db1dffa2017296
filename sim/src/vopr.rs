//! The two phases of a run, after TigerBeetle's VOPR.
//!
//! **Safety**: the workload, the adversaries and the faults run; cheap checkers run after
//! every step (an honest node's `Valid` verdict on an event the simulator built to be invalid is
//! caught where it happens, and pending buffers stay in bounds), and the full checkers run every
//! `full_check_every_ms` (no honest node holds an invalid event; a blind write by a revoked
//! writer has no effect wherever the revocation is known). **Liveness**: faults stop, the
//! network heals, crashed nodes restart, and every live honest node must reach the event set
//! and view digest of a reference replica fed every message ever sent, within the budget.
//! A failed run names its seed and the command that reproduces it.

use ate_protocol::{Input, Replica};

use crate::report::Report;
use crate::scenario::Scenario;
use crate::world::{Status, World};

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The deterministic report.
    pub report: Report,
    /// Simulated message deliveries (for the throughput figure).
    pub deliveries: u64,
    /// Whether every checker passed and the nodes converged.
    pub passed: bool,
    /// Data for the plots.
    pub series: crate::report::Series,
    /// Median time until the k-th other node has a put, ms ([`crate::report::rank_profile`]).
    pub put_ranks_ms: Vec<f64>,
}

/// Progress callback: (simulated ms so far, planned simulated ms).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Runs a scenario with a seed.
pub fn run(sc: &Scenario, seed: u64, progress: Progress<'_>) -> Outcome {
    run_threads(sc, seed, 1, progress)
}

/// Runs a scenario with a seed, with replica calls spread over `threads` threads where the
/// scenario allows it (see `batch`); the outcome does not depend on `threads`.
pub fn run_threads(sc: &Scenario, seed: u64, threads: usize, progress: Progress<'_>) -> Outcome {
    let mut w = World::new_world(sc.clone(), seed);
    w.threads = threads.max(1);
    w.plan();
    w.build();
    w.lookahead_us = w.lookahead();
    w.loss = sc.network.loss;
    let total_ms = sc.safety_ms + sc.liveness_budget_ms;
    let step_ms = sc.full_check_every_ms.max(100);
    let mut t = 0;
    while t < sc.safety_ms {
        t = (t + step_ms).min(sc.safety_ms);
        w.run_until(t * 1000);
        w.full_check();
        progress(t, total_ms);
    }
    w.stop_faults();
    let reference = w.reference();
    let ref_len = reference.as_ref().map_or(0, |r| r.len());
    let mut converged_at = None;
    let live_start = w.now;
    let deadline = live_start + sc.liveness_budget_ms * 1000;
    while w.now < deadline {
        w.run_until((w.now + 50_000).min(deadline));
        if w.all_have(ref_len) {
            converged_at = Some(w.now - live_start);
            break;
        }
        progress(w.now / 1000, total_ms);
    }
    w.full_check();
    let agree = match &reference {
        Some(r) => w.compare_with(r),
        None => false,
    };
    if converged_at.is_none() {
        let lagging = w.lagging(ref_len);
        w.violations.push(format!(
            "liveness: {lagging} live nodes did not reach the reference's {ref_len} events within {} ms",
            sc.liveness_budget_ms
        ));
    }
    let passed = w.violations.is_empty() && agree && converged_at.is_some();
    let report = Report::build(&w, converged_at, ref_len, passed);
    Outcome {
        report,
        deliveries: w.counters.deliveries,
        passed,
        series: crate::report::Series::of(&w),
        put_ranks_ms: crate::report::PutFigures::ranks(&w),
    }
}

impl World {
    fn honest_live(&self) -> impl Iterator<Item = (u32, &Replica)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| {
            let live = self.link[i].status == Status::Up && !n.byzantine;
            n.replica.as_deref().filter(|_| live).map(|r| (i as u32, r))
        })
    }

    /// The expensive checkers: no invalid event stored, blind writes without effect.
    pub(crate) fn full_check(&mut self) {
        let mut found = Vec::new();
        for (n, r) in self.honest_live() {
            for id in &self.invalid_ids {
                if r.contains(id) {
                    found.push(format!(
                        "safety: node {n} holds invalid event {}",
                        id.short()
                    ));
                }
            }
            for rv in &self.actors.revokes {
                if !r.contains(rv) {
                    continue;
                }
                for g in &self.actors.blind_grants {
                    if r.admin_in_effect(g) == Some(true) {
                        found.push(format!(
                            "safety: node {n} keeps grant {} by a revoked admin in effect after {}",
                            g.short(),
                            rv.short()
                        ));
                    }
                }
                for b in &self.actors.blind {
                    let eff = r.view().get_by_id(b).map(|v| v.effective);
                    if eff == Some(true) {
                        found.push(format!(
                            "safety: node {n} gives effect to blind write {} after revocation {}",
                            b.short(),
                            rv.short()
                        ));
                    }
                }
            }
        }
        found.sort();
        found.truncate(20);
        self.violations.extend(found);
    }

    /// A fresh replica fed every message ever injected: what all nodes must end up with.
    fn reference(&mut self) -> Option<Box<Replica>> {
        let mut r = self.new_replica(u32::MAX)?;
        let all: Vec<Vec<u8>> = self.msgs.iter().map(|m| m.env.bytes().to_vec()).collect();
        let _ = r.handle(self.now / 1000, Input::Replay(all));
        Some(r)
    }

    fn all_have(&self, len: usize) -> bool {
        self.honest_live().all(|(_, r)| r.len() == len)
    }

    fn lagging(&self, len: usize) -> usize {
        self.honest_live().filter(|(_, r)| r.len() != len).count()
    }

    /// Every live honest node has the reference's event ids and view digest.
    fn compare_with(&mut self, reference: &Replica) -> bool {
        let ids = reference.event_ids();
        let digest = reference.view().digest();
        let mut bad = Vec::new();
        for (n, r) in self.honest_live() {
            if r.event_ids() != ids || r.view().digest() != digest {
                bad.push(n);
            }
        }
        if let Some(n) = bad.first() {
            self.violations.push(format!(
                "convergence: {} live nodes (first: node {n}) differ from the reference",
                bad.len()
            ));
        }
        bad.is_empty()
    }
}
