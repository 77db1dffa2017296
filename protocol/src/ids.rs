//! Identifiers and keys, with a typed text form that survives copy and paste.
//!
//! Every id and key is 32 raw bytes (a blake3 output or an ed25519 point). Their text form is
//! a short type prefix followed by lowercase RFC 4648 base32 without padding, so a pasted value
//! says what it is: `ev…` for events, `chain…` for chains, `pk…` for public keys and `sk…` for
//! secret keys. Parsing checks the prefix, so a chain id pasted where a key is expected is a
//! clear error instead of a silent mix-up. Logs use the short form (`ev3fq4wz…`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a text id or key did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text does not start with the prefix of the expected type.
    #[error("expected a {kind} starting with `{prefix}`, got `{got}`")]
    WrongPrefix {
        /// What was expected, e.g. "event id".
        kind: &'static str,
        /// The prefix that was expected.
        prefix: &'static str,
        /// The start of what was given (at most 16 characters).
        got: String,
    },
    /// The part after the prefix is not 52 base32 characters (`a`–`z`, `2`–`7`).
    #[error("{kind} `{prefix}…` must be followed by 52 base32 characters (a-z, 2-7)")]
    BadBase32 {
        /// What was expected.
        kind: &'static str,
        /// The prefix of that type.
        prefix: &'static str,
    },
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters in the base32 text of 32 bytes (256 bits / 5, rounded up).
const B32_LEN: usize = 52;

fn base32_encode(bytes: &[u8; 32], out: &mut String) {
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
}

fn base32_decode(text: &str) -> Option<[u8; 32]> {
    if text.len() != B32_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    for c in text.bytes() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    // 52 * 5 = 260 bits: the last 4 bits are padding and must be zero (one text per value).
    if n != 32 || acc != 0 {
        return None;
    }
    Some(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        // Binary formats (postcard: headers, wire) carry the 32 raw bytes; human-readable
        // ones (JSON: the HTTP API, reports) carry the text form.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map($name)
                }
            }
        }

        impl $name {
            /// The text prefix of this type.
            pub const PREFIX: &'static str = $prefix;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// A short form for logs: the prefix and the first 6 base32 characters.
            pub fn short(&self) -> String {
                let mut s = self.to_string();
                s.truncate($prefix.len() + 6);
                s.push('…');
                s
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = String::with_capacity($prefix.len() + B32_LEN);
                s.push_str($prefix);
                base32_encode(&self.0, &mut s);
                f.write_str(&s)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.short())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(text: &str) -> Result<Self, IdParseError> {
                let text = text.trim();
                let Some(rest) = text.strip_prefix($prefix) else {
                    return Err(IdParseError::WrongPrefix {
                        kind: $kind,
                        prefix: $prefix,
                        got: text.chars().take(16).collect(),
                    });
                };
                base32_decode(rest)
                    .map($name)
                    .ok_or(IdParseError::BadBase32 { kind: $kind, prefix: $prefix })
            }
        }
    };
}

id_type!(
    /// The id of an event: `blake3::derive_key("ate v1 event", chain ‖ canonical header)`.
    EventId, "ev", "event id"
);
id_type!(
    /// The id of a chain: the id of its genesis event.
    ChainId, "chain", "chain id"
);
id_type!(
    /// An ed25519 public key (32 bytes, compressed Edwards point), as carried in headers.
    PublicKey, "pk", "public key"
);

impl From<ChainId> for EventId {
    fn from(c: ChainId) -> Self {
        EventId(c.0)
    }
}

/// An ed25519 signature over an event id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig{:02x}{:02x}{:02x}…", self.0[0], self.0[1], self.0[2])
    }
}

/// A writer's ed25519 secret key. Its `Debug` never shows the key; its text form (`sk…`) is
/// what key files hold.
#[derive(Clone)]
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// The text prefix of secret keys.
    pub const PREFIX: &'static str = "sk";

    /// Builds a key from 32 secret bytes. The caller supplies the randomness (the protocol
    /// crate never reads the OS RNG): the node uses the OS RNG, tests and the simulator a seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs an event id.
    pub fn sign(&self, id: &EventId) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.0.sign(&id.0).to_bytes())
    }

    /// The text form for key files (`sk` + base32 of the 32 secret bytes). Keep it secret.
    pub fn to_text(&self) -> String {
        let mut s = String::from(Self::PREFIX);
        base32_encode(self.0.as_bytes(), &mut s);
        s
    }

    /// Parses the text form written by [`SecretKey::to_text`].
    pub fn from_text(text: &str) -> Result<Self, IdParseError> {
        let text = text.trim();
        let rest = text
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| IdParseError::WrongPrefix {
                kind: "secret key",
                prefix: Self::PREFIX,
                got: text.chars().take(4).collect(),
            })?;
        base32_decode(rest)
            .map(Self::from_seed)
            .ok_or(IdParseError::BadBase32 {
                kind: "secret key",
                prefix: Self::PREFIX,
            })
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public().short())
    }
}

/// A node-local handle for a remote peer. The node maps its transport's peer ids to these
/// small numbers; the simulator numbers its nodes. Cheap to copy and totally ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_prefix_checks() {
        let id = EventId(*blake3::hash(b"x").as_bytes());
        let text = id.to_string();
        assert!(text.starts_with("ev"));
        assert_eq!(text.len(), 2 + 52);
        assert_eq!(text.parse::<EventId>(), Ok(id));
        let err = text.parse::<ChainId>().unwrap_err();
        assert!(err.to_string().contains("chain"), "{err}");
        assert!(matches!(
            "evxyz".parse::<EventId>(),
            Err(IdParseError::BadBase32 { .. })
        ));
        // Non-zero padding bits would give two texts for one id.
        let mut bad = text.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'a' { 'b' } else { 'a' });
        if bad != text {
            let parsed = bad.parse::<EventId>();
            assert!(parsed.is_err() || parsed.unwrap() != id);
        }
        assert_eq!(id.short().chars().count(), 2 + 6 + 1);
    }

    #[test]
    fn secret_key_text_and_debug() {
        let sk = SecretKey::from_seed([7; 32]);
        let back = SecretKey::from_text(&sk.to_text()).unwrap();
        assert_eq!(back.public(), sk.public());
        let dbg = format!("{sk:?}");
        assert!(!dbg.contains(&sk.to_text()[2..]));
        assert!(SecretKey::from_text("pkabc").is_err());
    }

    #[test]
    fn base32_rejects_garbage_without_panic() {
        for s in ["", "ev", "ev!!!!", "evAAAA", &"ev".repeat(40)] {
            assert!(s.parse::<EventId>().is_err());
        }
    }
}
