//! The replica's inputs, outputs, verdicts, messages and limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::event::{DecodeError, Rights};
use crate::ids::{EventId, PeerId, PublicKey};
use crate::reconcile::{ReconConfig, ReconMsg};

/// Milliseconds of the caller's clock (virtual in the simulator).
pub type Millis = u64;

/// Why an event is invalid. Invalid events are never stored or forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The bytes are not a well-formed event (see the inner error).
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The author key is not a valid ed25519 point, or a weak one.
    #[error("author key is not a valid ed25519 public key")]
    BadAuthorKey,
    /// The signature does not verify against the author and the event id (which also covers
    /// the chain: an event from another chain fails here).
    #[error("signature does not verify (forged, corrupted, or from another chain)")]
    BadSignature,
    /// `prev` is not an event by the same author.
    #[error("prev is an event by another author")]
    PrevWrongAuthor,
    /// `seq` is not `prev.seq + 1`.
    #[error("seq {got} should be {want} (prev.seq + 1)")]
    SeqMismatch {
        /// Claimed.
        got: u64,
        /// Required.
        want: u64,
    },
    /// `clock` is not `1 + max(parent clocks)`, or not above `prev`'s clock.
    #[error("clock {got} should be {want} (1 + max parent clock)")]
    ClockMismatch {
        /// Claimed.
        got: u64,
        /// Required.
        want: u64,
    },
    /// A put's `previous` is not an earlier version of the same key with `seq - 1`.
    #[error("put.previous is not the previous version of this key ({0})")]
    BadPrevious(&'static str),
    /// The author holds no right for this body in the event's causal past.
    #[error("author {author} holds no {need:?} right over `{target}` in this event's causal past")]
    NotAuthorized {
        /// Short form of the author key.
        author: String,
        /// The right that was needed.
        need: Rights,
        /// The key or scope.
        target: String,
    },
    /// Roots are rotated, never revoked.
    #[error("a root key cannot be revoked")]
    RevokeRoot,
    /// The event builds on an event that was itself invalid.
    #[error("depends on an invalid event")]
    InvalidDependency,
    /// A genesis, grant or revocation arrived without its body, so authority cannot be
    /// decided (only puts may travel without one: compaction drops superseded versions).
    #[error("a grant or revocation arrived without its body (only puts may be compacted)")]
    MissingBody,
}

impl Reason {
    /// Every label [`Reason::label`] returns.
    pub(crate) const LABELS: [&'static str; 11] = [
        "decode",
        "bad_author_key",
        "bad_signature",
        "prev_wrong_author",
        "seq_mismatch",
        "clock_mismatch",
        "bad_previous",
        "not_authorized",
        "revoke_root",
        "invalid_dependency",
        "missing_body",
    ];

    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Decode(_) => "decode",
            Reason::BadAuthorKey => "bad_author_key",
            Reason::BadSignature => "bad_signature",
            Reason::PrevWrongAuthor => "prev_wrong_author",
            Reason::SeqMismatch { .. } => "seq_mismatch",
            Reason::ClockMismatch { .. } => "clock_mismatch",
            Reason::BadPrevious(_) => "bad_previous",
            Reason::NotAuthorized { .. } => "not_authorized",
            Reason::RevokeRoot => "revoke_root",
            Reason::InvalidDependency => "invalid_dependency",
            Reason::MissingBody => "missing_body",
        }
    }
}

/// The verdict on one event, documented variant by variant (as hickory's DNSSEC `Proof`).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and now stored: forward it (gossip `Accept`).
    Valid,
    /// Already stored: nothing to do (gossip `Ignore`; not the sender's fault).
    Duplicate,
    /// Signature checked, but these dependencies are missing; it waits in the pending buffer
    /// (gossip `Ignore`). A later output says whether it became valid.
    Pending {
        /// The ids being fetched.
        missing: Vec<EventId>,
    },
    /// Dropped without judging it: the pending buffer is full (gossip `Ignore`).
    Overloaded,
    /// Invalid: never stored or forwarded (gossip `Reject`, penalising the sender).
    Invalid(Reason),
}

/// Messages of the direct sync protocol (`/ate/sync/1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMsg {
    /// "These are my heads": the receiver sends what the sender lacks.
    Heads {
        /// The sender's DAG heads.
        heads: Vec<EventId>,
    },
    /// Please send these events.
    GetEvents {
        /// Wanted ids.
        ids: Vec<EventId>,
    },
    /// Events (envelopes), in an order where dependencies come first.
    Events {
        /// Envelope bytes.
        events: Vec<Vec<u8>>,
        /// More are available: answer with [`SyncMsg::More`] to get the next batch.
        more: bool,
    },
    /// A round of range-based set reconciliation (see [`crate::reconcile`]): what the two
    /// replicas differ in is found by comparing fingerprints of ranges of their id sets.
    Recon(ReconMsg),
    /// "Send the next batch of the events you found I lack" (the answer to `Events` with
    /// `more`): one batch is in flight per peer, so the receiver paces the sender.
    More,
}

/// What changed in the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The record key.
    pub key: String,
    /// The version.
    pub id: EventId,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Kinds of [`ViewChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A new version with effect.
    Added,
    /// A version lost its effect (a revocation reached it).
    Disabled,
    /// A version regained its effect.
    Restored,
}

/// Inputs to [`crate::Replica::handle`].
#[derive(Debug, Clone)]
pub enum Input {
    /// An event built and signed locally (see [`crate::Writer`]).
    LocalEvent(Box<Event>),
    /// Several locally submitted events (signatures are checked as one batch). Each valid one
    /// is persisted and published.
    LocalBatch(Vec<Event>),
    /// An event received on the chain's gossip topic.
    Gossip {
        /// Who relayed it.
        from: PeerId,
        /// The envelope.
        bytes: Vec<u8>,
    },
    /// An event received on the gossip topic and decoded already, by a caller that hands
    /// the same envelope to many replicas of the chain (see [`crate::SharedEnvelope`]).
    GossipDecoded {
        /// Who relayed it.
        from: PeerId,
        /// The envelope and its decoding.
        envelope: super::SharedEnvelope,
    },
    /// A sync message from a peer.
    Sync {
        /// The peer.
        from: PeerId,
        /// The message.
        msg: SyncMsg,
    },
    /// Events a peer sent in answer to a fetch.
    Fetched {
        /// The peer.
        from: PeerId,
        /// Envelopes.
        events: Vec<Vec<u8>>,
    },
    /// Raw envelopes from the local redo log at start-up (trusted to be ours, still checked).
    Replay(Vec<Vec<u8>>),
    /// A peer following this chain connected: start a reconciliation with it (replacing any
    /// we started before).
    PeerUp(PeerId),
    /// Reconcile with this peer (periodic anti-entropy), unless a session we started with it
    /// is still running.
    Reconcile(PeerId),
    /// A peer disconnected.
    PeerDown(PeerId),
    /// Time passed: expire pending events, re-request missing ones.
    Tick,
}

impl Input {
    /// A locally built event as an input.
    pub fn local(ev: Event) -> Input {
        Input::LocalEvent(Box::new(ev))
    }
}

/// Outputs of [`crate::Replica::handle`], to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Push a new local event to the chain's gossip topic.
    Publish(Vec<u8>),
    /// Send a sync message to one peer.
    Send {
        /// The peer.
        to: PeerId,
        /// The message.
        msg: SyncMsg,
    },
    /// Append to the redo log (before the event counts as accepted to a local writer).
    Persist {
        /// The event id.
        id: EventId,
        /// The envelope.
        bytes: Vec<u8>,
    },
    /// The verdict on an input event (`from` is `None` for local and replayed events).
    Verdict {
        /// The sender.
        from: Option<PeerId>,
        /// The event id, when the bytes decoded far enough to have one.
        id: Option<EventId>,
        /// The verdict.
        verdict: Verdict,
    },
    /// The view changed.
    Changed(ViewChange),
}

/// Limits and knobs of a replica. Every buffer has a bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// At most this many events wait for missing dependencies.
    pub max_pending_events: usize,
    /// At most this many bytes wait for missing dependencies.
    pub max_pending_bytes: usize,
    /// Pending events older than this are dropped on `Tick`.
    pub pending_timeout_ms: Millis,
    /// At most this many events per `SyncMsg::Events`.
    pub sync_batch_events: usize,
    /// At most this many bytes per `SyncMsg::Events`.
    pub sync_batch_bytes: usize,
    /// At most this many ids per `GetEvents`.
    pub max_get_ids: usize,
    /// A missing id not arrived this long after it was asked for is asked for again (on
    /// `Tick`), so a lost request or response cannot stall the pending buffer.
    pub refetch_ms: Millis,
    /// Seed of the id index hasher (pass randomness in; the simulator passes a node seed).
    pub hash_seed: u64,
    /// Limits of reconciliation sessions (both peers should use the same values).
    pub recon: ReconConfig,
    /// Secret from which each reconciliation session's nonce is derived (a keyed hash of the
    /// chain, the peer and a session counter), so nonces are unpredictable to peers. Pass
    /// randomness in: the node draws it from the OS, the simulator from its seeded RNG.
    pub recon_seed: [u8; 32],
    /// Peers with reconciliation state (sessions, queues) at once; others wait their turn.
    pub max_sync_peers: usize,
    /// At most this many events wait to be streamed to one peer, and this many ids to be
    /// requested from it; a new session finds anything dropped past the bound again.
    pub max_sync_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_pending_events: 10_000,
            max_pending_bytes: 64 << 20,
            pending_timeout_ms: 30_000,
            sync_batch_events: 4096,
            sync_batch_bytes: 1 << 20,
            max_get_ids: 1024,
            refetch_ms: 2_000,
            hash_seed: 0x5eed_a7e0,
            recon: ReconConfig::default(),
            recon_seed: [0; 32],
            max_sync_peers: 256,
            max_sync_queue: 1 << 22,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events stored.
    pub accepted: u64,
    /// Duplicates seen.
    pub duplicates: u64,
    /// Invalid events by reason label.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Pending events dropped (buffer full or timed out).
    pub pending_dropped: u64,
    /// Equivocations detected.
    pub equivocations: u64,
}

/// Counters of reconciliation and catch-up (for metrics), summed over all peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncStats {
    /// Reconciliation sessions started by us.
    pub sessions_started: u64,
    /// Sessions (either role) that ended normally.
    pub sessions_done: u64,
    /// Sessions that ended with an error, expired, or were cut by a disconnect.
    pub sessions_failed: u64,
    /// Reconciliation messages received (rounds).
    pub rounds: u64,
    /// Reconciliation messages sent.
    pub msgs_sent: u64,
    /// Ranges sent in reconciliation messages.
    pub ranges_sent: u64,
    /// Ranges received.
    pub ranges_received: u64,
    /// Encoded reconciliation bytes sent.
    pub bytes_sent: u64,
    /// Encoded reconciliation bytes received.
    pub bytes_received: u64,
    /// Ids found missing here.
    pub ids_we_lack: u64,
    /// Ids found missing at peers.
    pub ids_peer_lacks: u64,
    /// Events streamed to peers (found missing there).
    pub events_streamed: u64,
    /// Batches streamed to peers.
    pub batches_streamed: u64,
    /// Queue entries dropped past `max_sync_queue` (found again by a later session).
    pub queue_dropped: u64,
}

/// Two events by one author with the same `seq`: both are kept, both are reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Equivocation {
    /// The author.
    pub author: PublicKey,
    /// The shared seq.
    pub seq: u64,
    /// The two events (first seen first).
    pub events: [EventId; 2],
}

/// Why a replica cannot be created from a genesis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The bytes are not a genesis event.
    #[error("not a valid genesis event: {0}")]
    Decode(#[from] DecodeError),
    /// The genesis signature does not verify, or its author is not one of its roots.
    #[error("genesis is not signed by one of its roots")]
    NotSignedByRoot,
}

/// Largest sync message accepted, in bytes (a batch of events plus framing).
pub const MAX_SYNC_MSG_BYTES: usize = 8 << 20;

/// Why bytes are not a sync message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncDecodeError {
    /// Over [`MAX_SYNC_MSG_BYTES`].
    #[error("sync message is {0} bytes, over the limit of {MAX_SYNC_MSG_BYTES}")]
    TooLarge(usize),
    /// Not a postcard encoding of a [`SyncMsg`].
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// Bytes left after the message.
    #[error("{0} trailing bytes after the sync message")]
    Trailing(usize),
}

impl SyncMsg {
    /// The wire form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        // Invariant: vectors of ids and byte strings always serialize into a Vec.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes the wire form, refusing anything over the size limit or with trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<SyncMsg, SyncDecodeError> {
        if bytes.len() > MAX_SYNC_MSG_BYTES {
            return Err(SyncDecodeError::TooLarge(bytes.len()));
        }
        let (msg, rest) = postcard::take_from_bytes::<SyncMsg>(bytes)
            .map_err(|e| SyncDecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(SyncDecodeError::Trailing(rest.len()));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lists_every_reason_label_once() {
        let all = [
            Reason::Decode(DecodeError::Truncated("x")),
            Reason::BadAuthorKey,
            Reason::BadSignature,
            Reason::PrevWrongAuthor,
            Reason::SeqMismatch { got: 0, want: 1 },
            Reason::ClockMismatch { got: 0, want: 1 },
            Reason::BadPrevious("x"),
            Reason::NotAuthorized {
                author: String::new(),
                need: Rights::Write,
                target: String::new(),
            },
            Reason::RevokeRoot,
            Reason::InvalidDependency,
            Reason::MissingBody,
        ];
        let labels: Vec<&str> = all.iter().map(Reason::label).collect();
        assert_eq!(labels, Reason::LABELS);
    }
}
