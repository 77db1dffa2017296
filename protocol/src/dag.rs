//! The event DAG: every accepted event of one chain, stored compactly.
//!
//! Events live in *slots* (dense `u32` indices in arrival order). Per event the store keeps the
//! id, the signature, a small [`Meta`] (author index, links as slots, clock, seq, time), the
//! parent slots in one shared vector, and the body bytes in a chunked arena. The header is not
//! kept: it is re-encoded from these fields on demand, which saves ~150 bytes per event (DESIGN
//! asks for ≤ 300 bytes of overhead per event). The id → slot index is a `hashbrown::HashTable`
//! of bare slots hashed with a seeded hasher, so it costs ~5 bytes per event and an adversary
//! who does not know the seed cannot aim collisions at it.
//!
//! Bodies can be absent: compaction drops the values of settled superseded versions, and a peer
//! that compacted serves those events without them. Such a slot keeps its header fields and
//! signature like any other, and in the arena, instead of the body, the put's *stub*
//! (`head ‖ blake3(tail)`, see `event`): its key, record links and seal metadata, from which
//! the header's body hash is recomputed.
//!
//! Each event also records the interned set of *admin events* (genesis, grants, revokes) in its
//! causal past (see `admin_sets`). Grants and revokes are rare, so these sets are few and shared;
//! with them "is this grant an ancestor of that event?" is a binary search instead of a walk.

use std::hash::BuildHasher;

mod snapshot;

use ed25519_dalek::VerifyingKey;
use hashbrown::HashTable;

use crate::event::{Body, BodyKind, Event, Header, VERSION};
use crate::ids::{EventId, PublicKey, Signature};

/// Dense index of an event in the store.
pub(crate) type Slot = u32;
/// "No slot" (for `prev` of an author's first event, and other absent links).
pub(crate) const NONE: Slot = u32::MAX;

/// What the store keeps per event besides id, signature and body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) seq: u64,
    pub(crate) clock: u64,
    pub(crate) time_ms: u64,
    pub(crate) body_at: u64,
    pub(crate) author: u32,
    pub(crate) prev: Slot,
    pub(crate) parents_at: u32,
    pub(crate) body_len: u32,
    /// Interned set of admin ordinals in the causal past of this event, itself included.
    pub(crate) admin_set: u32,
    /// For puts: the view's record index. For admin events: the admin ordinal.
    pub(crate) aux: u32,
    /// The next event by the same author whose `prev` is this one (first seen), for
    /// equivocation detection.
    pub(crate) next_by_author: Slot,
    pub(crate) parents_len: u8,
    pub(crate) kind: BodyKind,
    /// Whether a put currently has effect in the view.
    pub(crate) effective: bool,
    /// Whether the body is stored (false once compacted away, or if it arrived without one).
    pub(crate) has_body: bool,
}

/// A known author: the key, its decompressed form (decompression is slow, do it once), and
/// the slot of its first event (for seq-0 equivocation detection).
#[derive(Debug)]
pub(crate) struct Author {
    pub(crate) key: PublicKey,
    pub(crate) vk: VerifyingKey,
    pub(crate) first: Slot,
    pub(crate) equivocated: bool,
}

const MAX_CHUNK_BYTES: usize = 1 << 20;
const FIRST_CHUNK_BYTES: usize = 4 << 10;

/// Append-only body storage in chunks, so growth never copies old bodies and the allocation
/// overhead per body is zero. Chunks start at 4 KiB and double up to 1 MiB, so a replica with
/// few events (the simulator runs 100,000 of them) stays small. A body's address is
/// `chunk << 32 | offset`.
#[derive(Debug, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
}

impl Arena {
    fn push(&mut self, bytes: &[u8]) -> u64 {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= bytes.len());
        if !fits {
            let next = self
                .chunks
                .last()
                .map_or(FIRST_CHUNK_BYTES, |c| c.capacity() * 2);
            self.chunks.push(Vec::with_capacity(
                next.min(MAX_CHUNK_BYTES).max(bytes.len()),
            ));
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let at = ((idx as u64) << 32) | chunk.len() as u64;
        chunk.extend_from_slice(bytes);
        at
    }

    fn get(&self, at: u64, len: u32) -> &[u8] {
        let chunk = (at >> 32) as usize;
        let off = (at & 0xffff_ffff) as usize;
        self.chunks
            .get(chunk)
            .and_then(|c| c.get(off..off + len as usize))
            .unwrap_or(&[])
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum()
    }
}

/// Interned, sorted sets of admin ordinals.
#[derive(Debug, Default)]
pub(crate) struct AdminSets {
    sets: Vec<Vec<u32>>,
    index: hashbrown::HashMap<Vec<u32>, u32>,
    unions: hashbrown::HashMap<(u32, u32), u32>,
}

impl AdminSets {
    pub(crate) fn get(&self, id: u32) -> &[u32] {
        self.sets.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether every ordinal in every set is below `n` (the number of admin events).
    pub(crate) fn all_below(&self, n: u32) -> bool {
        self.sets.iter().all(|s| s.last().is_none_or(|&o| o < n))
    }

    pub(crate) fn contains(&self, id: u32, ordinal: u32) -> bool {
        self.get(id).binary_search(&ordinal).is_ok()
    }

    pub(crate) fn intern(&mut self, set: Vec<u32>) -> u32 {
        if let Some(&id) = self.index.get(&set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(set.clone());
        self.index.insert(set, id);
        id
    }

    pub(crate) fn union(&mut self, a: u32, b: u32) -> u32 {
        if a == b {
            return a;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&u) = self.unions.get(&key) {
            return u;
        }
        let (x, y) = (self.get(a), self.get(b));
        let u = if is_subset(y, x) {
            a
        } else if is_subset(x, y) {
            b
        } else {
            let mut merged: Vec<u32> = x.iter().chain(y).copied().collect();
            merged.sort_unstable();
            merged.dedup();
            self.intern(merged)
        };
        if self.unions.len() > 4096 {
            self.unions.clear();
        }
        self.unions.insert(key, u);
        u
    }

    pub(crate) fn with(&mut self, id: u32, ordinal: u32) -> u32 {
        let mut s = self.get(id).to_vec();
        if let Err(pos) = s.binary_search(&ordinal) {
            s.insert(pos, ordinal);
        }
        self.intern(s)
    }

    fn heap_bytes(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.capacity() * 8 + 24)
            .sum::<usize>()
            + self.index.capacity() * 40
    }
}

fn is_subset(small: &[u32], big: &[u32]) -> bool {
    small.len() <= big.len() && small.iter().all(|x| big.binary_search(x).is_ok())
}

/// Where a validated event goes: its links as slots and its derived state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    pub(crate) author: u32,
    pub(crate) prev: Slot,
    pub(crate) parents: &'a [Slot],
    pub(crate) admin_set: u32,
    pub(crate) aux: u32,
    pub(crate) effective: bool,
}

/// The store of accepted events.
#[derive(Debug)]
pub(crate) struct Dag {
    hasher: foldhash::quality::FixedState,
    table: HashTable<Slot>,
    pub(crate) ids: Vec<EventId>,
    sigs: Vec<Signature>,
    pub(crate) meta: Vec<Meta>,
    parent_slots: Vec<Slot>,
    arena: Arena,
    pub(crate) authors: Vec<Author>,
    author_index: hashbrown::HashMap<PublicKey, u32, crate::det::Fixed>,
    pub(crate) admin_sets: AdminSets,
    /// Events without children, by id (deterministic order).
    pub(crate) heads: std::collections::BTreeSet<EventId>,
    /// Bytes in the arena: bodies, and stubs of compacted puts.
    pub(crate) body_bytes: u64,
    /// Number of events stored without their bodies (as stubs).
    bodiless: usize,
}

impl Dag {
    pub(crate) fn new(hash_seed: u64) -> Dag {
        let mut admin_sets = AdminSets::default();
        admin_sets.intern(Vec::new());
        Dag {
            hasher: foldhash::quality::FixedState::with_seed(hash_seed),
            table: HashTable::new(),
            ids: Vec::new(),
            sigs: Vec::new(),
            meta: Vec::new(),
            parent_slots: Vec::new(),
            arena: Arena::default(),
            authors: Vec::new(),
            author_index: hashbrown::HashMap::default(),
            admin_sets,
            heads: Default::default(),
            body_bytes: 0,
            bodiless: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn slot(&self, id: &EventId) -> Option<Slot> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&s| self.ids[s as usize] == *id)
            .copied()
    }

    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.slot(id).is_some()
    }

    pub(crate) fn meta(&self, slot: Slot) -> &Meta {
        &self.meta[slot as usize]
    }

    pub(crate) fn id(&self, slot: Slot) -> EventId {
        self.ids[slot as usize]
    }

    pub(crate) fn parents(&self, slot: Slot) -> &[Slot] {
        let m = &self.meta[slot as usize];
        let at = m.parents_at as usize;
        &self.parent_slots[at..at + m.parents_len as usize]
    }

    /// The body bytes; empty when the body is not stored.
    pub(crate) fn body_bytes(&self, slot: Slot) -> &[u8] {
        let m = &self.meta[slot as usize];
        if !m.has_body {
            return &[];
        }
        self.arena.get(m.body_at, m.body_len)
    }

    pub(crate) fn has_body(&self, slot: Slot) -> bool {
        self.meta[slot as usize].has_body
    }

    /// The stub of a put stored without its body (`None` when the body is here).
    pub(crate) fn stub(&self, slot: Slot) -> Option<&[u8]> {
        let m = &self.meta[slot as usize];
        (!m.has_body).then(|| self.arena.get(m.body_at, m.body_len))
    }

    /// Number of body-less events.
    pub(crate) fn pruned_len(&self) -> usize {
        self.bodiless
    }

    /// Replaces the bodies of `drop` (puts that have one) by their stubs where the stub is
    /// smaller (a value of 32 bytes or less is cheaper kept than hashed), then rewrites the
    /// arena without the old bodies. Returns the slots compacted and the bytes freed.
    pub(crate) fn prune(&mut self, drop: &[Slot]) -> (Vec<Slot>, u64) {
        let mut stubs: crate::det::HashMap<Slot, Vec<u8>> = crate::det::HashMap::default();
        for &slot in drop {
            let Some(m) = self.meta.get(slot as usize) else {
                continue;
            };
            if !m.has_body || m.kind != BodyKind::Put {
                continue;
            }
            let body = self.arena.get(m.body_at, m.body_len);
            if let Some(stub) = crate::event::put_stub(body).filter(|s| s.len() < body.len()) {
                stubs.insert(slot, stub);
            }
        }
        // Rewrite the arena so the memory is really given back (chunks are never reused).
        let mut arena = Arena::default();
        let before = self.body_bytes;
        let mut total = 0u64;
        for (slot, m) in self.meta.iter_mut().enumerate() {
            let bytes = match stubs.get(&(slot as Slot)) {
                Some(stub) => {
                    m.has_body = false;
                    self.bodiless += 1;
                    stub.as_slice()
                }
                None => self.arena.get(m.body_at, m.body_len),
            };
            m.body_at = arena.push(bytes);
            m.body_len = bytes.len() as u32;
            total += bytes.len() as u64;
        }
        self.arena = arena;
        self.body_bytes = total;
        let mut done: Vec<Slot> = stubs.into_keys().collect();
        done.sort_unstable();
        (done, before.saturating_sub(total))
    }

    pub(crate) fn body(&self, slot: Slot) -> Option<Body> {
        postcard::from_bytes(self.body_bytes(slot)).ok()
    }

    /// The head of a stored put: from its body or its stub. `None` for other kinds.
    pub(crate) fn put_head(&self, slot: Slot) -> Option<crate::event::PutHead> {
        match self.stub(slot) {
            Some(stub) => crate::event::decode_stub(stub),
            None => match self.body(slot)? {
                Body::Put(p) => Some(crate::event::PutHead::of(&p)),
                _ => None,
            },
        }
    }

    /// A stored put's key and links, borrowed from its body or stub (no allocation). `None`
    /// for other kinds.
    pub(crate) fn head_ref(&self, slot: Slot) -> Option<crate::event::PutHeadRef<'_>> {
        let m = &self.meta[slot as usize];
        if m.kind != BodyKind::Put {
            return None;
        }
        let bytes = self.arena.get(m.body_at, m.body_len);
        if m.has_body {
            crate::event::PutHeadRef::of_body(bytes)
        } else {
            crate::event::PutHeadRef::of_stub(bytes)
        }
    }

    /// A put's record links: the slot of its `previous` (`NONE` for a first version) and its
    /// record seq, from its body or its stub.
    pub(crate) fn put_links(&self, slot: Slot) -> (Slot, u64) {
        match self.head_ref(slot) {
            Some(h) => (
                h.previous.and_then(|q| self.slot(&q)).unwrap_or(NONE),
                h.seq,
            ),
            None => (NONE, 0),
        }
    }

    pub(crate) fn author_key(&self, slot: Slot) -> PublicKey {
        self.authors[self.meta[slot as usize].author as usize].key
    }

    /// Looks up or adds an author; `None` when the key is not a valid, non-weak point.
    pub(crate) fn author_index(&mut self, key: &PublicKey) -> Option<u32> {
        if let Some(&i) = self.author_index.get(key) {
            return Some(i);
        }
        let vk = crate::verify::author_key(key)?;
        let i = self.authors.len() as u32;
        self.authors.push(Author {
            key: *key,
            vk,
            first: NONE,
            equivocated: false,
        });
        self.author_index.insert(*key, i);
        Some(i)
    }

    pub(crate) fn known_author(&self, key: &PublicKey) -> Option<u32> {
        self.author_index.get(key).copied()
    }

    /// Adds a validated event. Returns its slot and, if it equivocates, the slot of the other
    /// event with the same author and seq.
    pub(crate) fn insert(&mut self, ev: &Event, at: Placement<'_>) -> (Slot, Option<Slot>) {
        let Placement {
            author,
            prev,
            parents,
            admin_set,
            aux,
            effective,
        } = at;
        let slot = self.ids.len() as Slot;
        // A body-less event is a compacted put; its bytes are its stub.
        let has_body = ev.body.is_some();
        let body: &[u8] = &ev.body_bytes;
        let body_at = self.arena.push(body);
        self.body_bytes += body.len() as u64;
        if !has_body {
            self.bodiless += 1;
        }
        let parents_at = self.parent_slots.len() as u32;
        self.parent_slots.extend_from_slice(parents);
        self.ids.push(ev.id);
        self.sigs.push(ev.sig);
        self.meta.push(Meta {
            seq: ev.header.seq,
            clock: ev.header.clock,
            time_ms: ev.header.time_ms,
            body_at,
            author,
            prev,
            parents_at,
            body_len: body.len() as u32,
            admin_set,
            aux,
            next_by_author: NONE,
            parents_len: parents.len() as u8,
            kind: ev.header.body_kind,
            effective,
            has_body,
        });
        let hasher = &self.hasher;
        let ids = &self.ids;
        self.table
            .insert_unique(hasher.hash_one(ev.id), slot, |&s| {
                hasher.hash_one(ids[s as usize])
            });
        for &p in parents {
            self.heads.remove(&self.ids[p as usize]);
        }
        if prev != NONE {
            self.heads.remove(&self.ids[prev as usize]);
        }
        self.heads.insert(ev.id);
        // Equivocation: another event by this author already follows the same prev (or is
        // also the author's first event).
        let other = if prev == NONE {
            let a = &mut self.authors[author as usize];
            if a.first == NONE {
                a.first = slot;
                None
            } else {
                Some(a.first)
            }
        } else {
            let m = &mut self.meta[prev as usize];
            if m.next_by_author == NONE {
                m.next_by_author = slot;
                None
            } else {
                Some(m.next_by_author)
            }
        };
        if other.is_some() {
            self.authors[author as usize].equivocated = true;
        }
        (slot, other)
    }

    pub(crate) fn set_effective(&mut self, slot: Slot, effective: bool) {
        self.meta[slot as usize].effective = effective;
    }

    /// Rebuilds the header of a stored event.
    pub(crate) fn header(&self, slot: Slot) -> Header {
        let m = &self.meta[slot as usize];
        Header {
            version: VERSION,
            author: self.authors[m.author as usize].key,
            seq: m.seq,
            prev: (m.prev != NONE).then(|| self.ids[m.prev as usize]),
            parents: self
                .parents(slot)
                .iter()
                .map(|&p| self.ids[p as usize])
                .collect(),
            clock: m.clock,
            time_ms: m.time_ms,
            body_hash: match self.stub(slot) {
                Some(stub) => crate::event::stub_body_hash(stub),
                None => crate::event::body_hash(m.kind, self.body_bytes(slot)),
            },
            body_kind: m.kind,
        }
    }

    /// Rebuilds the full event (for serving peers and persistence).
    pub(crate) fn event(&self, slot: Slot) -> Event {
        let m = &self.meta[slot as usize];
        let body_bytes = self.arena.get(m.body_at, m.body_len).to_vec();
        let body = if m.has_body {
            postcard::from_bytes(&body_bytes).ok()
        } else {
            None
        };
        Event {
            id: self.ids[slot as usize],
            header: self.header(slot),
            sig: self.sigs[slot as usize],
            body,
            body_bytes,
        }
    }

    /// The slot of `author`'s last event: its first, followed along `next_by_author` (which
    /// is the author's own chain when it never equivocated).
    pub(crate) fn last_by_author(&self, author: u32) -> Option<Slot> {
        let mut s = self.authors.get(author as usize)?.first;
        if s == NONE {
            return None;
        }
        while let Some(m) = self.meta.get(s as usize) {
            if m.next_by_author == NONE {
                break;
            }
            s = m.next_by_author;
        }
        Some(s)
    }

    /// Marks `slot` and its causal past (through parents and `prev`) in `mark`. Slots are in
    /// dependency order, so one backward pass finds them all.
    pub(crate) fn mark_past(&self, slot: Slot, mark: &mut [bool]) {
        let Some(m) = mark.get_mut(slot as usize) else {
            return;
        };
        *m = true;
        for s in (0..=slot).rev() {
            if !mark[s as usize] {
                continue;
            }
            let prev = self.meta[s as usize].prev;
            if prev != NONE {
                mark[prev as usize] = true;
            }
            for &p in self.parents(s) {
                mark[p as usize] = true;
            }
        }
    }

    /// Marks `slot` and every event that has it in its causal past in `mark` (one forward
    /// pass, for the same reason).
    pub(crate) fn mark_future(&self, slot: Slot, mark: &mut [bool]) {
        let Some(m) = mark.get_mut(slot as usize) else {
            return;
        };
        *m = true;
        for s in slot + 1..self.len() as Slot {
            let prev = self.meta[s as usize].prev;
            let after = (prev != NONE && mark[prev as usize])
                || self.parents(s).iter().any(|&p| mark[p as usize]);
            if after {
                mark[s as usize] = true;
            }
        }
    }

    /// Slots of every ancestor of `from` (inclusive) whose author is `author`, sorted.
    pub(crate) fn author_events_in_past(&self, from: &[Slot], author: u32) -> Vec<Slot> {
        let mut seen = vec![false; self.len()];
        let mut stack: Vec<Slot> = from.to_vec();
        let mut found = Vec::new();
        while let Some(s) = stack.pop() {
            let Some(flag) = seen.get_mut(s as usize) else {
                continue;
            };
            if *flag {
                continue;
            }
            *flag = true;
            let m = &self.meta[s as usize];
            if m.author == author {
                found.push(s);
            }
            stack.extend_from_slice(self.parents(s));
            if m.prev != NONE {
                stack.push(m.prev);
            }
        }
        found.sort_unstable();
        found
    }

    /// Heap bytes held by the store, excluding body bytes themselves (for the memory report).
    pub(crate) fn overhead_bytes(&self) -> usize {
        self.table.capacity() * (4 + 1)
            + self.ids.capacity() * 32
            + self.sigs.capacity() * 64
            + self.meta.capacity() * std::mem::size_of::<Meta>()
            + self.parent_slots.capacity() * 4
            + self
                .arena
                .heap_bytes()
                .saturating_sub(self.body_bytes as usize)
            + self.authors.capacity() * std::mem::size_of::<Author>()
            + self.author_index.capacity() * 40
            + self.admin_sets.heap_bytes()
            + self.heads.len() * 48
    }
}
