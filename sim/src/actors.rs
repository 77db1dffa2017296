//! Who does what, when: the honest workload, the adversaries and the scheduled faults.
//!
//! Node 0 holds the chain's root key and grants `Write` to the writers (nodes `1..=writers`)
//! and to equivocators at time 0. Byzantine nodes come next, late joiners are the last nodes.
//! Every action is precomputed into a schedule from the scenario and the seed, so the
//! schedule itself is part of what the seed reproduces.

use ate_protocol::{Event, Input, Params, PublicKey, Rights, SecretKey, Writer, serde_json};

use crate::scenario::{Attack, Fault};
use crate::world::{Class, Ev, Micros, Status, World};

/// One scheduled action.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Grants,
    Put { seq: usize },
    Revoke { writer: usize },
    GoDeaf { node: u32 },
    BlindPut { writer: usize, k: usize },
    BlindGrant { writer: usize },
    Attack { node: u32, attack: Attack, k: usize },
    Fault(Fault),
    Heal,
    Restart { node: u32 },
    Join { node: u32 },
}

/// Keys and roles.
#[derive(Debug, Default)]
pub(crate) struct Actors {
    pub(crate) root: Option<SecretKey>,
    pub(crate) writers: Vec<(u32, SecretKey)>,
    pub(crate) revoked: Vec<usize>,
    /// (node, key) of byzantine nodes; equivocators' keys are granted.
    pub(crate) byz: Vec<(u32, Attack, SecretKey)>,
    /// Revocation ids, and blind writes they must disable.
    pub(crate) revokes: Vec<ate_protocol::EventId>,
    pub(crate) blind: Vec<ate_protocol::EventId>,
    /// Grants a revoked admin made on its blind branch: must not be in effect.
    pub(crate) blind_grants: Vec<ate_protocol::EventId>,
    /// Sock puppets of revoked admins, by writer index.
    pub(crate) puppets: Vec<(usize, SecretKey)>,
    pub(crate) last_local: Option<u32>,
}

fn ms(t: u64) -> Micros {
    t * 1000
}

fn key(rng: &mut crate::rng::Rng) -> SecretKey {
    SecretKey::from_seed(rng.bytes32())
}

impl World {
    /// Builds keys, the genesis and the schedule of actions.
    pub(crate) fn plan(&mut self) {
        let sc = self.sc.clone();
        let root = key(&mut self.rng);
        let g = ate_protocol::genesis(&sc.name, &root, &[], Params::default(), self.seed, 0);
        self.genesis = g.encode();
        self.chain = ate_protocol::ChainId(g.id.0);
        if let Some(ate_protocol::Body::Genesis(b)) = &g.body {
            self.params = b.params;
        }
        self.actors.root = Some(root);
        let w = sc.workload.writers;
        for i in 0..w {
            self.actors.writers.push((1 + i as u32, key(&mut self.rng)));
        }
        let mut next = 1 + w as u32;
        for a in &sc.adversaries {
            for _ in 0..a.nodes {
                self.actors.byz.push((next, a.attack, key(&mut self.rng)));
                next += 1;
            }
        }
        self.plan_workload();
        self.plan_attacks_and_faults();
        // Stable sort: same-time actions keep the order above.
        self.actions.sort_by_key(|a| a.0);
        let sched: Vec<Micros> = self.actions.iter().map(|a| a.0).collect();
        for (i, at) in sched.into_iter().enumerate() {
            self.schedule(at, Ev::Action(i as u32));
        }
    }

    fn plan_workload(&mut self) {
        let wl = self.sc.workload.clone();
        self.actions.push((0, Action::Grants));
        let gap_us = 1e6 / wl.rate_per_s;
        for seq in 0..wl.events {
            let at = ms(wl.start_ms) + (seq as f64 * gap_us) as u64;
            self.actions.push((at, Action::Put { seq }));
        }
        for r in &wl.revoke {
            if r.blind_writes > 0 {
                let node = self.actors.writers[r.writer].0;
                let deaf_at = ms(r.at_ms.saturating_sub(1));
                self.actions.push((deaf_at, Action::GoDeaf { node }));
                if r.admin {
                    let writer = r.writer;
                    let at = ms(r.at_ms) + 25_000;
                    self.actions.push((at, Action::BlindGrant { writer }));
                }
                for k in 0..r.blind_writes {
                    let at = ms(r.at_ms) + 50_000 * (k as u64 + 1);
                    let writer = r.writer;
                    self.actions.push((at, Action::BlindPut { writer, k }));
                }
            }
            let writer = r.writer;
            self.actions.push((ms(r.at_ms), Action::Revoke { writer }));
        }
        let n = self.sc.nodes as u32;
        for node in n - wl.late_joiners as u32..n {
            self.actions
                .push((ms(wl.late_join_ms), Action::Join { node }));
        }
    }

    fn plan_attacks_and_faults(&mut self) {
        let sc = self.sc.clone();
        let mut byz = self.actors.byz.clone().into_iter();
        for a in &sc.adversaries {
            for _ in 0..a.nodes {
                let Some((node, attack, _)) = byz.next() else {
                    return;
                };
                if attack == Attack::Shadow {
                    // Reactive: one action arms the node for `count` answers.
                    let k = a.count;
                    self.actions
                        .push((ms(a.start_ms), Action::Attack { node, attack, k }));
                    continue;
                }
                for k in 0..a.count {
                    let at = ms(a.start_ms + a.every_ms * k as u64);
                    self.actions.push((at, Action::Attack { node, attack, k }));
                }
            }
        }
        for f in &sc.faults {
            let at = match f {
                Fault::Partition { at_ms, .. }
                | Fault::Crash { at_ms, .. }
                | Fault::Leave { at_ms, .. } => *at_ms,
            };
            self.actions.push((ms(at), Action::Fault(f.clone())));
            if let Fault::Partition { heal_ms, .. } = f {
                self.actions.push((ms(*heal_ms), Action::Heal));
            }
        }
    }

    pub(crate) fn act(&mut self, i: u32) {
        let Some((_, action)) = self.actions.get(i as usize).cloned() else {
            return;
        };
        let is_fault = matches!(
            action,
            Action::Fault(_) | Action::Restart { .. } | Action::Heal
        );
        if is_fault && !self.faults_on {
            return;
        }
        match action {
            Action::Grants => self.grants(),
            Action::Put { seq } => self.honest_put(seq),
            Action::Revoke { writer } => self.revoke(writer),
            Action::GoDeaf { node } => {
                self.link[node as usize].deaf = true;
                self.nodes[node as usize].byzantine = true;
            }
            Action::BlindPut { writer, k } => self.blind_put(writer, k),
            Action::BlindGrant { writer } => self.blind_grant(writer),
            Action::Attack { node, attack, k } => self.attack(node, attack, k),
            Action::Fault(f) => self.fault(f),
            Action::Heal => self.heal(),
            Action::Restart { node } => self.restart(node),
            Action::Join { node } => self.bring_up(node, false),
        }
    }

    /// Builds an event on node `n`'s replica, registers it and feeds it as a local event.
    fn local(&mut self, n: u32, class: Class, build: impl FnOnce(&ate_protocol::Replica) -> Event) {
        if !self.is_up(n) {
            return;
        }
        let Some(rep) = self.nodes[n as usize].replica.as_deref() else {
            return;
        };
        let ev = build(rep);
        let before = self.counters.rejected.values().sum::<u64>();
        let i = self.register(ev.id, ev.encode(), class);
        self.actors.last_local = Some(i);
        self.feed(n, Input::local(ev), None);
        self.actors.last_local = None;
        if self.counters.rejected.values().sum::<u64>() > before {
            self.counters.local_rejected += 1;
        }
    }

    fn grants(&mut self) {
        let Some(root) = self.actors.root.clone() else {
            return;
        };
        let w = Writer::new(root);
        let admins: Vec<usize> = (self.sc.workload.revoke.iter())
            .filter(|r| r.admin)
            .map(|r| r.writer)
            .collect();
        let mut to: Vec<(PublicKey, Rights)> = (self.actors.writers.iter().enumerate())
            .map(|(i, x)| {
                let rights = if admins.contains(&i) {
                    Rights::Admin
                } else {
                    Rights::Write
                };
                (x.1.public(), rights)
            })
            .collect();
        to.extend(
            self.actors
                .byz
                .iter()
                .filter(|b| b.1 == Attack::Equivocate)
                .map(|b| (b.2.public(), Rights::Write)),
        );
        let t = self.now / 1000;
        for (pk, rights) in to {
            self.local(0, Class::Valid, |r| w.grant(r, pk, "", rights, t));
        }
    }

    fn value(&mut self, seq: usize) -> (String, serde_json::Value) {
        let k = self.rng.below(self.sc.workload.keys as u64);
        let pad = "x".repeat(self.sc.workload.value_bytes.saturating_sub(20));
        (
            format!("k{k:05}"),
            serde_json::json!({ "n": seq, "pad": pad }),
        )
    }

    fn honest_put(&mut self, seq: usize) {
        let nw = self.actors.writers.len();
        for off in 0..nw {
            let wi = (seq + off) % nw;
            let (n, sk) = self.actors.writers[wi].clone();
            let link = &self.link[n as usize];
            if self.actors.revoked.contains(&wi) || link.status != Status::Up || link.deaf {
                continue;
            }
            let (k, v) = self.value(seq);
            let t = self.now / 1000;
            let w = Writer::new(sk);
            let before = self.msgs.len();
            self.local(n, Class::Valid, |r| w.put_json(r, &k, &v, t));
            if let Some(m) = self.msgs.get_mut(before) {
                m.put = true;
            }
            return;
        }
    }

    fn revoke(&mut self, writer: usize) {
        let Some(root) = self.actors.root.clone() else {
            return;
        };
        self.actors.revoked.push(writer);
        let pk = self.actors.writers[writer].1.public();
        let t = self.now / 1000;
        let w = Writer::new(root);
        let before = self.msgs.len();
        self.local(0, Class::Valid, |r| w.revoke(r, pk, "", t));
        if self.msgs.len() > before {
            let id = self.msgs[before].id;
            self.actors.revokes.push(id);
        }
    }

    /// A revoked admin, blind to its revocation, grants `Write` to a fresh sock puppet.
    fn blind_grant(&mut self, writer: usize) {
        let (n, sk) = self.actors.writers[writer].clone();
        let puppet = key(&mut self.rng);
        let pk = puppet.public();
        self.actors.puppets.push((writer, puppet));
        let t = self.now / 1000;
        let w = Writer::new(sk);
        let before = self.msgs.len();
        self.local(n, Class::Blind, |r| w.grant(r, pk, "", Rights::Write, t));
        if self.msgs.len() > before {
            let id = self.msgs[before].id;
            self.actors.blind_grants.push(id);
        }
    }

    fn blind_put(&mut self, writer: usize, k: usize) {
        let (n, mut sk) = self.actors.writers[writer].clone();
        if let Some((_, p)) = self.actors.puppets.iter().find(|p| p.0 == writer) {
            sk = p.clone();
        }
        let (key, v) = self.value(1_000_000 + k);
        let t = self.now / 1000;
        let w = Writer::new(sk);
        let before = self.msgs.len();
        self.local(n, Class::Blind, |r| w.put_json(r, &key, &v, t));
        if self.msgs.len() > before {
            let id = self.msgs[before].id;
            self.actors.blind.push(id);
        }
    }

    /// Pushes attacker bytes to every connected peer, as a gossip message.
    fn inject(&mut self, n: u32, bytes: Vec<u8>) {
        let (id, class) = match Event::decode(Some(&self.chain), &bytes, &self.params) {
            Ok(ev) if self.by_id.contains_key(&ev.id) => (ev.id, Class::Valid),
            Ok(ev) => (ev.id, Class::Invalid),
            Err(_) => {
                // No event id: gossipsub would hash the bytes; a fresh pseudo id does the same job.
                let mut id = [0xffu8; 32];
                id[..8].copy_from_slice(&(self.msgs.len() as u64).to_le_bytes());
                (ate_protocol::EventId(id), Class::Junk)
            }
        };
        let i = self.register(id, bytes, class);
        self.publish(n, i);
    }

    /// The shadow attack: a copy of message `i` with a flipped signature byte, pushed to every
    /// peer. It carries the genuine event's id, so a peer that sees it first rejects it *and*
    /// files the id in its seen cache, dropping the genuine copy when it arrives.
    pub(crate) fn shadow(&mut self, n: u32, i: u32) {
        let mut b = self.msgs[i as usize].env.bytes().to_vec();
        // The signature sits right after the header: varint length, header, 64 bytes.
        let (len, skip) = match (b.first(), b.get(1)) {
            (Some(&x), _) if x < 0x80 => (usize::from(x), 1),
            (Some(&x), Some(&y)) => (usize::from(x & 0x7f) | usize::from(y) << 7, 2),
            _ => return,
        };
        if let Some(x) = b.get_mut(skip + len + 10) {
            *x ^= 1;
        }
        let s = self.register_shadow(i, b);
        for p in self.nodes[n as usize].peers.clone() {
            self.send(n, p, crate::world::Wire::Gossip(s));
        }
    }

    fn attack(&mut self, n: u32, attack: Attack, k: usize) {
        if attack == Attack::Shadow {
            // Reactive: arm the node; it answers the next `k` new messages (see on_gossip).
            self.nodes[n as usize].shadows_left += k;
            return;
        }
        if !self.is_up(n) {
            return;
        }
        let Some(rep) = self.nodes[n as usize].replica.as_deref() else {
            return;
        };
        let Some((_, _, sk)) = self.actors.byz.iter().find(|b| b.0 == n).cloned() else {
            return;
        };
        let t = self.now / 1000;
        let w = Writer::new(sk.clone());
        let key = format!("evil{k}");
        let v = serde_json::json!({ "attack": k });
        let mut out: Vec<Vec<u8>> = Vec::new();
        match attack {
            Attack::Forge => {
                let mut ev = w.put_json(rep, &key, &v, t);
                if let Some((_, victim)) = self.actors.writers.first() {
                    ev.header.author = victim.public();
                }
                out.push(ev.encode());
            }
            Attack::NoGrant => out.push(w.put_json(rep, &key, &v, t).encode()),
            Attack::Flood => {
                for j in 0..50 {
                    let v = serde_json::json!({ "flood": j, "k": k });
                    out.push(w.put_json(rep, &key, &v, t).encode());
                }
            }
            Attack::Equivocate => {
                let a = w.put_json(rep, &key, &serde_json::json!({"side": "a"}), t);
                let b = w.put_json(rep, &key, &serde_json::json!({"side": "b"}), t);
                self.equivocate(n, a, b);
                return;
            }
            Attack::Replay => {
                let honest: Vec<u32> = (0..self.msgs.len() as u32)
                    .filter(|&i| self.msgs[i as usize].class == Class::Valid)
                    .collect();
                let pick = self.nodes[n as usize].rng.sample(&honest, 3);
                self.replay(n, &pick);
                return;
            }
            Attack::Malformed => {
                let mut b = w.put_json(rep, &key, &v, t).encode();
                let pos = 2 + self.nodes[n as usize].rng.below(30) as usize;
                if let Some(x) = b.get_mut(pos) {
                    *x ^= 0x5a;
                }
                out.push(b);
            }
            Attack::Oversized => {
                let big = "y".repeat(70 * 1024);
                out.push(w.put_json(rep, &key, &serde_json::json!(big), t).encode());
            }
            Attack::Shadow => {}
            Attack::Garbage => {
                let node = &mut self.nodes[n as usize];
                out.push((0..200).map(|_| node.rng.next_u64() as u8).collect());
            }
        }
        for b in out {
            self.inject(n, b);
        }
    }

    /// Two valid events with one author and seq, each sent to half of the peers.
    fn equivocate(&mut self, n: u32, a: Event, b: Event) {
        let ia = self.register(a.id, a.encode(), Class::Valid);
        let ib = self.register(b.id, b.encode(), Class::Valid);
        let peers = self.live_peers(n);
        for (j, p) in peers.into_iter().enumerate() {
            let i = if j % 2 == 0 { ia } else { ib };
            self.send(n, p, crate::world::Wire::Gossip(i));
        }
    }

    /// Old events again: by gossip (the seen cache drops most) and by sync (the replica does).
    fn replay(&mut self, n: u32, pick: &[u32]) {
        for &i in pick {
            self.publish(n, i);
        }
        let events: Vec<Vec<u8>> = pick
            .iter()
            .map(|&i| self.msgs[i as usize].env.bytes().to_vec())
            .collect();
        if let Some(&p) = self.live_peers(n).first() {
            let msg = ate_protocol::SyncMsg::Events {
                events,
                more: false,
            };
            self.send(n, p, crate::world::Wire::Sync(Box::new(msg)));
        }
    }
}
