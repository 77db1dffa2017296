//! Validation of a new event whose dependencies are all here: the structural rules (clock, seq,
//! author chain, record links) and the chain of trust (DESIGN §3), for full and compacted
//! puts alike.

use super::*;

impl Replica {
    /// Structural rules and the chain of trust; returns the admin set of the causal past.
    pub(super) fn validate(
        &mut self,
        ev: &Event,
        prev: Slot,
        parents: &[Slot],
    ) -> Result<u32, Reason> {
        let h = &ev.header;
        // Only a put may arrive without its body (a peer compacted it away): every other kind
        // is needed to decide authority.
        if ev.body.is_none() && h.body_kind != BodyKind::Put {
            return Err(Reason::MissingBody);
        }
        let want_clock = 1 + parents
            .iter()
            .map(|&p| self.dag.meta(p).clock)
            .max()
            .unwrap_or(0);
        if h.clock != want_clock {
            return Err(Reason::ClockMismatch {
                got: h.clock,
                want: want_clock,
            });
        }
        let mut at_set = parents
            .first()
            .map(|&p| self.dag.meta(p).admin_set)
            .unwrap_or(0);
        for &p in parents.iter().skip(1) {
            let s = self.dag.meta(p).admin_set;
            at_set = self.dag.admin_sets.union(at_set, s);
        }
        if prev != NONE {
            let pm = *self.dag.meta(prev);
            if self.dag.authors[pm.author as usize].key != h.author {
                return Err(Reason::PrevWrongAuthor);
            }
            if h.seq != pm.seq + 1 {
                return Err(Reason::SeqMismatch {
                    got: h.seq,
                    want: pm.seq + 1,
                });
            }
            if pm.clock >= h.clock {
                return Err(Reason::ClockMismatch {
                    got: h.clock,
                    want: pm.clock + 1,
                });
            }
            at_set = self.dag.admin_sets.union(at_set, pm.admin_set);
        }
        let Some(body) = &ev.body else {
            // A compacted put: its stub (verified against the header on decode) gives its key,
            // links and seal metadata, so it is checked like any put; only its value is missing.
            let Some(head) = ev.put_head() else {
                return Err(Reason::MissingBody);
            };
            self.check_previous(&head.key, head.previous, head.seq, h.clock)?;
            if let ValueHead::Sealed {
                scope,
                epoch,
                key_id,
            } = &head.value
            {
                let sets = &self.dag.admin_sets;
                let ok = self.trust.check_seal(sets, scope, *epoch, key_id, at_set);
                ok.map_err(|why| refused(h, Rights::Write, &head.key, why))?;
            }
            let q = Question {
                author: &h.author,
                target: Target::Key(&head.key),
                need: Rights::Write,
                at_set,
            };
            if !self.trust.may(&self.dag.admin_sets, q) {
                return Err(Reason::NotAuthorized {
                    author: h.author.short(),
                    need: Rights::Write,
                    target: head.key,
                });
            }
            return Ok(at_set);
        };
        let (target, need) = match body {
            Body::Genesis(_) => {
                return Err(Reason::Decode(DecodeError::BadHeader("a second genesis")));
            }
            Body::Put(p) => {
                self.check_previous(&p.key, p.previous, p.seq, h.clock)?;
                if let crate::event::PutValue::Sealed(s) = &p.value {
                    let sets = &self.dag.admin_sets;
                    let ok = self
                        .trust
                        .check_seal(sets, &s.scope, s.epoch, &s.key_id, at_set);
                    ok.map_err(|why| refused(h, Rights::Write, &p.key, why))?;
                }
                (Target::Key(&p.key), Rights::Write)
            }
            Body::Grant(g) => (Target::Scope(&g.scope), Rights::Admin),
            Body::Revoke(r) => {
                if self.trust.root_key_at(&self.dag.admin_sets, &r.key, at_set) {
                    return Err(Reason::RevokeRoot);
                }
                (Target::Scope(&r.scope), Rights::Admin)
            }
            Body::ReadKeyShare(s) => (Target::Scope(&s.scope), Rights::Admin),
            Body::Rotate(r) => {
                let sets = &self.dag.admin_sets;
                let ok = self.trust.check_rotation(sets, &h.author, r, at_set);
                ok.map_err(|why| refused(h, Rights::Admin, "(root rotation)", why))?;
                return Ok(at_set);
            }
        };
        let q = Question {
            author: &h.author,
            target,
            need,
            at_set,
        };
        if !self.trust.may(&self.dag.admin_sets, q) {
            let target = match target {
                Target::Key(k) | Target::Scope(k) => k.to_string(),
            };
            return Err(Reason::NotAuthorized {
                author: h.author.short(),
                need,
                target,
            });
        }
        Ok(at_set)
    }

    fn check_previous(
        &self,
        key: &str,
        previous: Option<EventId>,
        seq: u64,
        clock: u64,
    ) -> Result<(), Reason> {
        let Some(prev_id) = previous else {
            return Ok(());
        };
        let Some(slot) = self.dag.slot(&prev_id) else {
            return Err(Reason::BadPrevious("unknown"));
        };
        if self.dag.meta(slot).kind != BodyKind::Put {
            return Err(Reason::BadPrevious("not a put"));
        }
        if self.dag.meta(slot).clock >= clock {
            return Err(Reason::BadPrevious("not older than this version"));
        }
        // From its body, or its stub if it was compacted: both carry key and seq.
        match self.dag.head_ref(slot) {
            Some(q) if q.key != key => Err(Reason::BadPrevious("another key")),
            Some(q) if q.seq + 1 != seq => Err(Reason::BadPrevious("seq is not previous.seq + 1")),
            Some(_) => Ok(()),
            None => Err(Reason::BadPrevious("unreadable")),
        }
    }
}
