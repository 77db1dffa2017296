//! # ate
//!
//! A peer-to-peer replicated datastore: every node keeps a redo log and an in-memory view of
//! each chain it follows, gossips signed events, accepts only those whose signatures trace back
//! to the chain's root through grants, and converges on the same view.
//!
//! This facade is what applications depend on. Today it re-exports the protocol core, which
//! is enough to create chains, build and verify events, and query a replica's view in-process
//! (see `examples/quickstart.rs`); the networked node joins it with the node issue.

pub use ate_protocol as protocol;

/// The names most programs need.
pub mod prelude {
    pub use ate_protocol::{
        Body, ChainId, Condition, Config, Event, EventId, Input, Order, Output, PeerId, PublicKey,
        PutValue, Replica, Rights, SecretKey, SyncMsg, Verdict, Version, Writer, genesis,
    };
}
