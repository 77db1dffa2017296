//! A host whose cores the nodes share fairly (`node.host_sharing = "fair"`): every task that
//! wants CPU progresses at once, each at `cores / tasks` of a core (at most one core), which
//! is what Linux's scheduler approximates for processes on one machine. Unlike first come
//! first served, a task that arrives while others run does not wait for them to finish: a
//! burst of equal tasks started together ends together, late, instead of one after another.
//!
//! When a task is done is only known once no other arrives before it, so the host keeps one
//! pending check event (the earliest end under the current sharing) and a generation number
//! that makes every earlier check stale.

use crate::world::{Ev, Micros};

/// Work below this is done (float rounding of the shares).
const DONE_EPS: f64 = 1e-3;

#[derive(Debug)]
struct Task {
    /// CPU µs still to spend.
    left: f64,
    /// What happens when it is done (None: the work only keeps the cores busy).
    then: Option<Ev>,
}

/// The tasks on a fairly shared host, in the order they came (which keeps runs
/// deterministic when several end at once).
#[derive(Debug)]
pub(crate) struct FairHost {
    cores: f64,
    tasks: Vec<Task>,
    /// When `left` was last brought up to date.
    at: Micros,
    /// The generation of the one check event that is not stale.
    pub(crate) generation: u64,
}

impl FairHost {
    pub(crate) fn new(cores: usize) -> FairHost {
        FairHost {
            cores: cores.max(1) as f64,
            tasks: Vec::new(),
            at: 0,
            generation: 0,
        }
    }

    /// The share of a core each task gets.
    fn rate(&self) -> f64 {
        (self.cores / self.tasks.len().max(1) as f64).min(1.0)
    }

    fn advance(&mut self, now: Micros) {
        let spent = now.saturating_sub(self.at) as f64 * self.rate();
        for t in &mut self.tasks {
            t.left -= spent;
        }
        self.at = now;
    }

    /// Adds a task; returns when the next check is due (the caller schedules it with the new
    /// generation).
    pub(crate) fn submit(&mut self, now: Micros, work_us: u64, then: Option<Ev>) -> Micros {
        self.advance(now);
        self.tasks.push(Task {
            left: work_us as f64,
            then,
        });
        self.next_check()
    }

    /// Takes the tasks that are done at `now`, in the order they came; the second value is
    /// when the next check is due, if any task is left.
    pub(crate) fn finish(&mut self, now: Micros) -> (Vec<Ev>, Option<Micros>) {
        self.advance(now);
        let mut done = Vec::new();
        let mut k = 0;
        while k < self.tasks.len() {
            if self.tasks[k].left <= DONE_EPS {
                let t = self.tasks.remove(k);
                done.extend(t.then);
            } else {
                k += 1;
            }
        }
        let next = (!self.tasks.is_empty()).then(|| self.next_check());
        (done, next)
    }

    /// The earliest end under the current sharing, rounded up to a whole µs; bumps the
    /// generation (any check scheduled before is stale).
    fn next_check(&mut self) -> Micros {
        self.generation += 1;
        let least = (self.tasks.iter().map(|t| t.left)).fold(f64::INFINITY, f64::min);
        self.at + (least.max(0.0) / self.rate()).ceil() as Micros
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u32) -> Option<Ev> {
        Some(Ev::Heartbeat(n))
    }

    fn ends(h: &mut FairHost, mut next: Micros) -> Vec<(Micros, u32)> {
        let mut out = Vec::new();
        loop {
            let (done, more) = h.finish(next);
            for e in done {
                if let Ev::Heartbeat(n) = e {
                    out.push((next, n));
                }
            }
            match more {
                Some(t) => next = t,
                None => return out,
            }
        }
    }

    #[test]
    fn equal_tasks_started_together_end_together() {
        let mut h = FairHost::new(2);
        let mut next = 0;
        for n in 0..4 {
            next = h.submit(0, 100, sample(n));
        }
        // 4 tasks on 2 cores: each at half a core, 200 µs.
        assert_eq!(
            ends(&mut h, next),
            vec![(200, 0), (200, 1), (200, 2), (200, 3)]
        );
    }

    #[test]
    fn a_late_task_shares_instead_of_waiting() {
        let mut h = FairHost::new(1);
        h.submit(0, 100, sample(0));
        // At 50 µs the first has 50 left; both then run at half speed.
        let next = h.submit(50, 100, sample(1));
        assert_eq!(next, 150);
        // The first ends at 150 (50 more at half speed); the second, 50 done by then, runs
        // alone for its last 50.
        assert_eq!(ends(&mut h, next), vec![(150, 0), (200, 1)]);
    }

    #[test]
    fn fewer_tasks_than_cores_run_at_full_speed() {
        let mut h = FairHost::new(4);
        h.submit(10, 30, None);
        let next = h.submit(10, 70, sample(7));
        assert_eq!(ends(&mut h, next), vec![(80, 7)]);
        assert_eq!(h.tasks.len(), 0);
    }
}
