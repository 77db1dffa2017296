//! The text forms a user handles: key files, reader identities and pre-rotation commitments.
//!
//! Pure parsing, no IO, so it can be fuzzed on its own: `fuzz/fuzz_targets/key_text.rs`
//! includes this file by path, which keeps libp2p and tokio out of the fuzz build. Keep its
//! dependencies to `std`, `ate_protocol` and `thiserror`.
//!
//! Every parser checks the size first (a key file is under [`MAX_KEY_FILE_BYTES`], an argument
//! under [`MAX_ARG_BYTES`]), and no error message repeats what it was given: a garbled key
//! file may still hold most of a secret.
//!
//! ## Key file, format 1
//! One item per line; blank lines and surrounding spaces are ignored:
//! ```text
//! sk<base32 of the 32-byte ed25519 seed>           signing: events, grants, shares, rotations
//! rs<base32 of the 64-byte ML-KEM-768 seed d ‖ z>  reading: opens read key shares (DESIGN §6)
//! ```
//! Files written before sealed values have only the first line; they still sign, and reader
//! commands say the file has no reader key. Any other line is refused (a newer format must
//! not be half-read by an older `ate`).
//!
//! ## Public text forms (printed by `ate key show`)
//! * `pk…` — the ed25519 public key (grants, revocations, `ate unshare`).
//! * `reader…` — the reader identity: base32 of the ed25519 key followed by the ML-KEM-768
//!   encapsulation key; what `ate share` takes.
//! * `next…` — `blake3(public key)`, the pre-rotation commitment that names this key as a
//!   root's next key (`ate chain new --next`, `ate rotate --next`).

use ate_protocol::seal::{self, Reader, ReaderSecret};
use ate_protocol::{PublicKey, SecretKey};

/// Largest key file accepted, in bytes (a format-1 file is about 160).
pub const MAX_KEY_FILE_BYTES: usize = 4096;

/// Longest command-line key text accepted, in bytes (a `reader…` is 1,952 characters).
pub const MAX_ARG_BYTES: usize = 4096;

/// The prefix of a key file's reader (ML-KEM-768 seed) line.
const READER_PREFIX: &str = "rs";

/// Everything a key file holds.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The ed25519 signing key.
    pub signing: SecretKey,
    /// The ML-KEM-768 decapsulation key (absent in files written before sealed values).
    pub reader: Option<ReaderSecret>,
}

/// Why bytes are not a key file. Messages never contain the file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Over [`MAX_KEY_FILE_BYTES`].
    #[error("it is over {MAX_KEY_FILE_BYTES} bytes, too large for a key file")]
    TooLarge {
        /// The size seen (the file reader stops one byte past the limit).
        size_bytes: usize,
    },
    /// Not UTF-8.
    #[error("it is not text")]
    NotText,
    /// Nothing but blank lines.
    #[error("it is empty")]
    Empty,
    /// The first line is not `sk` + 52 base32 characters.
    #[error("line {line} is not a signing key (`sk` followed by 52 base32 characters)")]
    BadSigningKey {
        /// 1-based line number.
        line: usize,
    },
    /// The second line is not `rs` + 103 base32 characters.
    #[error("line {line} is not a reader key (`rs` followed by 103 base32 characters)")]
    BadReaderKey {
        /// 1-based line number.
        line: usize,
    },
    /// More lines than a signing and a reader key.
    #[error("line {line} is unexpected: a key file holds a signing line and a reader line")]
    ExtraLine {
        /// 1-based line number.
        line: usize,
    },
}

/// Why a key given on the command line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyTextError {
    /// Over [`MAX_ARG_BYTES`].
    #[error("it is {size_bytes} bytes; at most {MAX_ARG_BYTES} are accepted")]
    TooLong {
        /// The size given.
        size_bytes: usize,
    },
    /// Not a `reader…` identity.
    #[error(
        "not a reader identity: expected `reader` and base32, as printed by `ate key show FILE --reader`"
    )]
    BadReader,
    /// Not a `next…` commitment.
    #[error(
        "not a pre-rotation commitment: expected `next` and 52 base32 characters, as printed by `ate key show NEXT.key --next`"
    )]
    BadCommitment,
    /// Neither a `reader…` identity nor a `pk…` key.
    #[error(
        "not a reader: expected a reader identity (`reader…`) or a public key (`pk…`) from `ate key show`"
    )]
    BadReaderOrKey,
}

impl Identity {
    /// The public reader identity, if the file has a reader key.
    pub fn reader_public(&self) -> Option<Reader> {
        Some(Reader {
            id: self.signing.public(),
            kem: self.reader.as_ref()?.public(),
        })
    }

    /// The key file text (format 1). Holds secrets: write it only to a private file.
    pub fn to_file_text(&self) -> String {
        let mut text = self.signing.to_text();
        text.push('\n');
        if let Some(r) = &self.reader {
            text.push_str(READER_PREFIX);
            text.push_str(&seal::base32_encode(r.seed()));
            text.push('\n');
        }
        text
    }

    /// Parses a key file's bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Identity, KeyFileError> {
        if bytes.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::TooLarge {
                size_bytes: bytes.len(),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::NotText)?;
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let (line, first) = lines.next().ok_or(KeyFileError::Empty)?;
        let signing =
            SecretKey::from_text(first).map_err(|_| KeyFileError::BadSigningKey { line })?;
        let reader = match lines.next() {
            None => None,
            Some((line, text)) => Some(
                parse_reader_seed(text)
                    .map(ReaderSecret::from_seed)
                    .ok_or(KeyFileError::BadReaderKey { line })?,
            ),
        };
        if let Some((line, _)) = lines.next() {
            return Err(KeyFileError::ExtraLine { line });
        }
        Ok(Identity { signing, reader })
    }
}

fn parse_reader_seed(line: &str) -> Option<[u8; 64]> {
    let bytes = seal::base32_decode(line.strip_prefix(READER_PREFIX)?)?;
    <[u8; 64]>::try_from(bytes.as_slice()).ok()
}

fn check_len(text: &str) -> Result<&str, KeyTextError> {
    if text.len() > MAX_ARG_BYTES {
        return Err(KeyTextError::TooLong {
            size_bytes: text.len(),
        });
    }
    Ok(text.trim())
}

/// Parses a reader identity (`reader…`).
pub fn parse_reader(text: &str) -> Result<Reader, KeyTextError> {
    Reader::from_text(check_len(text)?).map_err(|_| KeyTextError::BadReader)
}

/// Parses a pre-rotation commitment (`next…`).
pub fn parse_commitment(text: &str) -> Result<[u8; 32], KeyTextError> {
    seal::commitment_from_text(check_len(text)?).ok_or(KeyTextError::BadCommitment)
}

/// The text form of a pre-rotation commitment: `next` + base32 of `blake3(key)`.
pub fn commitment_text(key: &PublicKey) -> String {
    seal::commitment_to_text(&ate_protocol::next_key_commitment(key))
}

/// Parses who to remove from a scope: a reader identity (`reader…`) or just its public key
/// (`pk…`), since removal needs only the ed25519 key.
pub fn parse_reader_or_key(text: &str) -> Result<PublicKey, KeyTextError> {
    let text = check_len(text)?;
    if text.starts_with(Reader::PREFIX) {
        return parse_reader(text).map(|r| r.id);
    }
    text.parse().map_err(|_| KeyTextError::BadReaderOrKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            signing: SecretKey::from_seed([4; 32]),
            reader: Some(ReaderSecret::from_seed([5; 64])),
        }
    }

    #[test]
    fn key_files_round_trip_in_both_formats() {
        let id = identity();
        let back = Identity::from_file_bytes(id.to_file_text().as_bytes()).unwrap();
        assert_eq!(back.signing.public(), id.signing.public());
        assert_eq!(back.reader_public(), id.reader_public());
        // A file from before sealed values: signing line only.
        let old = format!("\n  {}  \n\n", id.signing.to_text());
        let back = Identity::from_file_bytes(old.as_bytes()).unwrap();
        assert!(back.reader.is_none());
    }

    #[test]
    fn garbled_key_files_are_typed_errors_without_content() {
        let good = identity().to_file_text();
        let reader_line = good.lines().nth(1).unwrap();
        let cases: Vec<(Vec<u8>, KeyFileError)> = vec![
            (b"".to_vec(), KeyFileError::Empty),
            (b"\n \n".to_vec(), KeyFileError::Empty),
            (vec![0xff, 0xfe], KeyFileError::NotText),
            (
                vec![b'a'; MAX_KEY_FILE_BYTES + 1],
                KeyFileError::TooLarge {
                    size_bytes: MAX_KEY_FILE_BYTES + 1,
                },
            ),
            (b"hello".to_vec(), KeyFileError::BadSigningKey { line: 1 }),
            (
                format!("{}\n", &good.lines().next().unwrap()[..40]).into_bytes(),
                KeyFileError::BadSigningKey { line: 1 },
            ),
            (
                format!("{}\n\n{}", good.lines().next().unwrap(), &reader_line[..50]).into_bytes(),
                KeyFileError::BadReaderKey { line: 3 },
            ),
            (
                format!("{good}{reader_line}\n").into_bytes(),
                KeyFileError::ExtraLine { line: 3 },
            ),
        ];
        for (bytes, want) in cases {
            let err = Identity::from_file_bytes(&bytes).unwrap_err();
            assert_eq!(err, want);
            let msg = err.to_string();
            assert!(!msg.contains(&reader_line[2..12]), "{msg}");
        }
    }

    #[test]
    fn public_text_forms_parse_and_refuse() {
        let id = identity();
        let reader = id.reader_public().unwrap();
        assert_eq!(parse_reader(&reader.to_text()), Ok(reader.clone()));
        assert_eq!(
            parse_reader(&id.signing.public().to_string()),
            Err(KeyTextError::BadReader)
        );
        let pk = id.signing.public();
        assert_eq!(parse_reader_or_key(&reader.to_text()), Ok(pk));
        assert_eq!(parse_reader_or_key(&pk.to_string()), Ok(pk));
        assert_eq!(
            parse_reader_or_key("readerxyz"),
            Err(KeyTextError::BadReader)
        );
        assert_eq!(
            parse_reader_or_key("bob"),
            Err(KeyTextError::BadReaderOrKey)
        );
        let c = commitment_text(&pk);
        assert_eq!(
            parse_commitment(&c),
            Ok(ate_protocol::next_key_commitment(&pk))
        );
        assert_eq!(
            parse_commitment(&pk.to_string()),
            Err(KeyTextError::BadCommitment)
        );
        let long = "r".repeat(MAX_ARG_BYTES + 1);
        assert!(matches!(
            parse_reader(&long),
            Err(KeyTextError::TooLong { .. })
        ));
    }
}
