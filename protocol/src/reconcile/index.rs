//! [`ReconIndex`]: the ordered set of `(clock, id)` with cached sums, as a B+tree.
//!
//! Leaves hold up to [`LEAF_CAP`] sorted keys; inner nodes hold up to [`INNER_CAP`] children,
//! and for each child its smallest key, its item count and its [`ItemSum`]. The sum of any
//! range is the difference of two prefix sums, and a prefix sum adds O(log n) cached child
//! sums plus at most half a leaf of item hashes. Insert and remove walk one root-to-leaf path
//! (O(log n)) and hash the item once.
//!
//! Memory: a key is 40 bytes. Leaves grow their storage [`LEAF_GROW`] keys at a time instead
//! of doubling, and the rightmost node splits unevenly (it keeps 7/8 of its keys), so the
//! usual arrival order (increasing clocks, with some stragglers) leaves nodes nearly full.
//! A child entry (184 bytes) is paid once per leaf. [`ReconIndex::heap_bytes`] reports it.
//!
//! Removal does not merge underfull nodes (it frees empty ones): the tree stays as deep as the
//! largest set it held, which is fine for event ids, which are removed rarely if ever.

use std::fmt;
use std::mem::size_of;

use super::fingerprint::{ItemSum, RangeSummary};
use super::key::{Bound, ReconKey};
use crate::ids::EventId;

/// Keys per leaf, at most.
pub(crate) const LEAF_CAP: usize = 64;
/// A full leaf grows its storage by this many keys (and never beyond `LEAF_CAP + 1`).
const LEAF_GROW: usize = 8;
/// Children per inner node, at most.
const INNER_CAP: usize = 32;
/// Keys per leaf when bulk-building (7/8 full).
const BULK_LEAF: usize = LEAF_CAP - LEAF_CAP / 8;
/// Children per inner node when bulk-building (7/8 full).
const BULK_INNER: usize = INNER_CAP - INNER_CAP / 8;

#[derive(Clone, Default)]
struct Leaf {
    items: Vec<ReconKey>,
}

#[derive(Clone, Copy)]
struct Child {
    /// The smallest key in the subtree.
    min: ReconKey,
    /// How many keys the subtree holds.
    count: usize,
    /// Their sum.
    sum: ItemSum,
    /// The child's index in `leaves` (one level above the leaves) or `inners`.
    node: u32,
}

#[derive(Clone, Default)]
struct Inner {
    children: Vec<Child>,
}

enum Insert {
    Present,
    Done,
    /// The node split: here is the entry for its new right sibling.
    Split(Child),
}

enum Remove {
    Absent,
    Done { now_empty: bool },
}

/// The set of `(clock, id)` keys of one chain, ordered, with cached sums for fingerprints.
///
/// The replica inserts every event it accepts (`insert(header.clock, id)`); sessions read it.
#[derive(Clone)]
pub struct ReconIndex {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    /// A leaf when `height == 0`, else an inner node.
    root: u32,
    /// Inner levels above the leaves.
    height: u32,
    len: usize,
    total: ItemSum,
}

impl Default for ReconIndex {
    fn default() -> Self {
        ReconIndex::new()
    }
}

impl fmt::Debug for ReconIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconIndex")
            .field("len", &self.len)
            .field("height", &self.height)
            .field("leaves", &(self.leaves.len() - self.free_leaves.len()))
            .finish()
    }
}

/// Which child of an inner node may hold `key`: the last whose smallest key is `≤ key`.
fn child_for(children: &[Child], key: &ReconKey) -> usize {
    children
        .partition_point(|c| c.min <= *key)
        .saturating_sub(1)
}

fn sum_of(keys: &[ReconKey]) -> ItemSum {
    let mut sum = ItemSum::ZERO;
    for k in keys {
        sum.add(&ItemSum::of(&k.id));
    }
    sum
}

fn arena_index(len: usize) -> u32 {
    // 2^32 leaves hold more than 2^37 keys: far beyond any chain's limits and this machine.
    assert!(
        len < u32::MAX as usize,
        "reconciliation index arena overflow"
    );
    len as u32
}

impl ReconIndex {
    /// An empty index.
    pub fn new() -> ReconIndex {
        ReconIndex {
            leaves: vec![Leaf::default()],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
            total: ItemSum::ZERO,
        }
    }

    /// Builds an index from keys in any order (duplicates are dropped), in O(n) after the
    /// sort: faster than inserting one by one, e.g. when a replica starts from its log. Nodes
    /// are filled to 7/8, leaving room for stragglers.
    pub fn from_keys(mut keys: Vec<ReconKey>) -> ReconIndex {
        keys.sort_unstable();
        keys.dedup();
        let mut ix = ReconIndex::new();
        if keys.is_empty() {
            return ix;
        }
        ix.leaves.clear();
        let mut level: Vec<Child> = Vec::with_capacity(keys.len() / BULK_LEAF + 1);
        for chunk in keys.chunks(BULK_LEAF) {
            let entry = Child {
                min: chunk[0],
                count: chunk.len(),
                sum: sum_of(chunk),
                node: 0,
            };
            let node = ix.alloc_leaf(chunk.to_vec());
            level.push(Child { node, ..entry });
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / BULK_INNER + 1);
            for chunk in level.chunks(BULK_INNER) {
                let mut entry = Child {
                    min: chunk[0].min,
                    count: 0,
                    sum: ItemSum::ZERO,
                    node: 0,
                };
                for c in chunk {
                    entry.count += c.count;
                    entry.sum.add(&c.sum);
                }
                let mut children = Vec::with_capacity(INNER_CAP + 1);
                children.extend_from_slice(chunk);
                entry.node = ix.alloc_inner(children);
                next.push(entry);
            }
            level = next;
            ix.height += 1;
        }
        let top = level[0];
        ix.root = top.node;
        ix.len = top.count;
        ix.total = top.sum;
        ix
    }

    /// How many keys the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Count and sum of the whole set.
    pub fn total(&self) -> RangeSummary {
        RangeSummary {
            count: self.len as u64,
            sum: self.total,
        }
    }

    /// Adds an event; `false` if it was already there. O(log n), one item hash.
    pub fn insert(&mut self, clock: u64, id: EventId) -> bool {
        let key = ReconKey::new(clock, id);
        let sum = ItemSum::of(&id);
        let split = match self.insert_into(self.root, self.height, &key, &sum, true) {
            Insert::Present => return false,
            Insert::Done => None,
            Insert::Split(right) => Some(right),
        };
        self.len += 1;
        self.total.add(&sum);
        if let Some(right) = split {
            self.grow_root(right);
        }
        true
    }

    /// Removes an event; `false` if it was not there. O(log n), one item hash.
    pub fn remove(&mut self, clock: u64, id: EventId) -> bool {
        let key = ReconKey::new(clock, id);
        let sum = ItemSum::of(&id);
        match self.remove_from(self.root, self.height, &key, &sum) {
            Remove::Absent => return false,
            Remove::Done { .. } => {}
        }
        self.len -= 1;
        self.total.sub(&sum);
        self.shrink_root();
        true
    }

    /// Whether the index holds this event.
    pub fn contains(&self, clock: u64, id: &EventId) -> bool {
        let key = ReconKey::new(clock, *id);
        let (leaf, ..) = self.descend(|children| child_for(children, &key));
        self.leaves[leaf as usize].items.binary_search(&key).is_ok()
    }

    /// How many keys lie below `bound`.
    pub fn rank(&self, bound: &Bound) -> usize {
        self.prefix(bound).0
    }

    /// The key with `rank` keys below it.
    pub fn get(&self, rank: usize) -> Option<ReconKey> {
        if rank >= self.len {
            return None;
        }
        let (leaf, before, ..) = self.descend_rank(rank);
        self.leaves[leaf as usize].items.get(rank - before).copied()
    }

    /// Count and sum of the keys in `[lo, hi)`: O(log n) cached sums plus at most one leaf of
    /// item hashes at each end.
    pub fn summary(&self, lo: &Bound, hi: &Bound) -> RangeSummary {
        if lo >= hi {
            return RangeSummary::default();
        }
        let (r0, s0) = self.prefix(lo);
        let (r1, s1) = self.prefix(hi);
        RangeSummary {
            count: (r1 - r0) as u64,
            sum: s1.minus(&s0),
        }
    }

    /// The keys in `[lo, hi)`, in order.
    pub fn range(&self, lo: &Bound, hi: &Bound) -> RangeIter<'_> {
        let r0 = self.rank(lo);
        let r1 = self.rank(hi).max(r0);
        self.iter_ranks(r0, r1)
    }

    /// All keys, in order.
    pub fn iter(&self) -> RangeIter<'_> {
        self.iter_ranks(0, self.len)
    }

    /// Bytes of heap memory held (key storage, nodes, arenas; not the allocator's overhead).
    pub fn heap_bytes(&self) -> usize {
        let leaf_keys: usize = self.leaves.iter().map(|l| l.items.capacity()).sum();
        let children: usize = self.inners.iter().map(|n| n.children.capacity()).sum();
        self.leaves.capacity() * size_of::<Leaf>()
            + leaf_keys * size_of::<ReconKey>()
            + self.inners.capacity() * size_of::<Inner>()
            + children * size_of::<Child>()
            + (self.free_leaves.capacity() + self.free_inners.capacity()) * size_of::<u32>()
    }

    /// `(rank, sum)` of the keys below `bound`.
    pub(crate) fn prefix(&self, bound: &Bound) -> (usize, ItemSum) {
        match bound {
            Bound::End => (self.len, self.total),
            Bound::At(key) => {
                let (leaf, rank, before, leaf_sum) =
                    self.descend(|children| child_for(children, key));
                let items = &self.leaves[leaf as usize].items;
                let pos = items.partition_point(|k| k < key);
                (rank + pos, self.leaf_prefix(items, pos, before, leaf_sum))
            }
        }
    }

    /// The sum of the keys below `rank`, with the keys at `rank - 1` and `rank` (the two
    /// neighbours a split at `rank` falls between). Needs `0 < rank < len`.
    pub(crate) fn split_at(&self, rank: usize) -> Option<(ItemSum, ReconKey, ReconKey)> {
        if rank == 0 || rank >= self.len {
            return None;
        }
        let (leaf, before_rank, before, leaf_sum) = self.descend_rank(rank);
        let items = &self.leaves[leaf as usize].items;
        let pos = rank - before_rank;
        let next = *items.get(pos)?;
        let prev = match pos.checked_sub(1) {
            Some(p) => *items.get(p)?,
            None => self.get(rank - 1)?,
        };
        Some((self.leaf_prefix(items, pos, before, leaf_sum), prev, next))
    }

    /// Iterates keys with ranks in `[r0, r1)`.
    pub(crate) fn iter_ranks(&self, r0: usize, r1: usize) -> RangeIter<'_> {
        let r1 = r1.min(self.len);
        let mut path = Vec::with_capacity(self.height as usize);
        let (mut node, mut remaining) = (self.root, r0.min(self.len));
        for _ in 0..self.height {
            let children = &self.inners[node as usize].children;
            let mut idx = 0;
            while idx + 1 < children.len() && remaining >= children[idx].count {
                remaining -= children[idx].count;
                idx += 1;
            }
            path.push((node, idx));
            node = children[idx].node;
        }
        let items = &self.leaves[node as usize].items;
        RangeIter {
            index: self,
            path,
            items: items.get(remaining..).unwrap_or(&[]).iter(),
            remaining: r1.saturating_sub(r0),
        }
    }

    /// Walks from the root to a leaf, `choose` picking the child at each inner node. Returns
    /// the leaf, the number of keys and their sum in the subtrees skipped on the way (all
    /// below the leaf), and the leaf's own sum.
    fn descend(&self, mut choose: impl FnMut(&[Child]) -> usize) -> (u32, usize, ItemSum, ItemSum) {
        let (mut node, mut rank, mut before, mut node_sum) =
            (self.root, 0usize, ItemSum::ZERO, self.total);
        for _ in 0..self.height {
            let children = &self.inners[node as usize].children;
            let idx = choose(children).min(children.len() - 1);
            // The skipped children's sum: add them up, or take the others from the node's sum,
            // whichever touches fewer entries.
            if idx <= children.len() / 2 {
                for c in &children[..idx] {
                    before.add(&c.sum);
                }
            } else {
                let mut skipped = node_sum;
                for c in &children[idx..] {
                    skipped.sub(&c.sum);
                }
                before.add(&skipped);
            }
            rank += children[..idx].iter().map(|c| c.count).sum::<usize>();
            node_sum = children[idx].sum;
            node = children[idx].node;
        }
        (node, rank, before, node_sum)
    }

    fn descend_rank(&self, rank: usize) -> (u32, usize, ItemSum, ItemSum) {
        let mut remaining = rank;
        self.descend(|children| {
            let mut idx = 0;
            while idx + 1 < children.len() && remaining >= children[idx].count {
                remaining -= children[idx].count;
                idx += 1;
            }
            idx
        })
    }

    /// The sum of a leaf's first `pos` keys plus `before`, hashing at most half the leaf.
    fn leaf_prefix(
        &self,
        items: &[ReconKey],
        pos: usize,
        before: ItemSum,
        leaf_sum: ItemSum,
    ) -> ItemSum {
        if pos <= items.len() / 2 {
            before.plus(&sum_of(&items[..pos]))
        } else {
            before.plus(&leaf_sum).minus(&sum_of(&items[pos..]))
        }
    }

    fn insert_into(
        &mut self,
        node: u32,
        height: u32,
        key: &ReconKey,
        sum: &ItemSum,
        rightmost: bool,
    ) -> Insert {
        if height == 0 {
            return self.insert_leaf(node, key, rightmost);
        }
        let children = &self.inners[node as usize].children;
        let idx = child_for(children, key);
        let child = children[idx].node;
        let last = idx + 1 == children.len();
        let result = self.insert_into(child, height - 1, key, sum, rightmost && last);
        let children = &mut self.inners[node as usize].children;
        let entry = &mut children[idx];
        match result {
            Insert::Present => Insert::Present,
            Insert::Done => {
                entry.count += 1;
                entry.sum.add(sum);
                entry.min = entry.min.min(*key);
                Insert::Done
            }
            Insert::Split(right) => {
                // The left part keeps what the right part did not take.
                entry.count = entry.count + 1 - right.count;
                entry.sum.add(sum);
                entry.sum.sub(&right.sum);
                entry.min = entry.min.min(*key);
                children.insert(idx + 1, right);
                if children.len() <= INNER_CAP {
                    return Insert::Done;
                }
                let append = rightmost && idx + 1 >= children.len() / 2;
                self.split_inner(node, append)
            }
        }
    }

    fn insert_leaf(&mut self, node: u32, key: &ReconKey, rightmost: bool) -> Insert {
        let items = &mut self.leaves[node as usize].items;
        let pos = match items.binary_search(key) {
            Ok(_) => return Insert::Present,
            Err(pos) => pos,
        };
        if items.len() == items.capacity() {
            items.reserve_exact(LEAF_GROW.min(LEAF_CAP + 1 - items.len()));
        }
        items.insert(pos, *key);
        if items.len() <= LEAF_CAP {
            return Insert::Done;
        }
        let n = items.len();
        // Appends (the common case) leave the old leaf 7/8 full instead of half full.
        let append = rightmost && pos >= n / 2;
        let cut = if append { n - LEAF_CAP / 8 } else { n / 2 };
        let mut right = Vec::with_capacity(n - cut + LEAF_GROW);
        right.extend(items.drain(cut..));
        items.shrink_to(items.len() + if append { 0 } else { LEAF_GROW });
        let entry = Child {
            min: right[0],
            count: right.len(),
            sum: sum_of(&right),
            node: 0,
        };
        let node = self.alloc_leaf(right);
        Insert::Split(Child { node, ..entry })
    }

    fn split_inner(&mut self, node: u32, append: bool) -> Insert {
        let children = &mut self.inners[node as usize].children;
        let n = children.len();
        let cut = if append { n - INNER_CAP / 8 } else { n / 2 };
        let mut right = Vec::with_capacity(INNER_CAP + 1);
        right.extend(children.drain(cut..));
        let mut entry = Child {
            min: right[0].min,
            count: 0,
            sum: ItemSum::ZERO,
            node: 0,
        };
        for c in &right {
            entry.count += c.count;
            entry.sum.add(&c.sum);
        }
        entry.node = self.alloc_inner(right);
        Insert::Split(entry)
    }

    /// The root split: a new root above the old one and its new sibling.
    fn grow_root(&mut self, right: Child) {
        let left = Child {
            min: self.node_min(self.root, self.height),
            count: self.len - right.count,
            sum: self.total.minus(&right.sum),
            node: self.root,
        };
        let mut children = Vec::with_capacity(INNER_CAP + 1);
        children.push(left);
        children.push(right);
        self.root = self.alloc_inner(children);
        self.height += 1;
    }

    fn node_min(&self, node: u32, height: u32) -> ReconKey {
        if height == 0 {
            self.leaves[node as usize].items.first().copied()
        } else {
            self.inners[node as usize].children.first().map(|c| c.min)
        }
        .unwrap_or_default()
    }

    fn remove_from(&mut self, node: u32, height: u32, key: &ReconKey, sum: &ItemSum) -> Remove {
        if height == 0 {
            let items = &mut self.leaves[node as usize].items;
            let Ok(pos) = items.binary_search(key) else {
                return Remove::Absent;
            };
            items.remove(pos);
            if items.capacity() - items.len() > 2 * LEAF_GROW {
                items.shrink_to(items.len() + LEAF_GROW);
            }
            return Remove::Done {
                now_empty: items.is_empty(),
            };
        }
        let children = &self.inners[node as usize].children;
        let idx = child_for(children, key);
        let child = children[idx].node;
        let Remove::Done { now_empty } = self.remove_from(child, height - 1, key, sum) else {
            return Remove::Absent;
        };
        if now_empty {
            self.inners[node as usize].children.remove(idx);
            self.free(child, height - 1);
        } else {
            let new_min = self.node_min(child, height - 1);
            let entry = &mut self.inners[node as usize].children[idx];
            entry.count -= 1;
            entry.sum.sub(sum);
            entry.min = new_min;
        }
        Remove::Done {
            now_empty: self.inners[node as usize].children.is_empty(),
        }
    }

    /// After a removal: an empty tree becomes one empty leaf; a root with one child hands
    /// over to it.
    fn shrink_root(&mut self) {
        while self.height > 0 {
            let children = &self.inners[self.root as usize].children;
            let next = match children.len() {
                0 => None,
                1 => Some(children[0].node),
                _ => return,
            };
            self.free(self.root, self.height);
            match next {
                Some(child) => {
                    self.root = child;
                    self.height -= 1;
                }
                None => {
                    self.root = self.alloc_leaf(Vec::new());
                    self.height = 0;
                }
            }
        }
    }

    fn alloc_leaf(&mut self, items: Vec<ReconKey>) -> u32 {
        if let Some(i) = self.free_leaves.pop() {
            self.leaves[i as usize].items = items;
            return i;
        }
        let i = arena_index(self.leaves.len());
        self.leaves.push(Leaf { items });
        i
    }

    fn alloc_inner(&mut self, children: Vec<Child>) -> u32 {
        if let Some(i) = self.free_inners.pop() {
            self.inners[i as usize].children = children;
            return i;
        }
        let i = arena_index(self.inners.len());
        self.inners.push(Inner { children });
        i
    }

    fn free(&mut self, node: u32, height: u32) {
        if height == 0 {
            self.leaves[node as usize].items = Vec::new();
            self.free_leaves.push(node);
        } else {
            self.inners[node as usize].children = Vec::new();
            self.free_inners.push(node);
        }
    }

    /// Checks every cached count, sum and minimum against the keys (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        fn walk(ix: &ReconIndex, node: u32, height: u32, out: &mut Vec<ReconKey>) -> Child {
            if height == 0 {
                let items = &ix.leaves[node as usize].items;
                assert!(items.len() <= LEAF_CAP && items.capacity() <= LEAF_CAP + 1);
                out.extend_from_slice(items);
                return Child {
                    min: items.first().copied().unwrap_or_default(),
                    count: items.len(),
                    sum: sum_of(items),
                    node,
                };
            }
            let children = &ix.inners[node as usize].children;
            assert!(!children.is_empty() && children.len() <= INNER_CAP);
            let mut total = Child {
                min: children[0].min,
                count: 0,
                sum: ItemSum::ZERO,
                node,
            };
            for c in children {
                let got = walk(ix, c.node, height - 1, out);
                assert_eq!((got.min, got.count, got.sum), (c.min, c.count, c.sum));
                total.count += c.count;
                total.sum.add(&c.sum);
            }
            total
        }
        let mut keys = Vec::new();
        let top = walk(self, self.root, self.height, &mut keys);
        assert_eq!(top.count, self.len);
        assert_eq!(top.sum, self.total);
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "keys sorted and unique"
        );
    }
}

/// An iterator over keys of a [`ReconIndex`] in order (from [`ReconIndex::range`]).
#[derive(Debug)]
pub struct RangeIter<'a> {
    index: &'a ReconIndex,
    /// Inner nodes from the root down to the current leaf, with the child taken at each.
    path: Vec<(u32, usize)>,
    items: std::slice::Iter<'a, ReconKey>,
    remaining: usize,
}

impl Iterator for RangeIter<'_> {
    type Item = ReconKey;

    fn next(&mut self) -> Option<ReconKey> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(k) = self.items.next() {
                self.remaining -= 1;
                return Some(*k);
            }
            // The leaf is exhausted: climb to the first ancestor with a next child, then take
            // the leftmost path below that child.
            let depth = self.path.len();
            let mut node = loop {
                let (inner, idx) = self.path.pop()?;
                let children = &self.index.inners[inner as usize].children;
                if let Some(c) = children.get(idx + 1) {
                    self.path.push((inner, idx + 1));
                    break c.node;
                }
            };
            while self.path.len() < depth {
                self.path.push((node, 0));
                node = self.index.inners[node as usize].children.first()?.node;
            }
            self.items = self.index.leaves[node as usize].items.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for RangeIter<'_> {}
