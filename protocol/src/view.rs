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
//! arena when a query reads them. Each record keeps a count and a sum (mod 2^256) of its
//! effective version ids, so [`View::digest`] costs one pass over records, not versions.

use std::collections::BTreeMap;

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
    effective: u32,
    id_sum: [u64; 4],
}

/// The view of one chain.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) records: Vec<Record>,
    /// Records per key, in key order.
    pub(crate) keys: BTreeMap<Box<str>, Vec<u32>>,
}

fn add_id(sum: &mut [u64; 4], id: &EventId, negate: bool) {
    let mut carry = 0u64;
    let mut borrow = 0u64;
    for (i, limb) in sum.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.0[i * 8..i * 8 + 8]);
        let x = u64::from_le_bytes(b);
        if negate {
            let (d1, o1) = limb.overflowing_sub(x);
            let (d2, o2) = d1.overflowing_sub(borrow);
            *limb = d2;
            borrow = u64::from(o1 || o2);
        } else {
            let (s1, o1) = limb.overflowing_add(x);
            let (s2, o2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = u64::from(o1 || o2);
        }
    }
}

fn rank(dag: &Dag, s: Slot) -> (u64, EventId) {
    (dag.meta(s).clock, dag.id(s))
}

fn record_seq(dag: &Dag, s: Slot) -> u64 {
    match dag.body(s) {
        Some(crate::event::Body::Put(p)) => p.seq,
        _ => 0,
    }
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
        let rec = if previous == NONE {
            let r = self.records.len() as u32;
            self.records.push(Record {
                key: key.into(),
                first: slot,
                versions: Vec::new(),
                leaves: Vec::new(),
                latest: NONE,
                latest_seq: 0,
                effective: 0,
                id_sum: [0; 4],
            });
            self.keys.entry(key.into()).or_default().push(r);
            r
        } else {
            dag.meta(previous).aux
        };
        let Some(record) = self.records.get_mut(rec as usize) else {
            return rec;
        };
        record.versions.push(slot);
        if dag.meta(slot).effective {
            record.effective += 1;
            add_id(&mut record.id_sum, &dag.id(slot), false);
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

    /// Recomputes a record after versions changed effect (rare: revocations).
    pub(crate) fn rebuild(&mut self, dag: &Dag, rec: u32, previous_of: &dyn Fn(Slot) -> Slot) {
        let Some(record) = self.records.get_mut(rec as usize) else {
            return;
        };
        let effective: Vec<Slot> = record
            .versions
            .iter()
            .copied()
            .filter(|&s| dag.meta(s).effective)
            .collect();
        let mut has_successor = std::collections::HashSet::new();
        for &s in &effective {
            let p = previous_of(s);
            if p != NONE {
                has_successor.insert(p);
            }
        }
        record.effective = effective.len() as u32;
        record.id_sum = [0; 4];
        for &s in &effective {
            add_id(&mut record.id_sum, &dag.id(s), false);
        }
        record.leaves = effective
            .iter()
            .copied()
            .filter(|s| !has_successor.contains(s))
            .collect();
        let best = effective
            .iter()
            .map(|&s| (record_seq(dag, s), rank(dag, s), s))
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

    /// Whether a record has a fork (more than one leaf).
    pub(crate) fn has_conflict(&self, rec: u32) -> bool {
        self.records
            .get(rec as usize)
            .is_some_and(|r| r.leaves.len() > 1)
    }

    /// A hash of the whole view; equal on two nodes iff their views are equal.
    pub(crate) fn digest(&self, dag: &Dag) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("ate v1 view digest");
        for (key, recs) in &self.keys {
            let mut recs: Vec<&Record> = recs.iter().map(|&r| &self.records[r as usize]).collect();
            recs.sort_by_key(|r| dag.id(r.first));
            for r in recs.into_iter().filter(|r| r.effective > 0) {
                h.update(&(key.len() as u64).to_le_bytes());
                h.update(key.as_bytes());
                h.update(&dag.id(r.first).0);
                h.update(&dag.id(r.latest).0);
                h.update(&u64::from(r.effective).to_le_bytes());
                for limb in r.id_sum {
                    h.update(&limb.to_le_bytes());
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sum_add_then_subtract_is_zero() {
        let mut s = [0u64; 4];
        let a = EventId([0xff; 32]);
        let b = EventId([0x13; 32]);
        add_id(&mut s, &a, false);
        add_id(&mut s, &b, false);
        add_id(&mut s, &a, true);
        add_id(&mut s, &b, true);
        assert_eq!(s, [0; 4]);
    }
}
