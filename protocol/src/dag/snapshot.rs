//! The DAG's part of a snapshot. Bulk arrays (ids, signatures, per-event fields, parent slots,
//! bodies) are raw little-endian blocks, so writing is a few copies and reading is one bounds
//! check per block plus one pass that checks every stored link, because the rest of the crate
//! indexes by those links and must never be handed one out of range.

use super::*;
use crate::codec::{Corrupt, Dec, Enc};
use crate::event::{HARD_MAX_EVENT_BYTES, MAX_PARENTS};

/// Bytes of one event's fields: seq, clock, time (u64); author, prev, body_len, admin_set,
/// aux, next_by_author (u32); parents_len, kind, flags (u8).
const META_BYTES: usize = 3 * 8 + 6 * 4 + 3;
const EFFECTIVE: u8 = 1;
const HAS_BODY: u8 = 2;

fn kind_byte(k: BodyKind) -> u8 {
    match k {
        BodyKind::Genesis => 0,
        BodyKind::Put => 1,
        BodyKind::Grant => 2,
        BodyKind::Revoke => 3,
        BodyKind::ReadKeyShare => 4,
        BodyKind::Rotate => 5,
    }
}

fn kind_of(b: u8) -> Result<BodyKind, Corrupt> {
    Ok(match b {
        0 => BodyKind::Genesis,
        1 => BodyKind::Put,
        2 => BodyKind::Grant,
        3 => BodyKind::Revoke,
        4 => BodyKind::ReadKeyShare,
        5 => BodyKind::Rotate,
        _ => return Err(Corrupt("unknown body kind")),
    })
}

fn meta_row(m: &Meta, out: &mut [u8; META_BYTES]) {
    out[0..8].copy_from_slice(&m.seq.to_le_bytes());
    out[8..16].copy_from_slice(&m.clock.to_le_bytes());
    out[16..24].copy_from_slice(&m.time_ms.to_le_bytes());
    let words = [
        m.author,
        m.prev,
        m.body_len,
        m.admin_set,
        m.aux,
        m.next_by_author,
    ];
    for (i, w) in words.iter().enumerate() {
        out[24 + 4 * i..28 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    out[48] = m.parents_len;
    out[49] = kind_byte(m.kind);
    out[50] = u8::from(m.effective) * EFFECTIVE + u8::from(m.has_body) * HAS_BODY;
}

fn u64_at(row: &[u8; META_BYTES], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&row[at..at + 8]);
    u64::from_le_bytes(b)
}

fn u32_at(row: &[u8; META_BYTES], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&row[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Parses one event's fields; `parents_at` and `body_at` are filled in by the caller.
fn parse_meta(row: &[u8; META_BYTES]) -> Result<Meta, Corrupt> {
    let flags = row[50];
    if flags & !(EFFECTIVE | HAS_BODY) != 0 {
        return Err(Corrupt("unknown event flags"));
    }
    Ok(Meta {
        seq: u64_at(row, 0),
        clock: u64_at(row, 8),
        time_ms: u64_at(row, 16),
        body_at: 0,
        author: u32_at(row, 24),
        prev: u32_at(row, 28),
        parents_at: 0,
        body_len: u32_at(row, 32),
        admin_set: u32_at(row, 36),
        aux: u32_at(row, 40),
        next_by_author: u32_at(row, 44),
        parents_len: row[48],
        kind: kind_of(row[49])?,
        effective: flags & EFFECTIVE != 0,
        has_body: flags & HAS_BODY != 0,
    })
}

impl Dag {
    /// Appends the DAG to a snapshot.
    pub(crate) fn encode(&self, e: &mut Enc) {
        let n = self.len();
        e.buf.reserve(
            n * (32 + 64 + META_BYTES) + self.parent_slots.len() * 4 + self.body_bytes as usize,
        );
        e.len(n);
        for id in &self.ids {
            e.raw(&id.0);
        }
        for sig in &self.sigs {
            e.raw(&sig.0);
        }
        let mut row = [0u8; META_BYTES];
        for m in &self.meta {
            meta_row(m, &mut row);
            e.raw(&row);
        }
        e.u32s(&self.parent_slots);
        e.len(self.body_bytes as usize);
        for m in &self.meta {
            e.raw(self.arena.get(m.body_at, m.body_len));
        }
        e.len(self.authors.len());
        for a in &self.authors {
            e.raw(&a.key.0);
            e.u32(a.first);
            e.u8(u8::from(a.equivocated));
        }
        e.len(self.admin_sets.sets.len());
        for set in &self.admin_sets.sets {
            e.u32s(set);
        }
        e.len(self.heads.len());
        for h in &self.heads {
            e.id(h);
        }
    }

    /// Reads a DAG written by [`Dag::encode`], checking every link it stores. Admin-set
    /// ordinals and `aux` are checked by the caller, which knows the trust and view sizes.
    pub(crate) fn decode(d: &mut Dec<'_>, hash_seed: u64) -> Result<Dag, Corrupt> {
        let n = d.count(32 + 64 + META_BYTES)?;
        if n == 0 || n >= NONE as usize {
            return Err(Corrupt("event count out of range"));
        }
        let (ids, _) = d.block(n, 32)?.as_chunks::<32>();
        let ids: Vec<EventId> = ids.iter().map(|b| EventId(*b)).collect();
        let (sigs, _) = d.block(n, 64)?.as_chunks::<64>();
        let sigs: Vec<Signature> = sigs.iter().map(|b| Signature(*b)).collect();
        let (rows, _) = d.block(n, META_BYTES)?.as_chunks::<META_BYTES>();
        let mut meta = rows.iter().map(parse_meta).collect::<Result<Vec<_>, _>>()?;
        let parent_slots = d.u32s()?;
        let bodies = d.bytes()?;
        let n_authors = d.count(32 + 4 + 1)?;
        let mut authors = Vec::with_capacity(n_authors);
        let mut author_index =
            hashbrown::HashMap::with_capacity_and_hasher(n_authors, crate::det::Fixed::default());
        for i in 0..n_authors {
            let key = PublicKey(d.array()?);
            let first = d.u32()?;
            let equivocated = match d.u8()? {
                0 => false,
                1 => true,
                _ => return Err(Corrupt("author flag is neither 0 nor 1")),
            };
            let vk = crate::verify::author_key(&key).ok_or(Corrupt("invalid author key"))?;
            if first != NONE && first as usize >= n {
                return Err(Corrupt("author's first event out of range"));
            }
            if author_index.insert(key, i as u32).is_some() {
                return Err(Corrupt("an author is listed twice"));
            }
            authors.push(Author {
                key,
                vk,
                first,
                equivocated,
            });
        }
        let admin_sets = decode_admin_sets(d)?;
        let n_heads = d.count(32)?;
        let heads = (0..n_heads)
            .map(|_| d.id())
            .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
        let arena = check_events(&mut meta, &parent_slots, bodies, authors.len(), &admin_sets)?;
        let bodiless = meta.iter().filter(|m| !m.has_body).count();
        let mut dag = Dag {
            hasher: foldhash::quality::FixedState::with_seed(hash_seed),
            table: HashTable::with_capacity(n),
            ids,
            sigs,
            meta,
            parent_slots,
            arena,
            authors,
            author_index,
            admin_sets,
            heads,
            body_bytes: bodies.len() as u64,
            bodiless,
        };
        let hasher = &dag.hasher;
        let ids = &dag.ids;
        for (slot, id) in ids.iter().enumerate() {
            dag.table
                .insert_unique(hasher.hash_one(id), slot as Slot, |&s| {
                    hasher.hash_one(ids[s as usize])
                });
        }
        if !dag.heads.iter().all(|h| dag.contains(h)) {
            return Err(Corrupt("a head is not a stored event"));
        }
        Ok(dag)
    }
}

fn decode_admin_sets(d: &mut Dec<'_>) -> Result<AdminSets, Corrupt> {
    let n = d.count(8)?;
    let mut sets = AdminSets::default();
    for i in 0..n {
        let set = d.u32s()?;
        if set.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Corrupt("an admin set is not sorted and distinct"));
        }
        if (i == 0) != set.is_empty() {
            return Err(Corrupt("only the first admin set is empty"));
        }
        if sets.intern(set) != i as u32 {
            return Err(Corrupt("an admin set is listed twice"));
        }
    }
    if n == 0 {
        return Err(Corrupt("no admin sets"));
    }
    Ok(sets)
}

/// Checks every event's links (all point to earlier slots, or forward along an author's
/// chain), fills in the parent and body addresses, and rebuilds the body arena.
fn check_events(
    meta: &mut [Meta],
    parent_slots: &[Slot],
    bodies: &[u8],
    n_authors: usize,
    admin_sets: &AdminSets,
) -> Result<Arena, Corrupt> {
    let n = meta.len();
    let mut arena = Arena::default();
    let mut parents_at = 0usize;
    let mut body_at = 0usize;
    for s in 0..n {
        // Every link must point to an earlier slot, so the events before this one are done.
        let (done, rest) = meta.split_at_mut(s);
        let Some(m) = rest.first_mut() else { break };
        let slot = s as Slot;
        let genesis = s == 0;
        if genesis != (m.kind == BodyKind::Genesis) {
            return Err(Corrupt("the genesis must be the first event and only it"));
        }
        if (m.author as usize) >= n_authors || (m.admin_set as usize) >= admin_sets.sets.len() {
            return Err(Corrupt("author or admin set out of range"));
        }
        if m.prev != NONE && m.prev >= slot {
            return Err(Corrupt("prev does not point to an earlier event"));
        }
        if m.next_by_author != NONE && (m.next_by_author <= slot || m.next_by_author as usize >= n)
        {
            return Err(Corrupt("next_by_author out of range"));
        }
        let len = m.parents_len as usize;
        let parents = parent_slots
            .get(parents_at..parents_at + len)
            .ok_or(Corrupt("parent slots end early"))?;
        if len > MAX_PARENTS || parents.iter().any(|&p| p >= slot) {
            return Err(Corrupt("a parent does not point to an earlier event"));
        }
        // Clocks and seqs are re-checked (cheap, and later arithmetic on them must not
        // overflow): clock = 1 + max parent clock, seq = prev.seq + 1.
        let clock = parents
            .iter()
            .filter_map(|&p| done.get(p as usize))
            .map(|p| p.clock)
            .max();
        let want_clock = match clock {
            None if genesis => Some(0),
            None => None,
            Some(c) => c.checked_add(1),
        };
        let want_seq = match done.get(m.prev as usize) {
            None if m.prev == NONE => Some(0),
            None => None,
            Some(p) => p.seq.checked_add(1),
        };
        if want_clock != Some(m.clock) || want_seq != Some(m.seq) {
            return Err(Corrupt("clock or seq breaks the structural rules"));
        }
        m.parents_at = parents_at as u32;
        parents_at += len;
        let blen = m.body_len as usize;
        if blen > HARD_MAX_EVENT_BYTES {
            return Err(Corrupt("body larger than any event"));
        }
        let body = bodies
            .get(body_at..body_at + blen)
            .ok_or(Corrupt("bodies end early"))?;
        // A body-less event is a compacted put, stored as its stub; the view reads its head.
        if !m.has_body && (m.kind != BodyKind::Put || crate::event::decode_stub(body).is_none()) {
            return Err(Corrupt("a body-less event is not a compacted put"));
        }
        body_at += blen;
        m.body_at = arena.push(body);
    }
    if parents_at != parent_slots.len() || body_at != bodies.len() {
        return Err(Corrupt("parent slots or bodies left over"));
    }
    Ok(arena)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_rows_round_trip_and_meta_stays_small() {
        assert!(std::mem::size_of::<Meta>() <= 64);
        let m = Meta {
            seq: 1,
            clock: u64::MAX,
            time_ms: 3,
            body_at: 0,
            author: 4,
            prev: NONE,
            parents_at: 0,
            body_len: 6,
            admin_set: 7,
            aux: 8,
            next_by_author: 9,
            parents_len: 10,
            kind: BodyKind::Revoke,
            effective: true,
            has_body: false,
        };
        let mut row = [0u8; META_BYTES];
        meta_row(&m, &mut row);
        let back = parse_meta(&row).unwrap();
        assert_eq!(format!("{m:?}"), format!("{back:?}"));
        row[50] = 0x80;
        assert!(parse_meta(&row).is_err());
    }
}
