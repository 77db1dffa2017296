//! Arbitrary bytes as a redo-log segment: open, dump and repair never panic, and a log that
//! opened accepts an append and reopens clean.
#![no_main]

use std::sync::Arc;

use ate_protocol::ChainId;
use ate_store::{Backend, Log, MemBackend, NoProgress, Options, dump};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chain = ChainId([1; 32]);
    let dir = chain.to_string();
    let mem = MemBackend::new();
    let backend: Arc<dyn Backend> = Arc::new(mem.clone());
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let options = Options { repair: mode & 2 == 2, max_payload_bytes: 1 << 16, ..Options::default() };
    let mut bytes = Vec::new();
    if mode & 1 == 1 {
        // Start from a valid header so the frame parser is reached.
        let _ = Log::open(Arc::clone(&backend), chain, &options, &mut |_| {}, &mut NoProgress);
        bytes = mem.file(&dir, "00000000.log").unwrap_or_default();
    }
    bytes.extend_from_slice(rest);
    mem.put_file(&dir, "00000000.log", bytes);
    if let Ok(frames) = dump(&mem, &chain, options.max_payload_bytes) {
        frames.for_each(drop);
    }
    if let Ok((mut log, _)) = Log::open(Arc::clone(&backend), chain, &options, &mut |_| {}, &mut NoProgress) {
        let _ = log.append(0, &[b"x"]).expect("append after a successful open");
        drop(log);
        let (_, rec) = Log::open(backend, chain, &options, &mut |_| {}, &mut NoProgress).expect("reopen");
        assert!(rec.torn_tail.is_none() && rec.repaired.is_none());
    }
});
