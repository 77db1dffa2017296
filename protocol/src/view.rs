//! The materialized view: records and their versions (DESIGN §4, verifiable-storage-go).
//!
//! A record is the chain of versions of one key. Its *prefix* is the id of its first version;
//! every later version names its `previous` and carries `seq = previous.seq + 1`. Nothing is
//! deleted: a delete is a tombstone version. Only puts that have *effect* (see `trust`) count.
//!
//! * Latest version of a record: the effective version with the highest `(seq, clock, id)`:
//!   the longest line of versions wins, and concurrent successors of one version (a fork) are
//!   resolved by the highest `(clock, id)`. Forks are kept, never lost, and reported as a
//!   conflict (more than one effective version without an effective successor).
//! * A key with two concurrent first versions has two records; the key resolves to the record
//!   whose latest version has the highest `(clock, id)`; the other stays listed.
//!
//! The view stores slots only (4 bytes per version); values are decoded from the DAG's body
//! arena when a query reads them.
//!
//! Compaction drops the values of settled superseded versions and keeps their stubs (key,
//! record links, seal metadata; see `event`), so every replica — the one that compacted, and a
//! peer that received such versions without their values — places every version in the same
//! record. [`View::digest`] hashes, per key, its leaves (the effective versions without an
//! effective successor) and the version the key resolves to: on full replicas the leaves
//! determine every effective version (all others are their ancestors through `previous`).

use std::collections::BTreeMap;

mod snapshot;

use crate::dag::{Dag, NONE, Slot};
use crate::ids::EventId;

/// One record: a chain of versions under one key.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) key: Box<str>,
    /// The first version (the record's prefix).
    pub(crate) first: Slot,
    /// Every valid version, effective or not, in arrival order.
    pub(crate) versions: Vec<Slot>,
    /// Effective versions without an effective successor.
    leaves: Vec<Slot>,
    /// The latest version, `NONE` if no version has effect.
    pub(crate) latest: Slot,
    latest_seq: u64,
}

/// The view of one chain.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) records: Vec<Record>,
    /// Records per key, in key order.
    pub(crate) keys: BTreeMap<Box<str>, Vec<u32>>,
}

fn rank(dag: &Dag, s: Slot) -> (u64, EventId) {
    (dag.meta(s).clock, dag.id(s))
}

impl View {
    /// Adds a new version. `previous` is the slot of the version it follows (`NONE` for a first
    /// version; the replica has checked it is a put of the same key). Returns the record index.
    pub(crate) fn insert(
        &mut self,
        dag: &Dag,
        slot: Slot,
        key: &str,
        previous: Slot,
        seq: u64,
    ) -> u32 {
        // Every put is in the view and a version's previous is one of its dependencies, so
        // `previous` is known; a first version (or, defensively, an unknown record) starts a
        // record of its own.
        let known = (previous != NONE)
            .then(|| dag.meta(previous).aux)
            .filter(|&r| (r as usize) < self.records.len());
        let rec = match known {
            Some(r) => r,
            None => {
                let r = self.records.len() as u32;
                self.records.push(Record {
                    key: key.into(),
                    first: slot,
                    versions: Vec::new(),
                    leaves: Vec::new(),
                    latest: NONE,
                    latest_seq: 0,
                });
                self.keys.entry(key.into()).or_default().push(r);
                r
            }
        };
        let Some(record) = self.records.get_mut(rec as usize) else {
            return rec;
        };
        record.versions.push(slot);
        if dag.meta(slot).effective {
            // A fresh version has no successor yet; it replaces its previous as a leaf.
            record.leaves.retain(|&l| l != previous);
            record.leaves.push(slot);
            let better = record.latest == NONE
                || (seq, rank(dag, slot)) > (record.latest_seq, rank(dag, record.latest));
            if better {
                record.latest = slot;
                record.latest_seq = seq;
            }
        }
        rec
    }

    /// Recomputes a record after versions changed effect (rare: revocations). `links` gives a
    /// version's previous slot and record seq.
    pub(crate) fn rebuild(&mut self, dag: &Dag, rec: u32, links: &dyn Fn(Slot) -> (Slot, u64)) {
        let Some(record) = self.records.get_mut(rec as usize) else {
            return;
        };
        let effective: Vec<Slot> = record
            .versions
            .iter()
            .copied()
            .filter(|&s| dag.meta(s).effective)
            .collect();
        let mut has_successor = crate::det::HashSet::default();
        for &s in &effective {
            let (p, _) = links(s);
            if p != NONE {
                has_successor.insert(p);
            }
        }
        record.leaves = effective
            .iter()
            .copied()
            .filter(|s| !has_successor.contains(s))
            .collect();
        let best = effective
            .iter()
            .map(|&s| (links(s).1, rank(dag, s), s))
            .max();
        (record.latest_seq, record.latest) = best.map_or((0, NONE), |(q, _, s)| (q, s));
    }

    /// The record a key resolves to: the one whose latest version ranks highest.
    pub(crate) fn winner(&self, dag: &Dag, key: &str) -> Option<u32> {
        self.keys
            .get(key)?
            .iter()
            .copied()
            .filter(|&r| self.records[r as usize].latest != NONE)
            .max_by_key(|&r| rank(dag, self.records[r as usize].latest))
    }

    /// Versions compaction may drop the body of, by slot: those with a successor (a version
    /// naming them as `previous`) that has effect and is `settled` (see `replica::compact`),
    /// whose body is still here. Also returns how many versions have an effective successor
    /// but none settled (they keep their bodies for now).
    pub(crate) fn superseded(&self, dag: &Dag, settled: &[bool]) -> (Vec<Slot>, usize) {
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        for r in &self.records {
            for &w in &r.versions {
                if !dag.meta(w).effective {
                    continue;
                }
                let (v, _) = dag.put_links(w);
                if v == NONE || !dag.meta(v).has_body {
                    continue;
                }
                if settled.get(w as usize).copied().unwrap_or(false) {
                    out.push(v);
                } else {
                    waiting.push(v);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        waiting.sort_unstable();
        waiting.dedup();
        waiting.retain(|v| out.binary_search(v).is_err());
        (out, waiting.len())
    }

    /// Whether a record has a fork (more than one leaf).
    pub(crate) fn has_conflict(&self, rec: u32) -> bool {
        self.records
            .get(rec as usize)
            .is_some_and(|r| r.leaves.len() > 1)
    }

    /// A hash of the whole view; equal on two nodes iff their views are equal. Per key (in key
    /// order): the key, its leaves (effective versions without an effective successor, by id)
    /// and the version the key resolves to. See the module doc for why this and no more.
    pub(crate) fn digest(&self, dag: &Dag) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("ate v2 view digest");
        let mut leaves: Vec<EventId> = Vec::new();
        for (key, recs) in &self.keys {
            leaves.clear();
            for &r in recs {
                if let Some(rec) = self.records.get(r as usize) {
                    leaves.extend(rec.leaves.iter().map(|&s| dag.id(s)));
                }
            }
            let Some(winner) = self.winner(dag, key) else {
                continue;
            };
            leaves.sort_unstable();
            h.update(&(key.len() as u64).to_le_bytes());
            h.update(key.as_bytes());
            h.update(&(leaves.len() as u64).to_le_bytes());
            for id in &leaves {
                h.update(&id.0);
            }
            h.update(&dag.id(self.records[winner as usize].latest).0);
        }
        *h.finalize().as_bytes()
    }

    /// Heap bytes of the view's own structures (slots, keys), for the memory report.
    pub(crate) fn overhead_bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Record>()
            + self
                .records
                .iter()
                .map(|r| r.versions.capacity() * 4 + r.leaves.capacity() * 4 + r.key.len())
                .sum::<usize>()
            + self
                .keys
                .iter()
                .map(|(k, v)| k.len() + v.capacity() * 4 + 64)
                .sum::<usize>()
    }
}
