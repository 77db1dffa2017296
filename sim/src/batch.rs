//! Replica calls in parallel, with the results of a sequential run.
//!
//! Conservative parallel simulation (Chandy–Misra's lookahead): no message arrives sooner
//! than the network's shortest delay after it was sent, so deliveries that fall within that
//! span of the earliest one cannot cause each other. Such a run of deliveries is a *batch*,
//! handled in three phases:
//!
//! 1. In queue order, everything up to the replica call (link checks, counters, the seen
//!    cache, IHAVE/IWANT answers); the replica calls are deferred as [`Job`]s.
//! 2. The jobs run, a node's jobs in order, different nodes on different threads. A replica
//!    touches only itself and the shared memoizing checker, whose verdicts are pure.
//! 3. In queue order again, each job's invariants and outputs: forwarding, sync messages,
//!    latency records. Everything these schedule lands after the batch.
//!
//! Which thread ran a job changes nothing, so a run is the same with any number of threads
//! (a test checks it). Anything else (heartbeats, actions, faults, samples) ends a batch, and
//! scenarios with adversaries or a `[node]` cost model run one event at a time.

use ate_protocol::{Input, Output, Replica};

use crate::world::{Ev, Micros, Wire, World};

/// A deferred replica call.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) at: Micros,
    pub(crate) node: u32,
    pub(crate) input: Input,
    pub(crate) gossip: Option<(u32, u32)>,
}

/// What a replica call produced, with what the per-step invariants need.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) before: usize,
    pub(crate) after: usize,
    pub(crate) pending: usize,
    pub(crate) outs: Vec<Output>,
}

/// One replica call at simulated time `at`.
pub(crate) fn handle(rep: &mut Replica, at: Micros, input: Input) -> Done {
    let before = rep.len();
    let mut outs = rep.handle(at / 1000, input);
    // What the simulator never reads is dropped here, on the thread that allocated it:
    // memory freed on another thread contends for the allocator's lock of this one.
    outs.retain_mut(|o| match o {
        Output::Persist { bytes, .. } => {
            *bytes = Vec::new();
            true
        }
        Output::Changed(_) => false,
        _ => true,
    });
    Done {
        before,
        after: rep.len(),
        pending: rep.pending_len(),
        outs,
    }
}

/// Polls for a worker's results before sleeping, at most (some tens of µs).
const SPINS: usize = 2000;

/// Fewer jobs than this run on the calling thread (spawning would cost more).
const MIN_PARALLEL_JOBS: usize = 16;

impl World {
    /// The shortest delay the network model can give a message, µs (0 when batching must
    /// stay off for this scenario).
    pub(crate) fn lookahead(&self) -> u64 {
        let sc = &self.sc;
        let m = &sc.node;
        let costly = m.linger_ms > 0.0 || m.cpu_per_msg_us > 0.0 || m.cpu_per_event_us > 0.0;
        if costly || !sc.adversaries.is_empty() {
            return 0;
        }
        let shortest_ms = (sc.network.rtt_ms.iter().flatten())
            .map(|&rtt| rtt / 2.0 - sc.network.jitter_ms)
            .fold(f64::INFINITY, f64::min);
        if shortest_ms.is_finite() && shortest_ms > 0.0 {
            (shortest_ms * 1000.0).floor() as u64
        } else {
            0
        }
    }

    pub(crate) fn next_is_batchable(&mut self) -> bool {
        self.queue.peek().is_some_and(|e| {
            matches!(
                e.ev,
                Ev::Deliver {
                    wire: Wire::Gossip(_) | Wire::Sync(_) | Wire::IHave(_) | Wire::IWant(_),
                    ..
                }
            )
        })
    }

    /// Runs one batch starting at the next entry (see the module documentation).
    pub(crate) fn run_batch(&mut self, until: Micros) {
        let Some(start) = self.queue.peek_at() else {
            return;
        };
        let end = start + self.lookahead_us;
        self.deferred = Some(Vec::new());
        while let Some(at) = self.queue.peek_at() {
            if at >= end || at > until || !self.next_is_batchable() {
                break;
            }
            let Some(e) = self.queue.pop() else { break };
            self.now = e.at;
            if let Ev::Deliver { to, from, wire } = e.ev {
                self.deliver(to, from, wire);
            }
        }
        let jobs = self.deferred.take().unwrap_or_default();
        let meta: Vec<Meta> = jobs.iter().map(|j| (j.at, j.node, j.gossip)).collect();
        let done = self.run_jobs(jobs);
        for ((at, node, gossip), done) in meta.into_iter().zip(done) {
            self.now = at;
            if let Some(done) = done {
                self.finish_feed(node, done, gossip);
            }
        }
    }

    /// Phase 2: the replica calls, on `self.threads` threads; results in job order.
    fn run_jobs(&mut self, jobs: Vec<Job>) -> Vec<Option<Done>> {
        let threads = self.threads.max(1);
        let n = jobs.len();
        if threads == 1 || n < MIN_PARALLEL_JOBS {
            return jobs.into_iter().map(|j| self.run_one(j)).collect();
        }
        // Each node's jobs go to one thread, in order; a node goes to the thread with the
        // fewest jobs so far (deterministic, and the result does not depend on it anyway).
        // Its replica travels with it; a job names the replica by its place in the share.
        let mut owner: crate::memo::FastMap<u32, (usize, usize)> = Default::default();
        let mut load = vec![0usize; threads];
        let mut shares: Vec<Vec<(usize, usize, Job)>> = (0..threads).map(|_| Vec::new()).collect();
        let mut reps: Vec<Vec<(u32, Box<Replica>)>> = (0..threads).map(|_| Vec::new()).collect();
        for (k, j) in jobs.into_iter().enumerate() {
            let (t, at) = *owner.entry(j.node).or_insert_with(|| {
                let t = (0..threads).min_by_key(|&t| (load[t], t)).unwrap_or(0);
                match self.nodes[j.node as usize].replica.take() {
                    Some(r) => {
                        reps[t].push((j.node, r));
                        (t, reps[t].len() - 1)
                    }
                    None => (t, usize::MAX),
                }
            });
            load[t] += 1;
            shares[t].push((k, at, j));
        }
        // This thread takes the first share; the pool's workers the others.
        let mut shares = shares.into_iter();
        let mut reps = reps.into_iter();
        let (mine, mut my_reps) = (
            shares.next().unwrap_or_default(),
            reps.next().unwrap_or_default(),
        );
        let pool = self.pool.get_or_insert_with(|| Pool::new(threads - 1));
        let sent = pool.send(shares.zip(reps));
        let mut results = vec![work(mine, &mut my_reps)];
        let mut back = vec![my_reps];
        let returned = pool.collect(sent);
        // Workers only stop when a replica call panicked; the run cannot go on without the
        // replicas they held.
        assert_eq!(returned.len(), sent, "a batch worker thread died");
        for (done, reps) in returned {
            results.push(done);
            back.push(reps);
        }
        let reps = back;
        for (node, r) in reps.into_iter().flatten() {
            self.nodes[node as usize].replica = Some(r);
        }
        let mut out: Vec<Option<Done>> = (0..n).map(|_| None).collect();
        for (k, d) in results.into_iter().flatten() {
            out[k] = Some(d);
        }
        out
    }

    fn run_one(&mut self, j: Job) -> Option<Done> {
        let rep = self.nodes[j.node as usize].replica.as_mut()?;
        Some(handle(rep, j.at, j.input))
    }
}

/// One thread's share of the jobs (with their indices and their replica's place in `reps`),
/// in order, on the replicas it holds.
fn work(share: Vec<(usize, usize, Job)>, reps: &mut [(u32, Box<Replica>)]) -> Vec<(usize, Done)> {
    let mut done = Vec::with_capacity(share.len());
    for (k, at, j) in share {
        if let Some((_, rep)) = reps.get_mut(at) {
            done.push((k, handle(rep, j.at, j.input)));
        }
    }
    done
}

/// When, where and for which gossip message a job ran (what phase 3 needs).
type Meta = (Micros, u32, Option<(u32, u32)>);
type Share = (Vec<(usize, usize, Job)>, Vec<(u32, Box<Replica>)>);
type Back = (Vec<(usize, Done)>, Vec<(u32, Box<Replica>)>);

/// Worker threads that live as long as the world: spawning threads for every batch cost more
/// than the batch saved. Jobs and the replicas they need travel to a worker and back.
#[derive(Debug)]
pub(crate) struct Pool {
    to: Vec<std::sync::mpsc::Sender<Share>>,
    from: Vec<std::sync::mpsc::Receiver<Back>>,
}

impl Pool {
    fn new(workers: usize) -> Pool {
        let (mut to, mut from) = (Vec::new(), Vec::new());
        for _ in 0..workers {
            let (tx, rx) = std::sync::mpsc::channel::<Share>();
            let (btx, brx) = std::sync::mpsc::channel::<Back>();
            // The worker ends when the world (and so `tx`) is dropped.
            std::thread::spawn(move || {
                while let Ok((share, mut reps)) = rx.recv() {
                    let done = work(share, &mut reps);
                    if btx.send((done, reps)).is_err() {
                        return;
                    }
                }
            });
            to.push(tx);
            from.push(brx);
        }
        Pool { to, from }
    }

    /// Hands out the shares; returns how many workers got one.
    fn send(&self, shares: impl Iterator<Item = Share>) -> usize {
        let mut sent = 0;
        for (tx, share) in self.to.iter().zip(shares) {
            if tx.send(share).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// The results of the first `sent` workers. The shares are even, so a worker is
    /// usually done within microseconds of this thread: it polls a while before sleeping,
    /// since being woken up costs more than that (a system call on each side, and the
    /// wake-up latency on every batch).
    fn collect(&self, sent: usize) -> Vec<Back> {
        (self.from.iter().take(sent))
            .filter_map(|rx| {
                for _ in 0..SPINS {
                    match rx.try_recv() {
                        Ok(back) => return Some(back),
                        Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
                    }
                }
                rx.recv().ok()
            })
            .collect()
    }
}
