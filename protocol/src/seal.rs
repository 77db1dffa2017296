//! Sealed values and read keys (DESIGN §6).
//!
//! A record's *value* can be sealed; its key, author and links stay in the clear, so every
//! replica still verifies, stores and forwards a sealed put and runs the chain of trust over it.
//! Only readers see the value.
//!
//! * **Scopes and epochs.** A read scope is a key prefix, like a grant's. Each scope has epochs
//!   0, 1, ...; an epoch has a random 32-byte [`EpochKey`], named by its [`EpochKey::id`]
//!   (a hash, so a wrong key is a clear error rather than a failed tag). Removing a reader
//!   starts the next epoch with a fresh key shared with everyone else ([`rekey`]); new writes
//!   must use the newest epoch in their causal past (the replica rejects older ones), so the
//!   removed reader can still open what it could open before, never what comes after.
//! * **Sharing.** An `Admin` of the scope writes a [`ReadKeyShare`] per reader: an ML-KEM-768
//!   (FIPS 203) encapsulation to the reader's public key and the epoch key sealed with
//!   XChaCha20-Poly1305 under a key derived from the shared secret and the share's context
//!   (chain, scope, epoch, key id, reader). The reader's KEM public key travels in the share,
//!   so the next epoch can be wrapped for every remaining reader.
//! * **Sealing.** XChaCha20-Poly1305 with a random 24-byte nonce, under the epoch key, with
//!   associated data that binds the value to its event: the chain, the header without its body
//!   hash (the body hash covers the ciphertext, so it cannot be in it), and the put without its
//!   ciphertext. A sealed body moved onto another header fails to open.
//!
//! Nothing here draws randomness: nonces, KEM coins and fresh keys are arguments (the node and
//! the facade draw them from the OS). Secret types print redacted, and no error message carries
//! key material.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ml_kem::{Decapsulate, KeyExport, MlKem768};

use crate::builder::{Template, Writer};
use crate::event::{
    Body, BodyKind, Event, Header, KEM_PUBLIC_BYTES, KEY_ID_BYTES, Put, PutValue, ReadKeyShare,
    SEAL_NONCE_BYTES, Sealed, encode_header,
};
use crate::ids::{ChainId, EventId, PublicKey};
use crate::replica::Replica;

type DecapsulationKey = ml_kem::DecapsulationKey<MlKem768>;
type EncapsulationKey = ml_kem::EncapsulationKey<MlKem768>;

/// Why a value could not be sealed or opened, or a share not made or opened. Messages never
/// contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The event is not a put with a sealed value.
    #[error("the event does not carry a sealed value")]
    NotSealed,
    /// The version's body was compacted away.
    #[error("the sealed value's body was compacted away; ask a replica that still has it")]
    NoBody,
    /// No key of this reader opens the value's epoch.
    #[error(
        "no read key for scope `{scope}` epoch {epoch}: this reader was not given it (ask an admin of the scope to `ate share` it)"
    )]
    NoKey {
        /// The value's scope.
        scope: String,
        /// The value's epoch.
        epoch: u64,
    },
    /// The key given is not the epoch key the value was sealed with.
    #[error("wrong key: it is not the epoch key this value was sealed with")]
    WrongKey,
    /// Authentication failed: the ciphertext was altered or moved to another event.
    #[error(
        "the sealed value fails authentication: it was altered, or moved to another event than it was sealed for"
    )]
    Tampered,
    /// The opened value is not JSON.
    #[error("the opened value is not JSON")]
    NotJson,
    /// The share is for another KEM key than the one given.
    #[error("the read key share is addressed to another reader key")]
    NotForThisReader,
    /// Bytes that should be an ML-KEM-768 public key are not one.
    #[error("not an ML-KEM-768 public key (must be {KEM_PUBLIC_BYTES} valid bytes)")]
    BadReaderKey,
    /// A reader identity's text form does not parse.
    #[error("not a reader identity: expected `reader` followed by base32 (from `ate key show`)")]
    BadReaderText,
    /// The record key is outside the scope it is sealed under.
    #[error("record key `{key}` is not inside read scope `{scope}`")]
    OutsideScope {
        /// The record key.
        key: String,
        /// The scope.
        scope: String,
    },
}

/// An epoch read key. Its `Debug` shows only its id.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKey([u8; 32]);

impl EpochKey {
    /// A key from 32 random bytes (drawn by the caller).
    pub fn from_bytes(bytes: [u8; 32]) -> EpochKey {
        EpochKey(bytes)
    }

    /// The raw key (for a local cache of opened keys; never log it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public name of the key: `blake3::derive_key("ate v1 epoch key id", key)`, 16 bytes.
    pub fn id(&self) -> [u8; KEY_ID_BYTES] {
        let full = blake3::derive_key("ate v1 epoch key id", &self.0);
        let mut id = [0u8; KEY_ID_BYTES];
        id.copy_from_slice(&full[..KEY_ID_BYTES]);
        id
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id();
        write!(f, "EpochKey(id {:02x}{:02x}{:02x}…)", id[0], id[1], id[2])
    }
}

/// A reader's ML-KEM-768 decapsulation key, kept as its 64-byte FIPS 203 seed. Its `Debug`
/// shows only a fingerprint of the public half.
#[derive(Clone)]
pub struct ReaderSecret {
    seed: [u8; 64],
    dk: DecapsulationKey,
}

impl ReaderSecret {
    /// The key from its 64-byte seed (`d ‖ z` of FIPS 203; random for a new key).
    pub fn from_seed(seed: [u8; 64]) -> ReaderSecret {
        let dk = DecapsulationKey::from_seed(seed.into());
        ReaderSecret { seed, dk }
    }

    /// The seed, for key files.
    pub fn seed(&self) -> &[u8; 64] {
        &self.seed
    }

    /// The public (encapsulation) key.
    pub fn public(&self) -> ReaderPublic {
        ReaderPublic(self.dk.encapsulation_key().to_bytes().to_vec())
    }
}

impl fmt::Debug for ReaderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReaderSecret({})", self.public().fingerprint())
    }
}

/// A reader's ML-KEM-768 encapsulation (public) key, checked on construction.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReaderPublic(Vec<u8>);

impl ReaderPublic {
    /// Checks and wraps encapsulation key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReaderPublic, SealError> {
        encapsulation_key(bytes)?;
        Ok(ReaderPublic(bytes.to_vec()))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A short fingerprint for logs and listings (`kem` and 8 hex digits of its blake3).
    pub fn fingerprint(&self) -> String {
        let h = blake3::hash(&self.0);
        let b = h.as_bytes();
        format!("kem{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
    }
}

impl fmt::Debug for ReaderPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

fn encapsulation_key(bytes: &[u8]) -> Result<EncapsulationKey, SealError> {
    let key = bytes.try_into().map_err(|_| SealError::BadReaderKey)?;
    EncapsulationKey::new(&key).map_err(|_| SealError::BadReaderKey)
}

/// A reader's public identity: its ed25519 key (who it is on the chain) and its ML-KEM-768
/// key (how to share with it). Text form: `reader` + base32(ed25519 ‖ ML-KEM), as printed by
/// `ate key show`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Reader {
    /// The reader's ed25519 public key.
    pub id: PublicKey,
    /// The reader's ML-KEM-768 public key.
    pub kem: ReaderPublic,
}

impl Reader {
    /// The text prefix.
    pub const PREFIX: &'static str = "reader";

    /// The text form.
    pub fn to_text(&self) -> String {
        let mut bytes = self.id.0.to_vec();
        bytes.extend_from_slice(self.kem.as_bytes());
        format!("{}{}", Self::PREFIX, base32::encode(&bytes))
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Reader, SealError> {
        let rest = text
            .trim()
            .strip_prefix(Self::PREFIX)
            .ok_or(SealError::BadReaderText)?;
        if rest.len() > 2 * (32 + KEM_PUBLIC_BYTES) {
            return Err(SealError::BadReaderText);
        }
        let bytes = base32::decode(rest).ok_or(SealError::BadReaderText)?;
        if bytes.len() != 32 + KEM_PUBLIC_BYTES {
            return Err(SealError::BadReaderText);
        }
        let (id, kem) = bytes.split_at(32);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(id);
        Ok(Reader {
            id: PublicKey(pk),
            kem: ReaderPublic::from_bytes(kem)?,
        })
    }
}

/// Lowercase base32 without padding (for key files and reader identities).
pub fn base32_encode(bytes: &[u8]) -> String {
    base32::encode(bytes)
}

/// Parses [`base32_encode`]'s output (canonical only); `None` on anything else.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() > 8192 {
        return None;
    }
    base32::decode(text)
}

/// Text form of a pre-rotation commitment ([`crate::next_key_commitment`]): `next` + base32.
pub fn commitment_to_text(c: &[u8; 32]) -> String {
    format!("next{}", base32::encode(c))
}

/// Parses [`commitment_to_text`]'s output.
pub fn commitment_from_text(text: &str) -> Option<[u8; 32]> {
    let rest = text.trim().strip_prefix("next")?;
    base32_decode(rest)?.as_slice().try_into().ok()
}

mod base32 {
    //! Lowercase RFC 4648 base32 without padding, canonical (unused trailing bits are zero).
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 5 / 8);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            acc = ((acc << 5) | v) & 0xffff;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        // Leftover bits must be padding zeros, and fewer than a whole character.
        (bits < 5 && acc & ((1 << bits) - 1) == 0).then_some(out)
    }
}

/// The associated data of a sealed value: the chain, the header without its body hash, and
/// the put without its ciphertext.
fn associated_data(chain: &ChainId, header: &Header, put: &Put) -> [u8; 32] {
    let mut h = header.clone();
    h.body_hash = [0; 32];
    h.body_kind = BodyKind::Put;
    let value = match &put.value {
        PutValue::Sealed(s) => PutValue::Sealed(Sealed {
            scope: s.scope.clone(),
            epoch: s.epoch,
            key_id: s.key_id,
            nonce: s.nonce,
            ciphertext: Vec::new(),
        }),
        other => other.clone(),
    };
    let bare = Body::Put(Put {
        key: put.key.clone(),
        previous: put.previous,
        seq: put.seq,
        value,
    });
    let header_bytes = encode_header(&h);
    let mut hasher = blake3::Hasher::new_derive_key("ate v1 sealed value");
    hasher.update(&chain.0);
    hasher.update(&(header_bytes.len() as u64).to_le_bytes());
    hasher.update(&header_bytes);
    hasher.update(&bare.encode());
    *hasher.finalize().as_bytes()
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// An epoch to seal under: the scope, its epoch number and key.
#[derive(Debug, Clone, Copy)]
pub struct SealWith<'a> {
    /// The read scope (a prefix of the record key).
    pub scope: &'a str,
    /// The epoch.
    pub epoch: u64,
    /// The epoch's key.
    pub key: &'a EpochKey,
}

impl Writer {
    /// A put of `value` sealed under `with`, built from a template made for `key` (see
    /// [`Template::for_writer`]). `nonce` must be random (24 bytes from the OS).
    pub fn put_sealed_from(
        &self,
        t: &Template,
        key: &str,
        value: &serde_json::Value,
        with: SealWith<'_>,
        nonce: [u8; SEAL_NONCE_BYTES],
        time_ms: u64,
    ) -> Result<Event, SealError> {
        if !key.starts_with(with.scope) {
            return Err(SealError::OutsideScope {
                key: key.to_string(),
                scope: with.scope.to_string(),
            });
        }
        let (previous, seq) = match t.previous {
            Some((id, seq)) => (Some(id), seq + 1),
            None => (None, 0),
        };
        let mut put = Put {
            key: key.to_string(),
            previous,
            seq,
            value: PutValue::Sealed(Sealed {
                scope: with.scope.to_string(),
                epoch: with.epoch,
                key_id: with.key.id(),
                nonce,
                ciphertext: Vec::new(),
            }),
        };
        let header = self.header(t, BodyKind::Put, time_ms);
        let aad = associated_data(&t.chain, &header, &put);
        let mut buf = value.to_string().into_bytes();
        cipher(with.key.as_bytes())
            .encrypt_in_place(&XNonce::from(nonce), &aad, &mut buf)
            .map_err(|_| SealError::Tampered)?;
        if let PutValue::Sealed(s) = &mut put.value {
            s.ciphertext = buf;
        }
        Ok(self.build(t, Body::Put(put), time_ms))
    }

    /// A put of `value` sealed under `with`, on top of `replica`.
    pub fn put_sealed(
        &self,
        replica: &Replica,
        key: &str,
        value: &serde_json::Value,
        with: SealWith<'_>,
        nonce: [u8; SEAL_NONCE_BYTES],
        time_ms: u64,
    ) -> Result<Event, SealError> {
        let t = Template::for_writer(replica, &self.public(), Some(key));
        self.put_sealed_from(&t, key, value, with, nonce, time_ms)
    }

    /// An event carrying a read key share, on top of `replica`.
    pub fn share(&self, replica: &Replica, share: ReadKeyShare, time_ms: u64) -> Event {
        self.event(replica, Body::ReadKeyShare(share), time_ms)
    }
}

/// The sealed part of an event, if it is a sealed put.
pub fn sealed_of(ev: &Event) -> Option<&Sealed> {
    match &ev.body {
        Some(Body::Put(Put {
            value: PutValue::Sealed(s),
            ..
        })) => Some(s),
        _ => None,
    }
}

/// Opens a sealed put of `chain` with `key`: the plaintext JSON text.
pub fn open(chain: &ChainId, ev: &Event, key: &EpochKey) -> Result<Vec<u8>, SealError> {
    let Some(Body::Put(put)) = &ev.body else {
        return Err(if ev.header.body_kind == BodyKind::Put {
            SealError::NoBody
        } else {
            SealError::NotSealed
        });
    };
    let PutValue::Sealed(s) = &put.value else {
        return Err(SealError::NotSealed);
    };
    if key.id() != s.key_id {
        return Err(SealError::WrongKey);
    }
    let aad = associated_data(chain, &ev.header, put);
    let mut buf = s.ciphertext.clone();
    cipher(key.as_bytes())
        .decrypt_in_place(&XNonce::from(s.nonce), &aad, &mut buf)
        .map_err(|_| SealError::Tampered)?;
    Ok(buf)
}

/// The key that wraps an epoch key for one reader: the KEM shared secret bound to the share's
/// context, so a wrapped key copied into another share (or chain) does not open.
fn wrapping_key(ss: &[u8], chain: &ChainId, s: &ReadKeyShare) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("ate v1 read key wrap");
    h.update(ss);
    h.update(&chain.0);
    h.update(&(s.scope.len() as u64).to_le_bytes());
    h.update(s.scope.as_bytes());
    h.update(&s.epoch.to_le_bytes());
    h.update(&s.key_id);
    h.update(&s.reader.0);
    *h.finalize().as_bytes()
}

/// Wraps `key` (epoch `epoch` of `scope`) for `reader`. `coins` must be 32 random bytes (the
/// ML-KEM encapsulation randomness); never reuse them.
pub fn make_share(
    chain: &ChainId,
    scope: &str,
    epoch: u64,
    key: &EpochKey,
    reader: &Reader,
    coins: &[u8; 32],
) -> Result<ReadKeyShare, SealError> {
    let ek = encapsulation_key(reader.kem.as_bytes())?;
    let (ct, ss) = ek.encapsulate_deterministic(&(*coins).into());
    let mut share = ReadKeyShare {
        scope: scope.to_string(),
        epoch,
        key_id: key.id(),
        reader: reader.id,
        reader_kem: reader.kem.as_bytes().to_vec(),
        kem_ciphertext: ct.to_vec(),
        wrapped_key: Vec::new(),
    };
    let wk = wrapping_key(ss.as_slice(), chain, &share);
    let mut buf = key.as_bytes().to_vec();
    // The wrapping key is fresh per encapsulation, so one fixed nonce is safe.
    cipher(&wk)
        .encrypt_in_place(&XNonce::default(), &[], &mut buf)
        .map_err(|_| SealError::Tampered)?;
    share.wrapped_key = buf;
    Ok(share)
}

/// Opens a share addressed to `secret`'s public key: the epoch key.
pub fn open_share(
    chain: &ChainId,
    share: &ReadKeyShare,
    secret: &ReaderSecret,
) -> Result<EpochKey, SealError> {
    if share.reader_kem != secret.public().0 {
        return Err(SealError::NotForThisReader);
    }
    let ss = secret
        .dk
        .decapsulate_slice(&share.kem_ciphertext)
        .map_err(|_| SealError::Tampered)?;
    let wk = wrapping_key(ss.as_slice(), chain, share);
    let mut buf = share.wrapped_key.clone();
    cipher(&wk)
        .decrypt_in_place(&XNonce::default(), &[], &mut buf)
        .map_err(|_| SealError::Tampered)?;
    let bytes: [u8; 32] = buf.as_slice().try_into().map_err(|_| SealError::Tampered)?;
    let key = EpochKey(bytes);
    if key.id() != share.key_id {
        return Err(SealError::WrongKey);
    }
    Ok(key)
}

/// The epoch keys one reader holds, by `(scope, epoch, key id)`.
#[derive(Default, Clone)]
pub struct Keyring {
    keys: BTreeMap<(String, u64, [u8; KEY_ID_BYTES]), EpochKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} epoch keys)", self.keys.len())
    }
}

impl Keyring {
    /// Adds an epoch key.
    pub fn insert(&mut self, scope: &str, epoch: u64, key: EpochKey) {
        self.keys.insert((scope.to_string(), epoch, key.id()), key);
    }

    /// The key of `scope`'s epoch `epoch` named `key_id`.
    pub fn get(&self, scope: &str, epoch: u64, key_id: &[u8; KEY_ID_BYTES]) -> Option<&EpochKey> {
        self.keys.get(&(scope.to_string(), epoch, *key_id))
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The newest epoch of `scope` this keyring holds a key for.
    pub fn newest(&self, scope: &str) -> Option<(u64, &EpochKey)> {
        self.keys
            .iter()
            .filter(|((s, _, _), _)| s == scope)
            .map(|((_, e, _), k)| (*e, k))
            .max_by_key(|(e, k)| (*e, k.id()))
    }

    /// Opens a sealed put with the key its epoch names.
    pub fn open(&self, chain: &ChainId, ev: &Event) -> Result<Vec<u8>, SealError> {
        let s = match sealed_of(ev) {
            Some(s) => s,
            None => return open(chain, ev, &EpochKey([0; 32])),
        };
        let key = self
            .get(&s.scope, s.epoch, &s.key_id)
            .ok_or_else(|| SealError::NoKey {
                scope: s.scope.clone(),
                epoch: s.epoch,
            })?;
        open(chain, ev, key)
    }

    /// Opens a sealed put as JSON.
    pub fn open_json(&self, chain: &ChainId, ev: &Event) -> Result<serde_json::Value, SealError> {
        let text = self.open(chain, ev)?;
        serde_json::from_slice(&text).map_err(|_| SealError::NotJson)
    }
}

/// The newest epoch of a scope in a replica: its number, its key ids (more than one if two
/// admins started it concurrently) and the readers it was shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEpoch {
    /// The epoch number.
    pub epoch: u64,
    /// Key ids seen for it.
    pub key_ids: Vec<[u8; KEY_ID_BYTES]>,
    /// Its readers (one entry per reader identity).
    pub readers: Vec<Reader>,
}

impl Replica {
    /// Every read key share stored, in acceptance order.
    pub fn read_key_shares(&self) -> Vec<(EventId, ReadKeyShare)> {
        self.trust
            .share_ordinals()
            .iter()
            .filter_map(|&o| {
                let id = self.trust.admins.get(o as usize)?.id;
                let slot = self.dag.slot(&id)?;
                match self.dag.body(slot)? {
                    Body::ReadKeyShare(s) => Some((id, s)),
                    _ => None,
                }
            })
            .collect()
    }

    /// The epoch keys `reader` can open with `secret`, from every share addressed to it.
    /// Shares that do not open (a broken or hostile share) are skipped.
    pub fn keyring(&self, reader: &PublicKey, secret: &ReaderSecret) -> Keyring {
        let mut ring = Keyring::default();
        let mine = secret.public();
        for (_, s) in self.read_key_shares() {
            if s.reader != *reader || s.reader_kem != mine.0 {
                continue;
            }
            if let Ok(key) = open_share(&self.chain, &s, secret) {
                ring.insert(&s.scope, s.epoch, key);
            }
        }
        ring
    }

    /// The newest epoch of `scope` (exactly that scope) and its readers; `None` before any share.
    pub fn read_epoch(&self, scope: &str) -> Option<ReadEpoch> {
        let shares: Vec<ReadKeyShare> = self
            .read_key_shares()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.scope == scope)
            .collect();
        let epoch = shares.iter().map(|s| s.epoch).max()?;
        let mut key_ids = Vec::new();
        let mut readers: BTreeMap<PublicKey, ReaderPublic> = BTreeMap::new();
        for s in shares.into_iter().filter(|s| s.epoch == epoch) {
            if !key_ids.contains(&s.key_id) {
                key_ids.push(s.key_id);
            }
            readers
                .entry(s.reader)
                .or_insert(ReaderPublic(s.reader_kem));
        }
        key_ids.sort();
        Some(ReadEpoch {
            epoch,
            key_ids,
            readers: readers
                .into_iter()
                .map(|(id, kem)| Reader { id, kem })
                .collect(),
        })
    }
}

/// Expands one 32-byte random seed into independent 32-byte values (epoch key, KEM coins).
fn derive(seed: &[u8; 32], what: &str, i: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("ate v1 seal randomness");
    h.update(seed);
    h.update(&(what.len() as u64).to_le_bytes());
    h.update(what.as_bytes());
    h.update(&i.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Starts epoch `epoch` of `scope` with a fresh key (derived from `seed`, 32 random bytes)
/// shared with each of `readers`: the shares to publish, and the key.
pub fn rekey(
    chain: &ChainId,
    scope: &str,
    epoch: u64,
    readers: &[Reader],
    seed: &[u8; 32],
) -> Result<(Vec<ReadKeyShare>, EpochKey), SealError> {
    let key = EpochKey(derive(seed, "epoch key", 0));
    let mut shares = Vec::with_capacity(readers.len());
    for (i, r) in readers.iter().enumerate() {
        shares.push(make_share(
            chain,
            scope,
            epoch,
            &key,
            r,
            &derive(seed, "kem coins", i as u64),
        )?);
    }
    Ok((shares, key))
}

/// A scope's newest epoch as a planner sees it: its number and its readers.
pub type CurrentEpoch<'a> = Option<(u64, &'a [Reader])>;

/// The shares an admin (`me`, holding `ring`) writes to give `reader` access to `scope`:
/// the current epoch's key if the admin holds it, or else a new epoch shared with the
/// current readers, the admin and `reader`. `seed`: 32 random bytes.
pub fn plan_share(
    replica: &Replica,
    ring: &Keyring,
    me: &Reader,
    scope: &str,
    reader: &Reader,
    seed: &[u8; 32],
) -> Result<Vec<ReadKeyShare>, SealError> {
    let current = replica.read_epoch(scope);
    let held = current
        .as_ref()
        .and_then(|cur| (cur.key_ids.iter()).find_map(|id| ring.get(scope, cur.epoch, id)));
    let cur = current.as_ref().map(|c| (c.epoch, c.readers.as_slice()));
    plan_share_from(&replica.chain(), scope, cur, held, me, reader, seed)
}

/// [`plan_share`] from what a client knows of the scope instead of a replica (the CLI asks a
/// node): its newest epoch and readers, and that epoch's key if the admin holds it.
pub fn plan_share_from(
    chain: &ChainId,
    scope: &str,
    current: CurrentEpoch<'_>,
    held: Option<&EpochKey>,
    me: &Reader,
    reader: &Reader,
    seed: &[u8; 32],
) -> Result<Vec<ReadKeyShare>, SealError> {
    if let (Some((epoch, _)), Some(key)) = (current, held) {
        let coins = derive(seed, "kem coins", 0);
        return Ok(vec![make_share(chain, scope, epoch, key, reader, &coins)?]);
    }
    let mut readers = current.map_or(Vec::new(), |(_, r)| r.to_vec());
    readers.push(me.clone());
    readers.push(reader.clone());
    next_epoch(chain, scope, current, readers, seed)
}

/// The shares an admin (`me`) writes to remove `removed` from `scope`: a new epoch shared
/// with every current reader but `removed` (and with the admin). `seed`: 32 random bytes.
pub fn plan_unshare(
    replica: &Replica,
    me: &Reader,
    scope: &str,
    removed: &PublicKey,
    seed: &[u8; 32],
) -> Result<Vec<ReadKeyShare>, SealError> {
    let current = replica.read_epoch(scope);
    let cur = current.as_ref().map(|c| (c.epoch, c.readers.as_slice()));
    plan_unshare_from(&replica.chain(), scope, cur, me, removed, seed)
}

/// [`plan_unshare`] from what a client knows of the scope: its newest epoch and readers.
pub fn plan_unshare_from(
    chain: &ChainId,
    scope: &str,
    current: CurrentEpoch<'_>,
    me: &Reader,
    removed: &PublicKey,
    seed: &[u8; 32],
) -> Result<Vec<ReadKeyShare>, SealError> {
    let mut readers = current.map_or(Vec::new(), |(_, r)| r.to_vec());
    readers.retain(|r| r.id != *removed);
    if me.id != *removed {
        readers.push(me.clone());
    }
    next_epoch(chain, scope, current, readers, seed)
}

/// The epoch after `current` (0 if none), with a fresh key shared with `readers` (each
/// identity once).
fn next_epoch(
    chain: &ChainId,
    scope: &str,
    current: CurrentEpoch<'_>,
    mut readers: Vec<Reader>,
    seed: &[u8; 32],
) -> Result<Vec<ReadKeyShare>, SealError> {
    readers.sort();
    readers.dedup_by(|a, b| a.id == b.id);
    let epoch = current.map_or(0, |(e, _)| e + 1);
    Ok(rekey(chain, scope, epoch, &readers, seed)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_and_is_canonical() {
        for n in [0usize, 1, 2, 5, 31, 32, 1216] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let text = base32::encode(&bytes);
            assert_eq!(base32::decode(&text).as_deref(), Some(&bytes[..]));
        }
        // "b" then a non-zero padding bit: not canonical.
        assert_eq!(base32::decode("ab"), None);
        assert_eq!(base32::decode("A"), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let secret = ReaderSecret::from_seed([9; 64]);
        let key = EpochKey::from_bytes([7; 32]);
        let text = format!("{secret:?} {key:?}");
        assert!(!text.contains("9, 9") && !text.contains("7, 7"), "{text}");
    }

    #[test]
    fn reader_text_round_trips() {
        let secret = ReaderSecret::from_seed([3; 64]);
        let r = Reader {
            id: PublicKey([5; 32]),
            kem: secret.public(),
        };
        assert_eq!(Reader::from_text(&r.to_text()), Ok(r));
        assert_eq!(
            Reader::from_text("readerabc"),
            Err(SealError::BadReaderText)
        );
    }
}
