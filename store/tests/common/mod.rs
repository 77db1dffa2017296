//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::expect_used)]

use std::sync::Arc;

use ate_protocol::ChainId;
use ate_store::{Backend, Log, NoProgress, OpenError, Options, Recovery, SyncPolicy};

/// A test chain id.
pub fn chain(n: u8) -> ChainId {
    ChainId([n; 32])
}

/// A deterministic payload of 1..=300 bytes for frame `i`.
pub fn payload(i: u64) -> Vec<u8> {
    let len = 1 + (i.wrapping_mul(2_654_435_761) % 300) as usize;
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

/// Small segments so tests rotate often.
pub fn opts(sync: SyncPolicy) -> Options {
    Options {
        segment_size_bytes: 1024,
        sync,
        ..Options::default()
    }
}

/// Opens a log, collecting the replayed payloads.
pub fn open(
    backend: &Arc<dyn Backend>,
    chain: ChainId,
    options: &Options,
) -> Result<(Log, Recovery, Vec<Vec<u8>>), OpenError> {
    let mut seen = Vec::new();
    let (log, rec) = Log::open(
        Arc::clone(backend),
        chain,
        options,
        &mut |p| seen.push(p.to_vec()),
        &mut NoProgress,
    )?;
    Ok((log, rec, seen))
}

/// Appends payloads `range` one batch at a time.
pub fn append_range(log: &mut Log, range: std::ops::Range<u64>, batch: usize) -> Vec<Vec<u8>> {
    let all: Vec<Vec<u8>> = range.map(payload).collect();
    for chunk in all.chunks(batch) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let _ = log.append(0, &refs).expect("append");
    }
    all
}

/// The byte offset of frame `k` in a single-segment log of `payloads`.
pub fn frame_offset(payloads: &[Vec<u8>], k: usize) -> u64 {
    ate_store::SEGMENT_HEADER_LEN
        + payloads[..k]
            .iter()
            .map(|p| ate_store::FRAME_HEADER_LEN + p.len() as u64)
            .sum::<u64>()
}
