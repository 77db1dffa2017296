//! The chain of trust's part of a snapshot: the admin events, in ordinal order. Grants by
//! recipient and the global authority state are derived again on restore (admin events are
//! few); the per-set cache starts empty.

use super::*;
use crate::codec::{Corrupt, Dec, Enc};

const GENESIS: u8 = 0;
const GRANT: u8 = 1;
const REVOKE: u8 = 2;
const ROTATE: u8 = 3;
const SHARE: u8 = 4;

fn rights_byte(r: Rights) -> u8 {
    match r {
        Rights::Write => 0,
        Rights::Admin => 1,
    }
}

impl Trust {
    /// Appends the admin events to a snapshot.
    pub(crate) fn encode(&self, e: &mut Enc) {
        e.len(self.admins.len());
        for a in &self.admins {
            e.u64(a.clock);
            e.id(&a.id);
            e.raw(&a.author.0);
            e.u32(a.deps_set);
            e.u32(a.own_set);
            match &a.kind {
                AdminKind::Genesis => e.u8(GENESIS),
                AdminKind::Grant { to, scope, rights } => {
                    e.u8(GRANT);
                    e.raw(&to.0);
                    e.str(scope);
                    e.u8(rights_byte(*rights));
                }
                AdminKind::Revoke {
                    key,
                    scope,
                    key_events,
                } => {
                    e.u8(REVOKE);
                    e.raw(&key.0);
                    e.str(scope);
                    e.u32s(key_events);
                }
                AdminKind::Rotate {
                    lineage,
                    depth,
                    old,
                    new,
                    next,
                    key_events,
                } => {
                    e.u8(ROTATE);
                    e.u32(*lineage);
                    e.u32(*depth);
                    e.raw(&old.0);
                    e.raw(&new.0);
                    e.raw(next);
                    e.u32s(key_events);
                }
                AdminKind::Share {
                    scope,
                    epoch,
                    key_id,
                } => {
                    e.u8(SHARE);
                    e.str(scope);
                    e.u64(*epoch);
                    e.raw(key_id);
                }
            }
        }
    }

    /// Reads admin events written by [`Trust::encode`]. `sets` and `events` are the numbers
    /// of admin sets and stored events, to check the links against. The caller checks the
    /// admin ordinals against the DAG, then calls [`Trust::recompute_global`].
    pub(crate) fn decode(
        d: &mut Dec<'_>,
        roots: Vec<PublicKey>,
        next: Vec<[u8; 32]>,
        sets: usize,
        events: usize,
    ) -> Result<Trust, Corrupt> {
        let n = d.count(8 + 32 + 32 + 4 + 4 + 1)?;
        let lineages = roots.len() as u32;
        let mut trust = Trust::new(roots, next);
        for o in 0..n {
            let clock = d.u64()?;
            let id = d.id()?;
            let author = PublicKey(d.array()?);
            let deps_set = d.u32()?;
            let own_set = d.u32()?;
            if deps_set as usize >= sets || own_set as usize >= sets {
                return Err(Corrupt("admin event's set out of range"));
            }
            let kind = match d.u8()? {
                GENESIS if o == 0 => AdminKind::Genesis,
                GRANT => AdminKind::Grant {
                    to: PublicKey(d.array()?),
                    scope: d.str()?.to_string(),
                    rights: match d.u8()? {
                        0 => Rights::Write,
                        1 => Rights::Admin,
                        _ => return Err(Corrupt("unknown rights")),
                    },
                },
                REVOKE => {
                    let key = PublicKey(d.array()?);
                    let scope = d.str()?.to_string();
                    let key_events = slots(d, events)?;
                    AdminKind::Revoke {
                        key,
                        scope,
                        key_events,
                    }
                }
                ROTATE => {
                    let lineage = d.u32()?;
                    let depth = d.u32()?;
                    if lineage >= lineages || depth == 0 {
                        return Err(Corrupt("rotation of an unknown root lineage"));
                    }
                    AdminKind::Rotate {
                        lineage,
                        depth,
                        old: PublicKey(d.array()?),
                        new: PublicKey(d.array()?),
                        next: d.array()?,
                        key_events: slots(d, events)?,
                    }
                }
                SHARE => AdminKind::Share {
                    scope: d.str()?.to_string(),
                    epoch: d.u64()?,
                    key_id: d.array()?,
                },
                _ => return Err(Corrupt("unknown admin kind, or a genesis after the first")),
            };
            if o == 0 && !matches!(kind, AdminKind::Genesis) {
                return Err(Corrupt("the first admin event is not the genesis"));
            }
            trust.push(AdminEvent {
                clock,
                id,
                author,
                deps_set,
                own_set,
                kind,
            });
        }
        Ok(trust)
    }
}

/// Sorted, distinct slots below `events`.
fn slots(d: &mut Dec<'_>, events: usize) -> Result<Vec<u32>, Corrupt> {
    let v = d.u32s()?;
    if v.windows(2).any(|w| w[0] >= w[1]) || v.last().is_some_and(|&s| s as usize >= events) {
        return Err(Corrupt("an admin event's slots are out of range"));
    }
    Ok(v)
}
