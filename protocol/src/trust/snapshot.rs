//! The chain of trust's part of a snapshot: the admin events, in ordinal order. Grants by
//! recipient and the global authority state are derived again on restore (admin events are
//! few); the per-set cache starts empty.

use super::*;
use crate::codec::{Corrupt, Dec, Enc};

const GENESIS: u8 = 0;
const GRANT: u8 = 1;
const REVOKE: u8 = 2;

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
            }
        }
    }

    /// Reads admin events written by [`Trust::encode`]. `sets` and `events` are the numbers
    /// of admin sets and stored events, to check the links against. The caller checks the
    /// admin ordinals against the DAG, then calls [`Trust::recompute_global`].
    pub(crate) fn decode(
        d: &mut Dec<'_>,
        roots: Vec<PublicKey>,
        sets: usize,
        events: usize,
    ) -> Result<Trust, Corrupt> {
        let n = d.count(8 + 32 + 32 + 4 + 4 + 1)?;
        let mut trust = Trust::new(roots);
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
                    let key_events = d.u32s()?;
                    if key_events.windows(2).any(|w| w[0] >= w[1])
                        || key_events.last().is_some_and(|&s| s as usize >= events)
                    {
                        return Err(Corrupt("revocation's events out of range"));
                    }
                    AdminKind::Revoke {
                        key,
                        scope,
                        key_events,
                    }
                }
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
