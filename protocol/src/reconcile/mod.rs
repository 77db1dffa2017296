//! Range-based set reconciliation of a chain's event ids (DESIGN §5, "Anti-entropy").
//!
//! Follows Aljoscha Meyer, *Range-Based Set Reconciliation* (2022), in the message shape
//! popularised by Negentropy. Two replicas compare the fingerprints of ranges of their sorted
//! id sets; equal ranges are done, a differing range is split into `split_factor` parts of
//! equal count (or, when it holds at most `list_threshold` items, listed outright), and the
//! receiver of a list knows both differences for that range. Cost grows with the difference,
//! not the set: replicas in sync exchange one fingerprint each way; a late joiner gets one
//! empty list back and is sent everything.
//!
//! # The order
//! Items are `(clock, id)` ([`ReconKey`]): Lamport clock first, so recent events, where
//! replicas usually differ, sit together in a few recent ranges, and `we_lack` comes out in
//! an order where parents precede children.
//!
//! # Fingerprints, and what an adversary can do
//! A range's fingerprint must be computable from cached parts (so a round costs O(log n) per
//! range), which forces a homomorphic "sum" of per-item hashes. The question is in which
//! group, because a writer of the chain chooses the events, and so can grind event ids (one
//! blake3 per try) to make two different sets collide. If it succeeded, two honest replicas
//! holding those two sets would agree the range is in sync and never exchange it (the DAG
//! would still heal it as soon as someone builds on those events, since missing parents are
//! fetched).
//!
//! * XOR of hashes: collisions by linear algebra over GF(2) in microseconds. Out.
//! * Sum mod 2^256 (Negentropy): a collision is a short `{-1, 0, 1}` combination of a few
//!   hundred item hashes that vanishes mod 2^256, a low-dimensional subset-sum / SIS instance
//!   that lattice reduction solves in practice, and Wagner's k-tree algorithm finds one with
//!   ~2^(256/(1+lg k)) work per list (2^33 for k = 1024). Cheap for a determined writer.
//! * An elliptic-curve multiset hash (ECMH) or LtHash (1024 × 16-bit lanes, 2 KiB per sum)
//!   resist both, but cost ~10 µs per item or 2 KiB per cached node.
//!
//! We take the middle road ([`ItemSum`]): each item contributes 1024 bits of blake3 XOF
//! output, summed as 16 independent 64-bit lanes (an LtHash with few, wide lanes). Against
//! Wagner, 1024 bits need ~2^64 work even when the attacker gets 2^24 events accepted into
//! the chain; the lattice attack needs a short vector in a lattice of determinant 2^1024,
//! which by the usual root-Hermite estimate needs BKZ blocks around 200 (~2^60 and more
//! operations, before the extra cost of demanding `{-1, 0, 1}` coefficients). These are
//! back-of-the-envelope figures, not a proof; the lane count is one constant ([`LANES`]) to
//! raise if they prove optimistic. The sum costs 128 bytes per cached node (~2–4 bytes per
//! item) and one 128-byte XOF per hashed item.
//!
//! On the wire a fingerprint is 16 bytes: a blake3 keyed hash of (sum, count) under a key
//! derived from the initiator's fresh nonce. The key changes every session, so the
//! truncation to 128 bits cannot be attacked offline, and nothing precomputed against one
//! session carries to the next. The key does not protect the sum itself (cached sums cannot
//! depend on the key), which is why the sum is wide.
//!
//! A malicious *peer* needs no collision: it can always withhold events or lie about its
//! set. What we guarantee against it is bounded work: every message is size-checked and
//! structure-checked; the peer may only answer about ranges we asked about (a range we split
//! shrinks our count in it `split_factor`-fold, so an adversary that keeps answering "differs"
//! runs into our id lists after ~log_F(n) rounds); deferrals must make progress; and rounds,
//! ranges and time per session are capped ([`ReconConfig`]).
//!
//! # Driving it (for the replica)
//! * Keep one [`ReconIndex`] per chain: `insert(header.clock, id)` for every accepted event
//!   (O(log n); ~50 bytes per event).
//! * On peer connect (and periodically): `let (s, msg) = Session::initiate(&index, &cfg,
//!   nonce, now)`; keep `s` as the *initiator* session for that peer and send `msg`.
//! * On a [`ReconMsg`] from a peer, [`ReconMsg::addressee`] says which session it is for:
//!   an `Open` starts a *responder* session ([`Session::respond`], replacing an old one);
//!   other messages go to [`Session::handle`] of the session with that role.
//! * Each [`Step`]: send `reply` if present; send the events in `peer_lacks` (they are not
//!   requested: the peer learns of them by receiving them); request `we_lack` with
//!   `GetEvents`; drop the session when `done` or on any [`ReconError`].
//! * On disconnect drop both sessions; on reconnect initiate again. Nothing is lost: the
//!   messages carry all state, and a restart costs one round trip per agreeing range, so it
//!   resumes where the differences are. Expire sessions past [`Session::deadline_ms`].
//!
//! For each range exactly one side (the receiver of the other's id list) learns the
//! difference, and reports both directions; the two sides' steps together name every missing
//! id exactly once.
#![allow(clippy::module_name_repetitions)]

mod fingerprint;
mod index;
mod key;
mod session;
mod wire;

#[cfg(test)]
mod tests;

pub use fingerprint::{Fingerprint, ItemSum, LANES, RangeSummary, SessionKey};
pub use index::{RangeIter, ReconIndex};
pub use key::{Bound, ReconKey};
pub use session::{ConfigError, ReconConfig, ReconError, Role, Session, SessionStats, Step};
pub use wire::{MalformedMsg, Payload, ReconDecodeError, ReconMsg, WireBound, WireItem, WireRange};
