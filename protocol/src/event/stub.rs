//! Compacted puts: the *head* of a put (everything but its value) and the *stub* that stands in
//! for a compacted body (`head ‖ blake3(tail)`), with the two-level body hash that lets a stub
//! verify against the signed header. See the `event` module doc for the layout.

use serde::{Deserialize, Serialize};

use super::{BodyKind, DecodeError, Header, KEY_ID_BYTES, Params, Put, PutValue, check_len};
use crate::ids::EventId;

/// What a put's value is, without the value: the part of [`PutValue`] a compacted version
/// keeps. Variant order and fields mirror [`PutValue`] and [`Sealed`](super::Sealed) up to the key id, so its
/// encoding is a prefix of the value's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueHead {
    /// A JSON document.
    Json,
    /// A delete.
    Tombstone,
    /// A sealed JSON document: which read key sealed it.
    Sealed {
        /// The read scope (a prefix of the record key).
        scope: String,
        /// The scope's epoch.
        epoch: u64,
        /// Which key of that epoch.
        key_id: [u8; KEY_ID_BYTES],
    },
}

/// A put without its value: what a compacted version still proves (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutHead {
    /// The record key.
    pub key: String,
    /// The version this one follows; `None` for a record's first version.
    pub previous: Option<EventId>,
    /// The record's sequence number.
    pub seq: u64,
    /// What kind of value it had.
    pub value: ValueHead,
}

impl PutHead {
    /// The head of a full put.
    pub fn of(p: &Put) -> PutHead {
        PutHead {
            key: p.key.clone(),
            previous: p.previous,
            seq: p.seq,
            value: match &p.value {
                PutValue::Json(_) => ValueHead::Json,
                PutValue::Tombstone => ValueHead::Tombstone,
                PutValue::Sealed(s) => ValueHead::Sealed {
                    scope: s.scope.clone(),
                    epoch: s.epoch,
                    key_id: s.key_id,
                },
            },
        }
    }

    /// Whether the value was a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.value, ValueHead::Tombstone)
    }
}

/// The borrowed form of [`PutHead`]: reads a stored put's key and links without allocating, and
/// finds where a put body's head ends.
#[derive(Deserialize)]
pub(crate) struct PutHeadRef<'a> {
    pub(crate) key: &'a str,
    pub(crate) previous: Option<EventId>,
    pub(crate) seq: u64,
    #[allow(dead_code)] // Read for its length.
    value: ValueHeadRef<'a>,
}

impl<'a> PutHeadRef<'a> {
    /// The head of a put's body bytes (`0x01 ‖ head ‖ tail`).
    pub(crate) fn of_body(bytes: &'a [u8]) -> Option<PutHeadRef<'a>> {
        match bytes.split_first()? {
            (1, rest) => postcard::take_from_bytes(rest).ok().map(|(h, _)| h),
            _ => None,
        }
    }

    /// The head of a put's stub (`head ‖ hash`).
    pub(crate) fn of_stub(stub: &'a [u8]) -> Option<PutHeadRef<'a>> {
        postcard::take_from_bytes(stub).ok().map(|(h, _)| h)
    }
}

#[derive(Deserialize)]
#[allow(dead_code)] // Read only for its length.
enum ValueHeadRef<'a> {
    Json,
    Tombstone,
    Sealed {
        scope: &'a str,
        epoch: u64,
        key_id: [u8; KEY_ID_BYTES],
    },
}

/// Bytes of a put stub's value hash.
const STUB_HASH_BYTES: usize = 32;

/// Where the head of a put's body ends: `bytes` are a put's body bytes (from the `Body` variant
/// tag on); returns the length of `0x01 ‖ head`. `None` if they are not a put.
fn put_head_end(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 1 {
        return None;
    }
    let (_, tail) = postcard::take_from_bytes::<PutHeadRef<'_>>(rest).ok()?;
    Some(bytes.len() - tail.len())
}

/// The stub of a put's body bytes: `head ‖ blake3(tail)` (see the module doc). `None` if the
/// bytes are not a put.
pub fn put_stub(body_bytes: &[u8]) -> Option<Vec<u8>> {
    let end = put_head_end(body_bytes)?;
    let (head, tail) = body_bytes.split_at(end);
    let mut stub = Vec::with_capacity(head.len() - 1 + STUB_HASH_BYTES);
    stub.extend_from_slice(&head[1..]);
    stub.extend_from_slice(blake3::hash(tail).as_bytes());
    Some(stub)
}

fn stub_hash(stub: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("ate v1 put body");
    h.update(stub);
    *h.finalize().as_bytes()
}

/// The `body_hash` a header carries for these body bytes of this kind: two-level for a put
/// (see the module doc), `blake3(bytes)` for everything else.
pub fn body_hash(kind: BodyKind, body_bytes: &[u8]) -> [u8; 32] {
    if kind == BodyKind::Put
        && let Some(end) = put_head_end(body_bytes)
    {
        let (head, tail) = body_bytes.split_at(end);
        let mut h = blake3::Hasher::new_derive_key("ate v1 put body");
        h.update(&head[1..]);
        h.update(blake3::hash(tail).as_bytes());
        return *h.finalize().as_bytes();
    }
    *blake3::hash(body_bytes).as_bytes()
}

/// The `body_hash` of a compacted put, from its stub.
pub fn stub_body_hash(stub: &[u8]) -> [u8; 32] {
    stub_hash(stub)
}

/// Reads a put stub: its head, if the bytes are one canonical head followed by a 32-byte hash.
pub fn decode_stub(stub: &[u8]) -> Option<PutHead> {
    let (head, rest) = postcard::take_from_bytes::<PutHead>(stub).ok()?;
    (rest.len() == STUB_HASH_BYTES).then_some(head)
}

/// Checks the stub of a compacted put against its header: one canonical [`PutHead`] and a
/// 32-byte hash, hashing to the header's `body_hash`, within the chain's limits.
pub(super) fn check_stub(h: &Header, stub: &[u8], params: &Params) -> Result<(), DecodeError> {
    if h.body_kind != BodyKind::Put {
        return Err(DecodeError::BodyMismatch(
            "only a put may come without its body",
        ));
    }
    if stub_hash(stub) != h.body_hash {
        return Err(DecodeError::BodyMismatch(
            "body_hash differs from the compacted put's hash",
        ));
    }
    let (head, rest) =
        postcard::take_from_bytes::<PutHead>(stub).map_err(|e| DecodeError::Malformed {
            what: "compacted put",
            detail: e.to_string(),
        })?;
    if rest.len() != STUB_HASH_BYTES {
        return Err(DecodeError::Malformed {
            what: "compacted put",
            detail: format!(
                "{} bytes after the head, want {STUB_HASH_BYTES}",
                rest.len()
            ),
        });
    }
    let head_bytes = &stub[..stub.len() - STUB_HASH_BYTES];
    if postcard::to_allocvec(&head).ok().as_deref() != Some(head_bytes) {
        return Err(DecodeError::NonCanonical("compacted put"));
    }
    check_put_head(&head, params)
}

fn check_put_head(p: &PutHead, params: &Params) -> Result<(), DecodeError> {
    check_len("record key", &p.key, params.max_key_bytes as usize)?;
    if p.previous.is_some() != (p.seq > 0) {
        return Err(DecodeError::BadBody(
            "previous must be present exactly when seq > 0".into(),
        ));
    }
    if let ValueHead::Sealed { scope, .. } = &p.value
        && !p.key.starts_with(scope.as_str())
    {
        return Err(DecodeError::BadBody(
            "a sealed value's scope must be a prefix of its record key".into(),
        ));
    }
    Ok(())
}
