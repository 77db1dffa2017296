//! The chain of trust (DESIGN §3): who may write what, decided from the causal past alone.
//!
//! Authority starts at the genesis roots and flows through `Grant` events; `Revoke` events cut
//! it. Two questions are asked, with one predicate ([`Trust::authorized`]):
//!
//! * **Acceptance** of an event `e`: does its author hold the right in `e`'s causal past? The
//!   causal past is fixed once `e` exists, so every node gives the same answer whatever order
//!   events arrive in, and so every node stores the same set.
//! * **Effect** of a stored event on the view: the same predicate over the *whole* set, where a
//!   valid `Revoke(k)` event `r` also freezes `k` at what `r` had seen: events by `k` outside
//!   `r`'s causal past have no effect. That includes grants `k` made, so authority that flowed
//!   only through them is gone too (the cascade), and so are writes that relied on it.
//!
//! Rules, precisely (they are what makes every node agree):
//! 1. Revocations are considered in `(clock, id)` order; one takes effect only if its author
//!    holds `Admin` over its scope under the revocations already in effect. So of two admins
//!    revoking each other concurrently, the first in that order wins on every node.
//! 2. A grant `g` is *live* if its author holds `Admin` over `g.scope` at `g` (through live
//!    grants in `g`'s causal past, or as a root).
//! 3. Author `a` holds right `R` over a key or scope at event `y` if `a` is a root, or some live
//!    grant `g` to `a` in `y`'s causal past covers it with rights ≥ `R`, and for every
//!    effective revocation `r` of `a` whose scope overlaps, either `r` is in `g`'s causal past
//!    (a re-grant made after the revocation restores the right) or `y` is in `r`'s causal past
//!    (the revoker saw `y`: frozen, not undone).
//! 4. Roots cannot be revoked (a `Revoke` naming a root is invalid); they are rotated instead.
//! 5. Rotation (KERI pre-rotation): each genesis root starts a *lineage* whose next key is
//!    committed in the genesis (`blake3(next public key)`). A `Rotate` by the lineage's current
//!    key that reveals the committed key (and commits to the one after) hands the lineage to
//!    it. In an event whose causal past holds the rotation, the old key is no root. For effect
//!    a rotation freezes the old key like a revocation does: its events (grants included) that
//!    are not in the rotation's causal past have no effect, so a stolen old key cannot
//!    back-date writes or grants on a branch that ignores the rotation. Grants the old key made
//!    before the rotation stay live unless revoked. Two rotations of one lineage at the same
//!    depth (only an equivocating old key can make them) resolve to the lowest `(clock, id)`.
//!
//! `ReadKeyShare` events are admin events too (so "is this epoch's share in my causal past" is
//! a set lookup), but they confer no authority.
//!
//! Grants and revocations are rare next to puts, so the authority state of a set of admin
//! events is computed once per distinct set and cached; a put's check is then a few lookups.

use crate::det::HashMap;

mod snapshot;

use crate::dag::{AdminSets, Slot};
use crate::event::{KEY_ID_BYTES, Rights, Rotate, next_key_commitment};
use crate::ids::{EventId, PublicKey};

/// What an admin event does.
#[derive(Debug, Clone)]
pub(crate) enum AdminKind {
    Genesis,
    Grant {
        to: PublicKey,
        scope: String,
        rights: Rights,
    },
    /// `key_events`: the revoked key's events in the revocation's causal past, sorted slots.
    Revoke {
        key: PublicKey,
        scope: String,
        key_events: Vec<Slot>,
    },
    /// The `depth`th rotation (from 1) of root lineage `lineage`; `key_events` as for revokes.
    Rotate {
        lineage: u32,
        depth: u32,
        old: PublicKey,
        new: PublicKey,
        next: [u8; 32],
        key_events: Vec<Slot>,
    },
    /// A read key share of `scope`'s epoch `epoch` (key `key_id`).
    Share {
        scope: String,
        epoch: u64,
        key_id: [u8; KEY_ID_BYTES],
    },
}

/// One admin event, by ordinal.
#[derive(Debug, Clone)]
pub(crate) struct AdminEvent {
    pub(crate) clock: u64,
    pub(crate) id: EventId,
    pub(crate) author: PublicKey,
    /// Admin set of the event's dependencies (its causal past without itself).
    pub(crate) deps_set: u32,
    /// Admin set including itself.
    pub(crate) own_set: u32,
    pub(crate) kind: AdminKind,
}

/// What a right is asked over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A record key (for puts).
    Key(&'a str),
    /// A scope (for grants and revocations).
    Scope(&'a str),
}

impl Target<'_> {
    fn covered_by(&self, grant_scope: &str) -> bool {
        match self {
            Target::Key(k) | Target::Scope(k) => k.starts_with(grant_scope),
        }
    }

    fn cut_by(&self, revoke_scope: &str) -> bool {
        match self {
            Target::Key(k) => k.starts_with(revoke_scope),
            Target::Scope(s) => s.starts_with(revoke_scope) || revoke_scope.starts_with(s),
        }
    }
}

/// One authority question: may `author` exercise `need` over `target` at an event whose causal
/// past (without itself) has admin set `at_set`?
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    pub(crate) author: &'a PublicKey,
    pub(crate) target: Target<'a>,
    pub(crate) need: Rights,
    pub(crate) at_set: u32,
}

/// The authority state of one set of admin events.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    /// By ordinal: the revocation is in effect.
    revoked: Vec<bool>,
    /// By ordinal: the grant is live.
    live: Vec<bool>,
    /// Effective revocations by revoked key.
    revokes_of: HashMap<PublicKey, Vec<u32>>,
    /// Rotations in the set, by the key they rotated away.
    rotated: HashMap<PublicKey, Vec<u32>>,
}

impl Ctx {
    fn is_live(&self, o: u32) -> bool {
        self.live.get(o as usize).copied().unwrap_or(false)
    }
    pub(crate) fn is_revoked(&self, o: u32) -> bool {
        self.revoked.get(o as usize).copied().unwrap_or(false)
    }
}

fn admin_q<'a>(author: &'a PublicKey, scope: &'a str, at_set: u32) -> Question<'a> {
    Question {
        author,
        target: Target::Scope(scope),
        need: Rights::Admin,
        at_set,
    }
}

/// The trust state of one chain.
#[derive(Debug, Default)]
pub(crate) struct Trust {
    pub(crate) roots: Vec<PublicKey>,
    /// Genesis pre-rotation commitments, one per root (or none).
    pub(crate) next: Vec<[u8; 32]>,
    /// Ordinals of rotations and of read key shares.
    rotations: Vec<u32>,
    shares: Vec<u32>,
    pub(crate) admins: Vec<AdminEvent>,
    grants_to: HashMap<PublicKey, Vec<u32>>,
    /// Authority over the whole set (for effect in the view).
    pub(crate) global: Ctx,
    /// Authority per admin set (for acceptance), computed on first use.
    cache: HashMap<u32, Ctx>,
}

impl Trust {
    pub(crate) fn new(roots: Vec<PublicKey>, next: Vec<[u8; 32]>) -> Trust {
        Trust {
            roots,
            next,
            ..Default::default()
        }
    }

    /// Lineage `l`'s current key, commitment and depth in a causal past with admin set `at_set`.
    fn lineage_at(
        &self,
        sets: &AdminSets,
        l: usize,
        at_set: u32,
    ) -> (PublicKey, Option<[u8; 32]>, u32) {
        let mut cur = (self.roots[l], self.next.get(l).copied(), 0);
        let mut best: Option<(u32, u64, EventId)> = None;
        for &o in &self.rotations {
            let a = &self.admins[o as usize];
            let AdminKind::Rotate {
                lineage,
                depth,
                new,
                next,
                ..
            } = &a.kind
            else {
                continue;
            };
            if *lineage as usize != l || !sets.contains(at_set, o) {
                continue;
            }
            let better = best
                .is_none_or(|(d, c, id)| *depth > d || (*depth == d && (a.clock, a.id) < (c, id)));
            if better {
                best = Some((*depth, a.clock, a.id));
                cur = (*new, Some(*next), *depth);
            }
        }
        cur
    }

    /// Whether `key` is a current root in a causal past with admin set `at_set`.
    pub(crate) fn root_at(&self, sets: &AdminSets, key: &PublicKey, at_set: u32) -> bool {
        if self.rotations.is_empty() {
            return self.roots.contains(key);
        }
        (0..self.roots.len()).any(|l| self.lineage_at(sets, l, at_set).0 == *key)
    }

    /// Whether `key` is or was a root in that causal past (a genesis root or a revealed key).
    pub(crate) fn root_key_at(&self, sets: &AdminSets, key: &PublicKey, at_set: u32) -> bool {
        self.roots.contains(key)
            || self.rotations.iter().any(|&o| {
                sets.contains(at_set, o)
                    && matches!(&self.admins[o as usize].kind, AdminKind::Rotate { new, .. } if new == key)
            })
    }

    /// Validates a rotation by `author` in a causal past with admin set `at_set`; returns the
    /// lineage and the rotation's depth.
    pub(crate) fn check_rotation(
        &self,
        sets: &AdminSets,
        author: &PublicKey,
        r: &Rotate,
        at_set: u32,
    ) -> Result<(u32, u32), &'static str> {
        let l = (0..self.roots.len())
            .find(|&l| self.lineage_at(sets, l, at_set).0 == *author)
            .ok_or("its author is not a current root")?;
        let (_, commitment, depth) = self.lineage_at(sets, l, at_set);
        let commitment = commitment.ok_or("this root made no pre-rotation commitment")?;
        if next_key_commitment(&r.next_root) != commitment {
            return Err("the revealed key does not match the root's commitment");
        }
        if self.root_key_at(sets, &r.next_root, at_set) {
            return Err("the revealed key is or was a root already");
        }
        Ok((l as u32, depth + 1))
    }

    /// Whether a value sealed under `scope`'s epoch `epoch` (key `key_id`) may be written in a
    /// causal past with admin set `at_set`: that epoch's share is in it, and no later epoch's.
    pub(crate) fn check_seal(
        &self,
        sets: &AdminSets,
        scope: &str,
        epoch: u64,
        key_id: &[u8; KEY_ID_BYTES],
        at_set: u32,
    ) -> Result<(), &'static str> {
        let mut known = false;
        for &o in &self.shares {
            let AdminKind::Share {
                scope: s,
                epoch: e,
                key_id: k,
            } = &self.admins[o as usize].kind
            else {
                continue;
            };
            if s != scope || !sets.contains(at_set, o) {
                continue;
            }
            if *e > epoch {
                return Err("sealed under an old epoch: a newer one was started");
            }
            known |= *e == epoch && k == key_id;
        }
        if known {
            Ok(())
        } else {
            Err("sealed under an epoch key no read key share introduced")
        }
    }

    /// Ordinals of the read key shares.
    pub(crate) fn share_ordinals(&self) -> &[u32] {
        &self.shares
    }

    /// Registers a new admin event and returns its ordinal.
    pub(crate) fn push(&mut self, ev: AdminEvent) -> u32 {
        let o = self.admins.len() as u32;
        match &ev.kind {
            AdminKind::Grant { to, .. } => self.grants_to.entry(*to).or_default().push(o),
            AdminKind::Rotate { .. } => self.rotations.push(o),
            AdminKind::Share { .. } => self.shares.push(o),
            _ => {}
        }
        self.admins.push(ev);
        o
    }

    /// Rule 3, under `ctx`. `at_set` is the admin set of `y`'s causal past (without `y`);
    /// `y_seen_by(r)` says whether `y` is in revocation `r`'s causal past.
    pub(crate) fn authorized(
        &self,
        sets: &AdminSets,
        ctx: &Ctx,
        q: Question<'_>,
        y_seen_by: &dyn Fn(u32) -> bool,
    ) -> bool {
        let Question {
            author,
            target,
            need,
            at_set,
        } = q;
        if self.root_at(sets, author, at_set) {
            // Frozen by a rotation that did not see `y`?
            let frozen = ctx
                .rotated
                .get(author)
                .is_some_and(|rs| rs.iter().any(|&r| !y_seen_by(r)));
            if !frozen {
                return true;
            }
        }
        let Some(grants) = self.grants_to.get(author) else {
            return false;
        };
        // Effective revocations of this author that touch the target (usually none: this is
        // on every put's path, so no allocation).
        let all_revokes: &[u32] = ctx.revokes_of.get(author).map_or(&[], Vec::as_slice);
        let revokes = || {
            all_revokes
                .iter()
                .copied()
                .filter(|&r| match &self.admins[r as usize].kind {
                    AdminKind::Revoke { scope, .. } => target.cut_by(scope),
                    _ => false,
                })
        };
        grants.iter().any(|&g| {
            let ge = &self.admins[g as usize];
            let AdminKind::Grant { scope, rights, .. } = &ge.kind else {
                return false;
            };
            ctx.is_live(g)
                && *rights >= need
                && target.covered_by(scope)
                && sets.contains(at_set, g)
                && revokes().all(|r| sets.contains(ge.own_set, r) || y_seen_by(r))
        })
    }

    /// Computes the authority state over the admin events in `set` (sorted ordinals).
    fn compute(&self, sets: &AdminSets, set: &[u32]) -> Ctx {
        let mut order: Vec<u32> = set.to_vec();
        order.sort_by_key(|&o| {
            let a = &self.admins[o as usize];
            (a.clock, a.id)
        });
        let mut ctx = Ctx {
            revoked: vec![false; self.admins.len()],
            live: vec![false; self.admins.len()],
            revokes_of: HashMap::default(),
            rotated: HashMap::default(),
        };
        let mut revealed = Vec::new();
        for &o in &order {
            if let AdminKind::Rotate { old, new, .. } = &self.admins[o as usize].kind {
                ctx.rotated.entry(*old).or_default().push(o);
                revealed.push(*new);
            }
        }
        self.fill_live(sets, &mut ctx, &order);
        for &o in &order {
            let a = &self.admins[o as usize];
            let AdminKind::Revoke { key, scope, .. } = &a.kind else {
                continue;
            };
            let seen = |r2: u32| sets.contains(self.admins[r2 as usize].own_set, o);
            if !self.roots.contains(key)
                && !revealed.contains(key)
                && self.authorized(sets, &ctx, admin_q(&a.author, scope, a.deps_set), &seen)
            {
                ctx.revoked[o as usize] = true;
                ctx.revokes_of.entry(*key).or_default().push(o);
                self.fill_live(sets, &mut ctx, &order);
            }
        }
        ctx
    }

    fn fill_live(&self, sets: &AdminSets, ctx: &mut Ctx, order: &[u32]) {
        for &o in order {
            let a = &self.admins[o as usize];
            let AdminKind::Grant { scope, .. } = &a.kind else {
                continue;
            };
            let seen = |r: u32| sets.contains(self.admins[r as usize].own_set, o);
            let live = self.authorized(sets, ctx, admin_q(&a.author, scope, a.deps_set), &seen);
            ctx.live[o as usize] = live;
        }
    }

    /// Acceptance: may `author` do this in a causal past whose admin set is `at_set`?
    pub(crate) fn may(&mut self, sets: &AdminSets, q: Question<'_>) -> bool {
        let at_set = q.at_set;
        if self.root_at(sets, q.author, at_set) {
            return true;
        }
        if !self.cache.contains_key(&at_set) {
            if self.cache.len() >= 256 {
                self.cache.clear();
            }
            let ctx = self.compute(sets, sets.get(at_set));
            self.cache.insert(at_set, ctx);
        }
        let Some(ctx) = self.cache.get(&at_set) else {
            return false;
        };
        self.authorized(sets, ctx, q, &|_| false)
    }

    /// Who could ever freeze a put, and the events that freeze: the keys that may come to hold
    /// authority to revoke or rotate (genesis roots and revealed keys that have not rotated
    /// away, and every holder of an `Admin` grant, live or not), and the ordinals of every
    /// revocation and rotation. Compaction asks whether a version is beyond all of them.
    pub(crate) fn freezers(&self) -> (Vec<PublicKey>, Vec<u32>) {
        let mut keys: Vec<PublicKey> = self.roots.clone();
        let mut rotated_away = Vec::new();
        let mut freezes = Vec::new();
        for (o, a) in self.admins.iter().enumerate() {
            match &a.kind {
                AdminKind::Grant {
                    to,
                    rights: Rights::Admin,
                    ..
                } => keys.push(*to),
                AdminKind::Revoke { .. } => freezes.push(o as u32),
                AdminKind::Rotate { old, new, .. } => {
                    keys.push(*new);
                    rotated_away.push(*old);
                    freezes.push(o as u32);
                }
                _ => {}
            }
        }
        // A key that rotated away has no authority in anything after its rotation, and its
        // events before it are in its rotation's past.
        keys.retain(|k| !rotated_away.contains(k));
        keys.sort();
        keys.dedup();
        (keys, freezes)
    }

    /// Recomputes the global authority state after a new admin event. Returns the keys whose
    /// writes may have changed effect (empty when nothing changed).
    pub(crate) fn recompute_global(&mut self, sets: &AdminSets) -> Vec<PublicKey> {
        let all: Vec<u32> = (0..self.admins.len() as u32).collect();
        let new = self.compute(sets, &all);
        let mut changed = Vec::new();
        let known = self.global.live.len();
        for (o, a) in self.admins.iter().enumerate() {
            let o = o as u32;
            match &a.kind {
                // A grant new since the last computation is in no existing event's past, so
                // it cannot change any existing effect; only older grants are compared.
                AdminKind::Grant { to, .. }
                    if (o as usize) < self.global.live.len()
                        && self.global.is_live(o) != new.is_live(o) =>
                {
                    changed.push(*to)
                }
                AdminKind::Revoke { key, .. } if self.global.is_revoked(o) != new.is_revoked(o) => {
                    changed.push(*key)
                }
                // A new rotation freezes the old key's writes it had not seen.
                AdminKind::Rotate { old, .. } if o as usize >= known => changed.push(*old),
                _ => {}
            }
        }
        changed.sort();
        changed.dedup();
        self.global = new;
        changed
    }

    /// Whether every accepted put has effect, so [`Trust::put_has_effect`] need not run for
    /// a put [`Trust::may`] just accepted. True when no revocation is in effect and no rotation
    /// is stored: then rule 3's extra conditions (cut by a revocation, frozen by a rotation)
    /// hold vacuously for the global state, and a grant live in a put's causal past is live
    /// globally too (by induction in `(clock, id)` order: its liveness rests on grants in its
    /// own causal past, and only revocations can make the global state refuse one).
    pub(crate) fn nothing_cut(&self) -> bool {
        self.global.revokes_of.is_empty() && self.global.rotated.is_empty()
    }

    /// Effect of a put by `author` on `key` at `slot` (admin set `at_set`), under the global
    /// state.
    pub(crate) fn put_has_effect(
        &self,
        sets: &AdminSets,
        author: &PublicKey,
        key: &str,
        slot: Slot,
        at_set: u32,
    ) -> bool {
        let seen = |r: u32| match &self.admins[r as usize].kind {
            AdminKind::Revoke { key_events, .. } | AdminKind::Rotate { key_events, .. } => {
                key_events.binary_search(&slot).is_ok()
            }
            _ => false,
        };
        let q = Question {
            author,
            target: Target::Key(key),
            need: Rights::Write,
            at_set,
        };
        self.authorized(sets, &self.global, q, &seen)
    }

    /// Whether the admin event with ordinal `o` is in effect (grants live, revocations
    /// effective, genesis always).
    pub(crate) fn admin_in_effect(&self, o: u32) -> bool {
        match self.admins.get(o as usize).map(|a| &a.kind) {
            Some(AdminKind::Genesis | AdminKind::Rotate { .. } | AdminKind::Share { .. }) => true,
            Some(AdminKind::Grant { .. }) => self.global.is_live(o),
            Some(AdminKind::Revoke { .. }) => self.global.is_revoked(o),
            None => false,
        }
    }
}
