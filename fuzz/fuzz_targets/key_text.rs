//! Key files and the public key texts a user pastes (`reader…`, `next…`, `pk…`): whatever
//! the bytes, parsing is a typed error or a value whose printed form parses back to the same
//! value — never a panic.
//!
//! The parsers live in the node crate (`node/src/keys/text.rs`), which is included here by
//! path: that file is pure (no IO, only `ate_protocol` and `thiserror`), and depending on
//! `ate-node` would pull libp2p and tokio into every fuzz build.
#![no_main]

#[path = "../../node/src/keys/text.rs"]
mod text;

use ate_protocol::next_key_commitment;
use ate_protocol::seal::commitment_to_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = text::Identity::from_file_bytes(data) {
        let again = text::Identity::from_file_bytes(id.to_file_text().as_bytes())
            .expect("a key file written by to_file_text parses");
        assert_eq!(again.signing.public(), id.signing.public());
        assert_eq!(again.reader_public(), id.reader_public());
        if let Some(r) = id.reader_public() {
            assert_eq!(text::parse_reader(&r.to_text()), Ok(r));
        }
        let pk = id.signing.public();
        assert_eq!(
            text::parse_commitment(&text::commitment_text(&pk)),
            Ok(next_key_commitment(&pk))
        );
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text::parse_reader(s) {
        assert_eq!(text::parse_reader(&r.to_text()), Ok(r.clone()));
        assert_eq!(text::parse_reader_or_key(s), Ok(r.id));
    }
    if let Ok(c) = text::parse_commitment(s) {
        assert_eq!(text::parse_commitment(&commitment_to_text(&c)), Ok(c));
    }
    if let Ok(pk) = text::parse_reader_or_key(s) {
        let printed = pk.to_string();
        assert_eq!(text::parse_reader_or_key(&printed), Ok(pk));
    }
});
