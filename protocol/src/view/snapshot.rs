//! The view's part of a snapshot: its records, in index order. The key index is derived
//! again on restore.

use super::*;
use crate::codec::{Corrupt, Dec, Enc};

impl View {
    /// Appends the records to a snapshot.
    pub(crate) fn encode(&self, e: &mut Enc) {
        e.len(self.records.len());
        for r in &self.records {
            e.str(&r.key);
            e.u32(r.first);
            e.u32(r.latest);
            e.u64(r.latest_seq);
            e.u32s(&r.versions);
            e.u32s(&r.leaves);
        }
    }

    /// Reads records written by [`View::encode`]; every slot must be below `events`.
    pub(crate) fn decode(d: &mut Dec<'_>, events: usize) -> Result<View, Corrupt> {
        let n = d.count(8 + 4 + 4 + 8 + 8 + 8)?;
        let mut view = View::default();
        view.records.reserve_exact(n);
        let in_range = |s: Slot| (s as usize) < events;
        for r in 0..n {
            let key: Box<str> = d.str()?.into();
            let first = d.u32()?;
            let latest = d.u32()?;
            let latest_seq = d.u64()?;
            let versions = d.u32s()?;
            let leaves = d.u32s()?;
            let ok = in_range(first)
                && (latest == NONE || in_range(latest))
                && versions.iter().all(|&s| in_range(s))
                && leaves.iter().all(|&s| in_range(s));
            if !ok {
                return Err(Corrupt("a record names an event out of range"));
            }
            view.keys.entry(key.clone()).or_default().push(r as u32);
            view.records.push(Record {
                key,
                first,
                versions,
                leaves,
                latest,
                latest_seq,
            });
        }
        Ok(view)
    }
}
