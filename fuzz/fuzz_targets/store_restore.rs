//! Arbitrary bytes as a backup file: restore refuses or restores a log that opens.
#![no_main]

use std::io::Cursor;
use std::sync::Arc;

use ate_store::{Backend, Log, MemBackend, NoProgress, Options, restore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let options = Options { max_payload_bytes: 1 << 16, ..Options::default() };
    if let Ok(chain) = restore(&mut Cursor::new(data), Arc::clone(&backend), &options, &mut NoProgress) {
        let _ = Log::open(backend, chain, &options, &mut |_| {}, &mut NoProgress).expect("restored log opens");
    }
});
