//! # ate-protocol — the pure core of ate
//!
//! Everything that decides what a node *believes* lives here, and nothing that touches the
//! world does: no sockets, no files, no clock, no OS randomness (`clippy.toml` forbids them).
//! The daemon (`ate-node`) and the simulator (`ate-sim`) drive the very same [`Replica`] state
//! machine, which is what lets the simulator's results speak for the real thing.
//!
//! * [`ids`]: typed ids and keys with a copy-pasteable text form (`ev…`, `chain…`, `pk…`).
//! * [`event`]: canonical, self-addressing, signed events and their bodies (DESIGN §2).
//! * [`verify`]: one signature rule for everyone, batched.
//! * `trust`: the chain of trust — acceptance from the causal past, effect from the set (§3).
//! * `view` and [`query`]: records, versions and verifiable-storage-go queries (§4).
//! * [`replica`]: the sans-IO state machine (§1), with its pending buffer and sync messages,
//!   snapshots and compaction (§7).
//! * [`builder`]: how a writer makes its next valid event.
//! * [`seal`]: sealed values, reader keys and read key shares (DESIGN §6).
//!
//! ## Error policy
//! Bad bytes or values from the network, the disk or a user are a `Result` with a typed error
//! whose message says what was wrong; an invalid event is a [`Verdict::Invalid`] with a
//! [`Reason`]. Nothing here panics on input. Internal invariants (a slot we stored is in range)
//! are indexing that cannot fail by construction, and say so where it is not obvious.
#![deny(missing_docs)]

pub mod builder;
mod codec;
mod dag;
mod det;
pub mod event;
pub mod ids;
mod pending;
mod queries;
pub mod query;
pub mod reconcile;
pub mod replica;
pub mod seal;
mod trust;
pub mod verify;
mod view;
pub mod workload;

pub use builder::{Template, Writer, genesis, genesis_with_next};
pub use event::{
    Body, BodyKind, DecodeError, Event, Header, Params, PutHead, PutValue, Rights, ValueHead,
    next_key_commitment,
};
pub use ids::{ChainId, EventId, IdParseError, PeerId, PublicKey, SecretKey, Signature};
pub use queries::{SealInfo, Version, ViewRef};
pub use query::{Condition, Order, QueryError};
pub use replica::{
    ChangeKind, Compaction, Config, Equivocation, Input, Millis, Output, Reason, Replica,
    SharedEnvelope, SnapshotError, SnapshotInfo, Stats, SyncMsg, Verdict, ViewChange,
};
pub use serde_json;

#[cfg(test)]
mod tests;
