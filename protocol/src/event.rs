//! Events: immutable, self-addressing, signed, hash-chained (DESIGN §2).
//!
//! The header is encoded canonically with postcard: fixed field order, no maps, parents sorted
//! and de-duplicated. Canonical means *one* byte string per header, which is what makes the id a
//! content address: decoding re-encodes what it read and rejects anything that does not come back
//! byte for byte (overlong varints, unsorted parents, trailing bytes). The id is
//! `blake3::derive_key("ate v1 event", chain ‖ header)`; the chain id is hashed in but does not
//! travel (the topic, the sync session and the log name the chain), so an event cannot be
//! replayed into another chain. The signature covers the id, and the header commits to the body
//! through `body_hash`, so a pruned body leaves a header that still verifies.
//!
//! Wire and disk form of one event (the *envelope*):
//! `varint(header_len) ‖ header ‖ signature[64] ‖ form: u8 ‖ the rest`, where the rest is the
//! body bytes (form 1) or, for a put whose body was compacted away (form 2), its *stub*.
//!
//! A put's body hash is two-level so that compaction can drop the value and keep everything
//! else verifiable. The body bytes of a put are `0x01 ‖ head ‖ tail`: the *head* is the
//! canonical encoding of [`PutHead`] (key, previous, seq, and what kind of value it is — for a
//! sealed value its scope, epoch and key id), the *tail* the rest of the value (the JSON text,
//! or the nonce and ciphertext). Postcard writes struct fields one after another, so the head is
//! a prefix of the body. The stub is `head ‖ blake3(tail)` and
//! `body_hash = blake3::derive_key("ate v1 put body", stub)`. A peer that receives only the stub
//! therefore knows — verified against the signed header — the version's key, its place in its
//! record and its seal metadata, and can place and check it exactly as one with the body; only
//! the value is missing. Every other kind hashes as `blake3(body bytes)` and is never compacted.
//!
//! Decoding does the cheap checks first (total size, header size, version byte) and the
//! expensive ones (re-encoding, hashing) after, in the spirit of mini-redis's `check` before
//! `parse`. Signature verification is separate (see `verify`), so callers can batch it.

use serde::{Deserialize, Serialize};

use crate::ids::{ChainId, EventId, PublicKey, SecretKey, Signature};

mod stub;

pub(crate) use stub::PutHeadRef;
use stub::check_stub;
pub use stub::{PutHead, ValueHead, body_hash, decode_stub, put_stub, stub_body_hash};

/// The only header version this code understands.
pub const VERSION: u8 = 1;
/// At most this many DAG parents per event (DESIGN §2).
pub const MAX_PARENTS: usize = 16;
/// Hard cap on an envelope, whatever a chain's params say.
pub const HARD_MAX_EVENT_BYTES: usize = 1 << 20;
/// A header with 16 parents is about 700 bytes; anything bigger is not a header.
pub const MAX_HEADER_BYTES: usize = 1024;
/// At most this many root keys in a genesis.
pub const MAX_ROOTS: usize = 16;
/// Longest chain name in a genesis.
pub const MAX_NAME_BYTES: usize = 256;

/// Limits a chain sets for itself in its genesis (`Genesis::params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Largest envelope accepted, in bytes (≤ [`HARD_MAX_EVENT_BYTES`]).
    pub max_event_bytes: u32,
    /// Longest record key or grant scope, in bytes.
    pub max_key_bytes: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_event_bytes: 64 * 1024,
            max_key_bytes: 1024,
        }
    }
}

/// What kind of body an event carries; committed in the header so a pruned body's kind is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BodyKind {
    /// The first event of a chain.
    Genesis,
    /// A record version.
    Put,
    /// A delegation of rights.
    Grant,
    /// A withdrawal of rights.
    Revoke,
    /// An epoch read key wrapped for one reader (DESIGN §6).
    ReadKeyShare,
    /// A root handing its authority to the key it committed to (KERI pre-rotation).
    Rotate,
}

/// The signed part of an event (DESIGN §2, v1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version, always [`VERSION`].
    pub version: u8,
    /// The author's ed25519 public key.
    pub author: PublicKey,
    /// The author's own counter, from 0.
    pub seq: u64,
    /// The author's previous event (absent iff `seq == 0`).
    pub prev: Option<EventId>,
    /// DAG heads the author had seen: sorted, distinct, at most [`MAX_PARENTS`].
    pub parents: Vec<EventId>,
    /// Lamport clock: 1 + max of the parents' clocks; 0 for genesis.
    pub clock: u64,
    /// The author's wall clock in ms since the Unix epoch. Advisory only.
    pub time_ms: u64,
    /// blake3 of the body bytes.
    pub body_hash: [u8; 32],
    /// The body's kind.
    pub body_kind: BodyKind,
}

/// Rights a grant confers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rights {
    /// May put records whose key starts with the scope.
    Write,
    /// May write, grant and revoke inside the scope.
    Admin,
}

/// The value of a record version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutValue {
    /// A JSON document, as text (validated on decode).
    Json(String),
    /// A delete: the record's latest version says "gone". Nothing is ever erased.
    Tombstone,
    /// A JSON document sealed under a scope's epoch read key (see [`crate::seal`]).
    Sealed(Sealed),
}

/// Bytes of an XChaCha20-Poly1305 nonce.
pub const SEAL_NONCE_BYTES: usize = 24;
/// Bytes of a Poly1305 tag (the ciphertext is the plaintext plus this).
pub const SEAL_TAG_BYTES: usize = 16;
/// Bytes of an epoch key id (see [`crate::seal::EpochKey::id`]).
pub const KEY_ID_BYTES: usize = 16;
/// Bytes of an ML-KEM-768 encapsulation (public) key.
pub const KEM_PUBLIC_BYTES: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_BYTES: usize = 1088;
/// Bytes of a wrapped epoch key: the 32-byte key and its tag.
pub const WRAPPED_KEY_BYTES: usize = 32 + SEAL_TAG_BYTES;

/// A value sealed with XChaCha20-Poly1305 under the read key of `scope` at `epoch`. The
/// associated data binds it to its event (chain, header without the body hash, and the rest of
/// the put), so a sealed body moved to another event fails to open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The read scope (a key prefix of the record key).
    pub scope: String,
    /// The scope's epoch whose key sealed it.
    pub epoch: u64,
    /// Which key of that epoch (concurrent admins may start one epoch twice).
    pub key_id: [u8; KEY_ID_BYTES],
    /// Random nonce.
    pub nonce: [u8; SEAL_NONCE_BYTES],
    /// The sealed JSON text followed by the 16-byte tag.
    #[serde(with = "bytes")]
    pub ciphertext: Vec<u8>,
}

/// An epoch read key of `scope` wrapped for one reader (DESIGN §6): an ML-KEM-768
/// encapsulation to the reader's public key, and the epoch key sealed under the shared secret.
/// Written by an `Admin` of the scope. The reader's KEM public key travels with it, so an admin
/// starting the next epoch can wrap the new key for every remaining reader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadKeyShare {
    /// The read scope.
    pub scope: String,
    /// The epoch (0, 1, ... per scope; removing a reader starts the next).
    pub epoch: u64,
    /// The epoch key's id.
    pub key_id: [u8; KEY_ID_BYTES],
    /// The reader's identity (its ed25519 public key).
    pub reader: PublicKey,
    /// The reader's ML-KEM-768 encapsulation key ([`KEM_PUBLIC_BYTES`]).
    #[serde(with = "bytes")]
    pub reader_kem: Vec<u8>,
    /// The ML-KEM-768 ciphertext ([`KEM_CIPHERTEXT_BYTES`]).
    #[serde(with = "bytes")]
    pub kem_ciphertext: Vec<u8>,
    /// The epoch key sealed under the KEM shared secret ([`WRAPPED_KEY_BYTES`]).
    #[serde(with = "bytes")]
    pub wrapped_key: Vec<u8>,
}

/// A root rotation (KERI pre-rotation): the author, a current root, reveals the key whose hash
/// it committed to earlier ([`next_key_commitment`]) and commits to the one after. From then
/// on, in any event that has this one in its causal past, the old key has no authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotate {
    /// The revealed next root key.
    pub next_root: PublicKey,
    /// `next_key_commitment` of the key after `next_root`.
    pub next_commitment: [u8; 32],
}

/// Byte strings as one serde `bytes` value instead of a sequence of `u8`s. The postcard
/// encoding is the same (`varint(len) ‖ bytes`), but it is one copy instead of a call per
/// byte, which matters on the ingest path (decode, then re-encode for the canonical check).
mod bytes {
    use serde::{Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// The pre-rotation commitment to a future root key: `blake3(public key bytes)`.
pub fn next_key_commitment(key: &PublicKey) -> [u8; 32] {
    *blake3::hash(&key.0).as_bytes()
}

/// The first event of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Human-readable name.
    pub name: String,
    /// Root keys: they hold all authority. Sorted and distinct.
    pub roots: Vec<PublicKey>,
    /// The chain's limits.
    pub params: Params,
    /// Makes two chains with the same name and roots distinct.
    pub nonce: u64,
    /// Pre-rotation commitments: empty (no root can rotate), or one per root in `roots` order,
    /// [`next_key_commitment`] of the key that root will hand its authority to.
    pub next: Vec<[u8; 32]>,
}

/// A record version (DESIGN §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The record key.
    pub key: String,
    /// The version this one follows; `None` for a record's first version.
    pub previous: Option<EventId>,
    /// The record's sequence number: `previous.seq + 1`, or 0.
    pub seq: u64,
    /// The value.
    pub value: PutValue,
}

/// A delegation of rights over a key prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Who receives the rights.
    pub to: PublicKey,
    /// The key prefix they cover ("" = everything).
    pub scope: String,
    /// What they may do there.
    pub rights: Rights,
}

/// A withdrawal of every right `key` holds inside `scope`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    /// Whose rights are withdrawn.
    pub key: PublicKey,
    /// The key prefix they are withdrawn from.
    pub scope: String,
}

/// An event body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// See [`Genesis`].
    Genesis(Genesis),
    /// See [`Put`].
    Put(Put),
    /// See [`Grant`].
    Grant(Grant),
    /// See [`Revoke`].
    Revoke(Revoke),
    /// See [`ReadKeyShare`].
    ReadKeyShare(ReadKeyShare),
    /// See [`Rotate`].
    Rotate(Rotate),
}

impl Body {
    /// The kind tag for the header.
    pub fn kind(&self) -> BodyKind {
        match self {
            Body::Genesis(_) => BodyKind::Genesis,
            Body::Put(_) => BodyKind::Put,
            Body::Grant(_) => BodyKind::Grant,
            Body::Revoke(_) => BodyKind::Revoke,
            Body::ReadKeyShare(_) => BodyKind::ReadKeyShare,
            Body::Rotate(_) => BodyKind::Rotate,
        }
    }

    /// Canonical bytes of the body.
    pub fn encode(&self) -> Vec<u8> {
        // Invariant: serializing plain structs of strings, integers and vectors into a Vec
        // cannot fail (postcard only fails on unsupported types or a full fixed buffer).
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// Why bytes are not an event. Each message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The envelope is larger than the chain (or the hard cap) allows.
    #[error("event is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Bytes given.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The bytes end before the envelope does.
    #[error("event bytes are truncated ({0})")]
    Truncated(&'static str),
    /// A length prefix is not in minimal form or too big.
    #[error("bad length prefix: {0}")]
    BadLength(&'static str),
    /// The header names a version this code does not know.
    #[error("unknown event version {0} (this node understands version {VERSION}); upgrade ate")]
    UnknownVersion(u8),
    /// The header or body bytes are not a valid postcard encoding of the expected type.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// "header" or "body".
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The bytes decode but are not the one canonical encoding of what they hold.
    #[error("non-canonical {0} encoding (re-encoding differs)")]
    NonCanonical(&'static str),
    /// A header field breaks a structural rule.
    #[error("invalid header: {0}")]
    BadHeader(&'static str),
    /// The body's hash or kind does not match the header.
    #[error("body does not match header: {0}")]
    BodyMismatch(&'static str),
    /// A body field breaks a rule or a limit.
    #[error("invalid body: {0}")]
    BadBody(String),
}

/// A decoded, structurally valid event. Its signature is *not* yet verified: see
/// [`Event::verify`] and [`crate::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The content address.
    pub id: EventId,
    /// The signed header.
    pub header: Header,
    /// The author's signature over `id`.
    pub sig: Signature,
    /// The body, unless it was compacted away.
    pub body: Option<Body>,
    /// The canonical body bytes; for a compacted put (`body` is `None`), its stub
    /// (`head ‖ blake3(tail)`, see the module doc).
    pub body_bytes: Vec<u8>,
}

/// Computes an event id from a chain id (absent for genesis) and canonical header bytes.
pub fn event_id(chain: Option<&ChainId>, header_bytes: &[u8]) -> EventId {
    let mut h = blake3::Hasher::new_derive_key("ate v1 event");
    if let Some(c) = chain {
        h.update(&c.0);
    }
    h.update(header_bytes);
    EventId(*h.finalize().as_bytes())
}

pub(crate) fn encode_header(header: &Header) -> Vec<u8> {
    // Invariant: see `Body::encode`.
    postcard::to_allocvec(header).unwrap_or_default()
}

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a minimal LEB128 varint of at most 3 bytes (enough for [`MAX_HEADER_BYTES`]).
fn read_varint(bytes: &[u8]) -> Result<(usize, usize), DecodeError> {
    let mut v = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(3) {
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(DecodeError::BadLength("overlong varint"));
            }
            return Ok((v, i + 1));
        }
    }
    if bytes.len() < 3 {
        Err(DecodeError::Truncated("in the header length"))
    } else {
        Err(DecodeError::BadLength(
            "header length prefix longer than 3 bytes",
        ))
    }
}

/// The id and signature of an envelope, read without decoding or checking it (cheap: one
/// hash). For gossip message ids and for matching verdicts to messages; `None` if the bytes
/// are too short to hold a header and signature.
pub fn envelope_id(chain: Option<&ChainId>, bytes: &[u8]) -> Option<(EventId, Signature)> {
    let (header_len, n) = read_varint(bytes).ok()?;
    let header = bytes.get(n..n.checked_add(header_len)?)?;
    let sig_at = n + header_len;
    let sig: [u8; 64] = bytes.get(sig_at..sig_at + 64)?.try_into().ok()?;
    Some((event_id(chain, header), Signature(sig)))
}

impl Event {
    /// Builds and signs an event. `chain` is `None` only for a genesis.
    pub fn sign(chain: Option<&ChainId>, header: Header, body: &Body, key: &SecretKey) -> Event {
        let body_bytes = body.encode();
        let mut header = header;
        header.body_hash = body_hash(body.kind(), &body_bytes);
        header.body_kind = body.kind();
        let id = event_id(chain, &encode_header(&header));
        let sig = key.sign(&id);
        Event {
            id,
            header,
            sig,
            body: Some(body.clone()),
            body_bytes,
        }
    }

    /// The envelope bytes (wire and disk form).
    pub fn encode(&self) -> Vec<u8> {
        let header = encode_header(&self.header);
        let mut out = Vec::with_capacity(header.len() + 70 + self.body_bytes.len());
        push_varint(&mut out, header.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.sig.0);
        out.push(if self.body.is_some() { 1 } else { 2 });
        out.extend_from_slice(&self.body_bytes);
        out
    }

    /// The head of a put: from its body, or from its stub when it was compacted. `None` for
    /// other kinds.
    pub fn put_head(&self) -> Option<PutHead> {
        match &self.body {
            Some(Body::Put(p)) => Some(PutHead::of(p)),
            Some(_) => None,
            None => decode_stub(&self.body_bytes),
        }
    }

    /// The same event with its value dropped, as compaction stores and serves it: `None` if
    /// it is not a put with a body.
    pub fn compacted(&self) -> Option<Event> {
        let Some(Body::Put(_)) = &self.body else {
            return None;
        };
        Some(Event {
            id: self.id,
            header: self.header.clone(),
            sig: self.sig,
            body: None,
            body_bytes: put_stub(&self.body_bytes)?,
        })
    }

    /// Decodes an envelope of `chain` (`None` for a genesis) under `params`' limits.
    pub fn decode(
        chain: Option<&ChainId>,
        bytes: &[u8],
        params: &Params,
    ) -> Result<Event, DecodeError> {
        let limit = (params.max_event_bytes as usize).min(HARD_MAX_EVENT_BYTES);
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let (header_len, n) = read_varint(bytes)?;
        if header_len > MAX_HEADER_BYTES {
            return Err(DecodeError::BadLength("header longer than 1024 bytes"));
        }
        let rest = &bytes[n..];
        if rest.len() < header_len + 64 + 1 {
            return Err(DecodeError::Truncated(
                "before the end of header, signature and flag",
            ));
        }
        let (header_bytes, rest) = rest.split_at(header_len);
        match header_bytes.first() {
            Some(&VERSION) => {}
            Some(&v) => return Err(DecodeError::UnknownVersion(v)),
            None => return Err(DecodeError::Truncated("empty header")),
        }
        let header: Header =
            postcard::from_bytes(header_bytes).map_err(|e| DecodeError::Malformed {
                what: "header",
                detail: e.to_string(),
            })?;
        if encode_header(&header) != header_bytes {
            return Err(DecodeError::NonCanonical("header"));
        }
        check_header(&header, chain.is_none())?;
        let (sig_bytes, rest) = rest.split_at(64);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(sig_bytes);
        let (flag, body_bytes) = rest.split_at(1);
        let (body, body_bytes) = match flag[0] {
            1 => (
                Some(decode_body(&header, body_bytes, params)?),
                body_bytes.to_vec(),
            ),
            2 => {
                check_stub(&header, body_bytes, params)?;
                (None, body_bytes.to_vec())
            }
            _ => {
                return Err(DecodeError::Malformed {
                    what: "envelope",
                    detail: "body form is neither 1 (body) nor 2 (compacted put)".into(),
                });
            }
        };
        let id = event_id(chain, header_bytes);
        Ok(Event {
            id,
            header,
            sig: Signature(sig),
            body,
            body_bytes,
        })
    }

    /// Verifies the signature alone (one at a time; see [`crate::verify`] for batches).
    pub fn verify(&self) -> bool {
        crate::verify::verify_one(&self.header.author, &self.id, &self.sig)
    }
}

fn check_header(h: &Header, genesis: bool) -> Result<(), DecodeError> {
    if h.parents.len() > MAX_PARENTS {
        return Err(DecodeError::BadHeader("more than 16 parents"));
    }
    if h.parents.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::BadHeader(
            "parents are not sorted and distinct",
        ));
    }
    if h.prev.is_some() != (h.seq > 0) {
        return Err(DecodeError::BadHeader(
            "prev must be present exactly when seq > 0",
        ));
    }
    let is_genesis = h.body_kind == BodyKind::Genesis;
    if genesis != is_genesis {
        return Err(DecodeError::BadHeader(if genesis {
            "expected a genesis event"
        } else {
            "a genesis event can only start a chain"
        }));
    }
    if is_genesis && (h.seq != 0 || !h.parents.is_empty() || h.clock != 0) {
        return Err(DecodeError::BadHeader(
            "genesis must have seq 0, no parents and clock 0",
        ));
    }
    if !is_genesis && h.parents.is_empty() {
        return Err(DecodeError::BadHeader(
            "a non-genesis event needs at least one parent",
        ));
    }
    Ok(())
}

fn decode_body(h: &Header, bytes: &[u8], params: &Params) -> Result<Body, DecodeError> {
    if body_hash(h.body_kind, bytes) != h.body_hash {
        return Err(DecodeError::BodyMismatch(
            "body_hash differs from the body's hash",
        ));
    }
    let body: Body = postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed {
        what: "body",
        detail: e.to_string(),
    })?;
    if body.kind() != h.body_kind {
        return Err(DecodeError::BodyMismatch(
            "body kind differs from header body_kind",
        ));
    }
    if body.encode() != bytes {
        return Err(DecodeError::NonCanonical("body"));
    }
    check_body(&body, params)?;
    Ok(body)
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), DecodeError> {
    if s.len() > max {
        return Err(DecodeError::BadBody(format!(
            "{what} is {} bytes, over the limit of {max}",
            s.len()
        )));
    }
    Ok(())
}

fn check_body(body: &Body, params: &Params) -> Result<(), DecodeError> {
    let max_key = params.max_key_bytes as usize;
    match body {
        Body::Genesis(g) => {
            check_len("chain name", &g.name, MAX_NAME_BYTES)?;
            if g.roots.is_empty() || g.roots.len() > MAX_ROOTS {
                return Err(DecodeError::BadBody(format!(
                    "a genesis needs 1 to {MAX_ROOTS} roots"
                )));
            }
            if g.roots.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DecodeError::BadBody(
                    "genesis roots are not sorted and distinct".into(),
                ));
            }
            let p = g.params;
            if p.max_event_bytes < 1024
                || p.max_event_bytes as usize > HARD_MAX_EVENT_BYTES
                || p.max_key_bytes == 0
            {
                return Err(DecodeError::BadBody("genesis params out of range".into()));
            }
            if !g.next.is_empty() && g.next.len() != g.roots.len() {
                return Err(DecodeError::BadBody(
                    "genesis needs no rotation commitment or one per root".into(),
                ));
            }
        }
        Body::Put(p) => {
            check_len("record key", &p.key, max_key)?;
            if p.previous.is_some() != (p.seq > 0) {
                return Err(DecodeError::BadBody(
                    "previous must be present exactly when seq > 0".into(),
                ));
            }
            match &p.value {
                PutValue::Json(text) => {
                    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                        return Err(DecodeError::BadBody(format!("value is not JSON: {e}")));
                    }
                }
                PutValue::Sealed(s) => {
                    if !p.key.starts_with(&s.scope) {
                        return Err(DecodeError::BadBody(
                            "a sealed value's scope must be a prefix of its record key".into(),
                        ));
                    }
                    if s.ciphertext.len() < SEAL_TAG_BYTES {
                        return Err(DecodeError::BadBody(
                            "sealed value shorter than its tag".into(),
                        ));
                    }
                }
                PutValue::Tombstone => {}
            }
        }
        Body::Grant(g) => check_len("grant scope", &g.scope, max_key)?,
        Body::Revoke(r) => check_len("revoke scope", &r.scope, max_key)?,
        Body::ReadKeyShare(s) => {
            check_len("read scope", &s.scope, max_key)?;
            let sizes = [
                ("reader KEM key", s.reader_kem.len(), KEM_PUBLIC_BYTES),
                (
                    "KEM ciphertext",
                    s.kem_ciphertext.len(),
                    KEM_CIPHERTEXT_BYTES,
                ),
                ("wrapped key", s.wrapped_key.len(), WRAPPED_KEY_BYTES),
            ];
            for (what, got, want) in sizes {
                if got != want {
                    return Err(DecodeError::BadBody(format!(
                        "{what} is {got} bytes, must be {want}"
                    )));
                }
            }
        }
        Body::Rotate(_) => {}
    }
    Ok(())
}
