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
//! group, because a writer of the chain chooses its events, and so can grind event ids (one
//! blake3 per try) to make two different sets sum to the same value. If it succeeded, two
//! honest replicas holding those two sets would agree the range is in sync and not exchange
//! it (the DAG still heals it as soon as someone builds on those events, since missing
//! parents are fetched).
//!
//! * XOR of hashes: collisions by Gaussian elimination over GF(2), in microseconds. Out.
//! * Sum mod 2^256 (Negentropy): a collision is a `{-1, 0, 1}` combination of item hashes
//!   that vanishes mod 2^256. Wagner's k-tree algorithm finds one from k lists of
//!   2^(256/(1+lg k)) candidates: about 2^33 hashes in all for k = 1024 events. Lattice
//!   reduction on the same knapsack (determinant 2^256) needs, by the usual root-Hermite
//!   estimate, only small BKZ blocks. Cheap for a determined writer.
//! * An elliptic-curve multiset hash (ECMH) or LtHash16 (1024 × 16-bit lanes, 2 KiB per sum)
//!   resist both, but cost ~10 µs per item, or 2 KiB per cached node and per hashed item.
//!
//! We take the middle road ([`ItemSum`]): each item contributes 1024 bits of blake3 XOF
//! output, summed as 16 independent 64-bit lanes (an LtHash with few, wide lanes). Wagner's
//! algorithm then needs ~2^65 work even with 2^24 events accepted into the chain; the lattice
//! attack needs a short vector in a lattice of determinant 2^1024, which by the same estimate
//! needs BKZ blocks around 200 (~2^60 operations or more, before the extra cost of demanding
//! `{-1, 0, 1}` coefficients). These are back-of-the-envelope figures, not a proof; the lane
//! count is one constant ([`LANES`]) to raise if they prove optimistic. The sum costs 128
//! bytes per cached child (2–3 bytes per item) and one 128-byte XOF per hashed item.
//!
//! On the wire a fingerprint is 16 bytes: a blake3 keyed hash of (sum, count) under a key
//! derived from the initiator's fresh nonce. The key changes every session, so the
//! truncation to 128 bits cannot be attacked offline, and nothing precomputed against one
//! session carries over to the next. The key does not protect the sum itself (cached sums
//! cannot depend on it), which is why the sum is wide.
//!
//! A malicious *peer* needs no collision: it can always withhold events or lie about its set.
//! What we guarantee against it is bounded work. Every message is size- and structure-checked;
//! the peer may only answer about ranges we asked about, and a range we split shrinks our count
//! in it `split_factor`-fold, so a peer that keeps answering "differs" reaches our id lists
//! within ~log_F(n/T) rounds and at worst makes us list our set once (as an honest peer with a
//! disjoint set would); a deferral must make progress; rounds, ranges and time per session
//! are capped ([`ReconConfig`]).
//!
//! # Messages
//! A [`ReconMsg`] is a list of ranges covering the whole order, each given by its upper bound
//! (clock delta + shortest id prefix) and a [`Payload`]: `Skip`, `Fingerprint` (16 bytes) or
//! `Ids`. The initiator's `Open` carries the session nonce and, normally, one fingerprint over
//! everything; each side answers every fingerprint range (skip if equal, else list or split)
//! and owes a reply only to a message that held fingerprints. When a reply would exceed
//! `max_msg_bytes`, later differing ranges are handed back unsplit and, past the budget, one
//! fingerprint defers the rest of the order to the next round. Messages carry all the
//! protocol state; a [`Session`] keeps only its key, counters and its last message's bytes.
//!
//! # Driving it (for the replica)
//! * Keep one [`ReconIndex`] per chain: `insert(header.clock, id)` for every accepted event
//!   (O(log n), ~0.25 µs; ~46 bytes per event), or [`ReconIndex::from_keys`] at start-up.
//! * On peer connect (and periodically): `let (s, msg) = Session::initiate(&index, &cfg,
//!   nonce, now_ms)`; keep `s` as the *initiator* session for that peer; send `msg`.
//! * On a [`ReconMsg`] from a peer ([`ReconMsg::decode`] with a byte limit),
//!   [`ReconMsg::addressee`] says which of the two sessions with that peer it is for: an
//!   `Open` starts a *responder* session ([`Session::respond`], replacing any old one); other
//!   messages go to [`Session::handle`] of the session with that role.
//! * Each [`Step`]: send `reply` if present; send the events in `peer_lacks` (unrequested:
//!   the peer learns of them by receiving them); request `we_lack` (`GetEvents`). Drop the
//!   session when `done` or on any [`ReconError`].
//! * On disconnect drop both sessions; on reconnect initiate again. Nothing is lost: agreeing
//!   ranges end in the first round trip, so a new session resumes where the differences are.
//!   Expire sessions past [`Session::deadline_ms`] on `Tick`.
//!
//! For each range exactly one side (the receiver of the other's id list) learns the
//! difference, and reports both directions: the two sides' steps together name every missing
//! id exactly once.
//!
//! # Figures (1M items, 4 writers, default configuration)
//! In sync: 1 round trip, 39 bytes. One difference: 3 round trips, ~1.9 KB. 1000 newer
//! events on one side: 4 round trips, ~2.3 KB. 1000 scattered differences: 5 round trips,
//! ~0.9 MB. Late joiner: 1 round trip, 42 bytes, then every event. See `tests/big.rs` and
//! `benches/reconcile.rs`.
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
