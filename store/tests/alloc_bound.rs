//! Memory stays bounded whatever the bytes on disk say: absurd length prefixes allocate nothing
//! big, and replaying a large log holds one read window, not the log.
//!
//! One test per binary: the allocation cap is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::System;
use std::sync::Arc;

use ate_store::{Backend, FsBackend, Log, NoProgress, Options, SyncPolicy, dump, segment_name};
use cap::Cap;
use common::chain;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Runs `f` with at most `extra` more bytes allocatable; an allocation past it aborts the test.
fn with_headroom<T>(extra: usize, f: impl FnOnce() -> T) -> T {
    ALLOC.set_limit(ALLOC.allocated() + extra).unwrap();
    let out = f();
    ALLOC.set_limit(usize::MAX).unwrap();
    out
}

#[test]
fn replay_and_garbage_stay_within_a_few_mib() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::new(dir.path()));
    let options = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    // ~40 MiB of frames in one segment.
    let (mut log, _) = Log::open(
        Arc::clone(&backend),
        chain(1),
        &options,
        &mut |_| {},
        &mut NoProgress,
    )
    .unwrap();
    let payload = [0x5Au8; 200];
    let batch: Vec<&[u8]> = vec![&payload; 1000];
    for _ in 0..200 {
        let _ = log.append(0, &batch).unwrap();
    }
    drop(log);

    let mut frames = 0u64;
    let rec = with_headroom(8 << 20, || {
        let (_, rec) = Log::open(
            Arc::clone(&backend),
            chain(1),
            &options,
            &mut |_| frames += 1,
            &mut NoProgress,
        )
        .unwrap();
        rec
    });
    assert_eq!((frames, rec.frames), (200_000, 200_000));

    // A second chain whose only segment is a header followed by 4 MiB of 0xFF: every length
    // prefix says 4 GiB.
    let mut bytes = std::fs::read(dir.path().join(chain(1).to_string()).join(segment_name(0)))
        .unwrap()[..64]
        .to_vec();
    bytes[16..48].copy_from_slice(&[2; 32]);
    let crc = crc_of_header(&bytes);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    bytes.resize(64 + (4 << 20), 0xFF);
    let chain_dir = dir.path().join(chain(2).to_string());
    std::fs::create_dir_all(&chain_dir).unwrap();
    std::fs::write(chain_dir.join(segment_name(0)), &bytes).unwrap();
    drop(bytes);
    let (dumped, rec) = with_headroom(8 << 20, || {
        let max = Options::default().max_payload_bytes;
        let dumped = dump(&*backend, &chain(2), max).unwrap().count();
        let (_, rec) = Log::open(
            Arc::clone(&backend),
            chain(2),
            &Options::default(),
            &mut |_| {},
            &mut NoProgress,
        )
        .unwrap();
        (dumped, rec)
    });
    assert_eq!(dumped, 1, "one unreadable-frame report");
    let tail = rec.torn_tail.expect("the garbage is a tail");
    assert_eq!((tail.offset, tail.bytes_cut), (64, 4 << 20));
}

fn crc_of_header(h: &[u8]) -> u32 {
    crc32c::crc32c(&h[..60])
}
