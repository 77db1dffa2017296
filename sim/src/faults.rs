//! Building the network and breaking it: connections, partitions and heals, crashes,
//! restarts (with or without the redo log), leaves and joins.

use ate_protocol::{Input, PeerId};

use crate::actors::Action;
use crate::rng::Rng;
use crate::scenario::Fault;
use crate::world::{Ev, Link, Node, Status, Traffic, World};

impl World {
    /// Creates the nodes, a random connection graph and the initial mesh.
    pub(crate) fn build(&mut self) {
        let n = self.sc.nodes;
        let regions = self.sc.network.regions.len().max(1);
        let late = n - self.sc.workload.late_joiners;
        self.keep_logs =
            (self.sc.faults.iter()).any(|f| matches!(f, Fault::Crash { with_log: true, .. }));
        for i in 0..n {
            self.link.push(Link {
                status: if i < late {
                    Status::Up
                } else {
                    Status::NotJoined
                },
                deaf: false,
                region: (i % regions) as u8,
                group: 0,
            });
            self.traffic.push(Traffic::default());
            self.nodes.push(Node {
                replica: None,
                byzantine: false,
                shadows_left: 0,
                peers: Vec::new(),
                mesh: Vec::new(),
                held: Vec::new(),
                mcache: Default::default(),
                window: 0,
                log: Vec::new(),
                restart_with_log: false,
                uplink_free: 0,
                cpu_free: 0,
                batch: Vec::new(),
                sent_copy: Vec::new(),
                epoch: 0,
                rng: Rng::derive(self.seed, 1 + i as u64),
                heartbeats: 0,
            });
        }
        for b in self.actors.byz.clone() {
            self.nodes[b.0 as usize].byzantine = true;
        }
        self.cores = vec![0; self.sc.node.host_cores];
        if self.sc.node.host_cores > 0
            && self.sc.node.host_sharing == crate::scenario::HostSharing::Fair
        {
            self.fair = Some(crate::host::FairHost::new(self.sc.node.host_cores));
        }
        self.connect();
        for a in 0..n as u32 {
            self.nodes[a as usize].peers.sort_unstable();
            if self.is_up(a) {
                self.nodes[a as usize].replica = self.new_replica(a);
            }
            let phase = self.rng.below(self.sc.gossip.heartbeat_ms * 1000);
            self.schedule(phase, Ev::Heartbeat(a));
        }
        // The network has been up for a while when the run starts: meshes are formed.
        for a in 0..n as u32 {
            if self.is_up(a) {
                self.repair_mesh(a);
            }
        }
        self.schedule(0, Ev::Sample);
    }

    /// The connection graph: each node dials `connections / 2` random others (links are
    /// symmetric), or everyone dials everyone when `connections` reaches `nodes - 1`.
    fn connect(&mut self) {
        let n = self.nodes.len();
        if self.sc.network.connections + 1 >= n {
            for a in 0..n as u32 {
                self.nodes[a as usize].peers = (0..n as u32).filter(|&b| b != a).collect();
            }
            return;
        }
        let half = self.sc.network.connections.div_ceil(2);
        for a in 0..n as u32 {
            for _ in 0..half {
                let b = self.rng.below(n as u64) as u32;
                if b != a && !self.nodes[a as usize].peers.contains(&b) {
                    self.nodes[a as usize].peers.push(b);
                    self.nodes[b as usize].peers.push(a);
                }
            }
        }
    }

    pub(crate) fn fault(&mut self, f: Fault) {
        match f {
            Fault::Partition {
                by_region, split, ..
            } => {
                for i in 0..self.nodes.len() {
                    let g = if by_region {
                        u32::from(self.link[i].region)
                    } else {
                        u32::from(self.rng.chance(split))
                    };
                    self.link[i].group = g;
                }
                self.disconnect_split();
            }
            Fault::Crash {
                count,
                restart_ms,
                with_log,
                ..
            } => {
                for n in self.pick_honest(count) {
                    self.take_down(n, Status::Down);
                    self.nodes[n as usize].restart_with_log = with_log;
                    if let Some(t) = restart_ms {
                        let i = self.actions.len() as u32;
                        self.actions.push((t * 1000, Action::Restart { node: n }));
                        self.schedule(t * 1000, Ev::Action(i));
                    }
                }
            }
            Fault::Leave { count, .. } => {
                for n in self.pick_honest(count) {
                    self.take_down(n, Status::Left);
                }
            }
        }
    }

    /// Up honest nodes other than the root and writers, chosen at random.
    fn pick_honest(&mut self, count: usize) -> Vec<u32> {
        let first = 1 + self.sc.workload.writers as u32;
        let cand: Vec<u32> = (first..self.nodes.len() as u32)
            .filter(|&i| self.is_up(i) && !self.nodes[i as usize].byzantine)
            .collect();
        self.rng.sample(&cand, count)
    }

    /// Connections across the partition drop: both replicas hear `PeerDown`.
    fn disconnect_split(&mut self) {
        for a in 0..self.nodes.len() as u32 {
            let peers = self.nodes[a as usize].peers.clone();
            for b in peers {
                let (x, y) = (&self.link[a as usize], &self.link[b as usize]);
                if x.group != y.group && x.status == Status::Up && y.status == Status::Up {
                    self.nodes[a as usize].mesh.retain(|&p| p != b);
                    self.feed(a, Input::PeerDown(PeerId(u64::from(b))), None);
                }
            }
        }
    }

    /// Everyone in one group again; reconnected peers exchange heads.
    pub(crate) fn heal(&mut self) {
        let before: Vec<u32> = self.link.iter().map(|l| l.group).collect();
        for l in &mut self.link {
            l.group = 0;
        }
        for a in 0..self.nodes.len() as u32 {
            let peers = self.nodes[a as usize].peers.clone();
            for b in peers {
                if before[a as usize] != before[b as usize] && self.linked(a, b) {
                    self.feed(a, Input::PeerUp(PeerId(u64::from(b))), None);
                }
            }
        }
    }

    fn take_down(&mut self, n: u32, status: Status) {
        let peers = self.live_peers(n);
        self.link[n as usize].status = status;
        let node = &mut self.nodes[n as usize];
        node.replica = None;
        node.mesh.clear();
        node.held.clear();
        node.batch.clear();
        node.sent_copy.clear();
        node.epoch += 1;
        for p in peers {
            self.nodes[p as usize].mesh.retain(|&x| x != n);
            self.feed(p, Input::PeerDown(PeerId(u64::from(n))), None);
        }
    }

    pub(crate) fn restart(&mut self, n: u32) {
        if self.link[n as usize].status == Status::Down {
            let with_log = self.nodes[n as usize].restart_with_log;
            self.bring_up(n, with_log);
        }
    }

    /// A node (re)joins: a fresh replica (from its log if asked), empty caches, and a heads
    /// exchange with every connected peer.
    pub(crate) fn bring_up(&mut self, n: u32, with_log: bool) {
        let rep = self.new_replica(n);
        self.link[n as usize].status = Status::Up;
        // A fresh process: an empty seen cache and message cache.
        for b in &mut self.seen {
            b.clear(n);
        }
        let node = &mut self.nodes[n as usize];
        node.replica = rep;
        node.mcache.clear();
        let log = if with_log {
            std::mem::take(&mut node.log)
        } else {
            node.log.clear();
            Vec::new()
        };
        if !log.is_empty() {
            let envs = log
                .iter()
                .map(|&i| self.msgs[i as usize].env.bytes().to_vec())
                .collect();
            // Replay re-persists what it accepts, rebuilding the log.
            self.feed(n, Input::Replay(envs), None);
        }
        for p in self.live_peers(n) {
            self.feed(p, Input::PeerUp(PeerId(u64::from(n))), None);
            self.feed(n, Input::PeerUp(PeerId(u64::from(p))), None);
        }
    }

    /// Liveness phase: faults stop, the network heals, crashed nodes come back.
    pub(crate) fn stop_faults(&mut self) {
        self.faults_on = false;
        self.loss = 0.0;
        self.heal();
        for n in 0..self.nodes.len() as u32 {
            self.restart(n);
        }
    }
}
