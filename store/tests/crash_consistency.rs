//! Crashes at random points: every acknowledged append survives, in order, and nothing else
//! appears except a prefix of the frames that were in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ate_store::{Backend, FaultBackend, Options, SyncPolicy};
use common::{chain, open};
use proptest::prelude::*;

/// (acknowledged, attempted but unacknowledged, recovered) payloads.
type Outcome = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// How the in-flight batch meets the crash.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The crash comes between appends.
    Between,
    /// The in-flight batch's write stops after this many bytes.
    ShortWrite(usize),
    /// The in-flight batch's fsync fails.
    SyncFails,
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Between),
        (0usize..2000).prop_map(Fault::ShortWrite),
        Just(Fault::SyncFails),
    ]
}

fn batches_strategy() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let payload = (1usize..200, any::<u8>()).prop_map(|(len, b)| vec![b; len]);
    prop::collection::vec(prop::collection::vec(payload, 1..6), 1..16)
}

/// Runs `batches[..crash_at]` acknowledged, then the in-flight batch under `fault`, then a crash
/// keeping `keep` torn bytes. Returns (acknowledged, attempted-but-unacknowledged, recovered).
fn run(
    batches: &[Vec<Vec<u8>>],
    crash_at: usize,
    fault: Fault,
    keep: usize,
    policy: SyncPolicy,
) -> Outcome {
    let f = FaultBackend::new();
    let backend: Arc<dyn Backend> = Arc::new(f.clone());
    let options = Options {
        segment_size_bytes: 600,
        sync: policy,
        ..Options::default()
    };
    let (mut log, _, _) = open(&backend, chain(1), &options).unwrap();
    let mut written: Vec<Vec<u8>> = Vec::new();
    let crash_at = crash_at.min(batches.len());
    for (i, batch) in batches[..crash_at].iter().enumerate() {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let _ = log.append(i as u64, &refs).unwrap();
        written.extend(batch.iter().cloned());
        if i % 2 == 1 {
            let _ = log.sync().unwrap();
        }
    }
    if let Some(batch) = batches.get(crash_at) {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        match fault {
            Fault::Between => {}
            Fault::ShortWrite(n) => {
                f.short_next_write(n);
                assert!(log.append(99, &refs).is_err());
                written.extend(batch.iter().cloned());
            }
            Fault::SyncFails => {
                f.fail_next_syncs(1);
                let appended = log.append(99, &refs);
                written.extend(batch.iter().cloned());
                if appended.is_ok() {
                    assert!(log.sync().is_err());
                }
            }
        }
    }
    let acked = log.durable_frames() as usize;
    drop(log);
    f.crash_tearing(keep);
    let (_, _, recovered) = open(&backend, chain(1), &options).unwrap();
    let unacked = written.split_off(acked);
    (written, unacked, recovered)
}

fn check(acked: &[Vec<u8>], unacked: &[Vec<u8>], recovered: &[Vec<u8>]) {
    assert!(recovered.len() >= acked.len(), "lost acknowledged frames");
    assert_eq!(
        &recovered[..acked.len()],
        acked,
        "acknowledged frames changed"
    );
    let extra = &recovered[acked.len()..];
    assert!(extra.len() <= unacked.len(), "frames appeared from nowhere");
    assert_eq!(
        extra,
        &unacked[..extra.len()],
        "extra frames are not a prefix"
    );
}

fn cases() -> u32 {
    std::env::var("ATE_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    // 300 cases by default; more by hand with `ATE_CRASH_CASES=20000`.
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn acknowledged_appends_survive_a_crash_under_always(
        batches in batches_strategy(),
        crash_at in 0usize..16,
        fault in fault_strategy(),
        keep in 0usize..3000,
    ) {
        let (acked, unacked, recovered) = run(&batches, crash_at, fault, keep, SyncPolicy::Always);
        // Under Always, every append that returned Ok is acknowledged.
        let ok_batches: usize = batches[..crash_at.min(batches.len())].iter().map(Vec::len).sum();
        prop_assert_eq!(acked.len(), ok_batches);
        check(&acked, &unacked, &recovered);
    }

    #[test]
    fn durable_frames_survive_a_crash_under_batch(
        batches in batches_strategy(),
        crash_at in 0usize..16,
        fault in fault_strategy(),
        keep in 0usize..3000,
    ) {
        let policy = SyncPolicy::Batch { max_delay_ms: 10 };
        let (acked, unacked, recovered) = run(&batches, crash_at, fault, keep, policy);
        check(&acked, &unacked, &recovered);
    }
}
