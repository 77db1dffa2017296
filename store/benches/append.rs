//! Append throughput (200-byte payloads, batches of 256) under each sync policy, and replay of
//! 1M frames, on the filesystem backend in a temporary directory.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-store cargo bench -p ate-store --bench append`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ate_protocol::ChainId;
use ate_store::{Backend, FsBackend, Log, NoProgress, Options, SyncPolicy};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PAYLOAD_BYTES: usize = 200;
const BATCH: usize = 256;
const REPLAY_FRAMES: usize = 1_000_000;

fn open_fresh(dir: &tempfile::TempDir, sync: SyncPolicy) -> Log {
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::new(dir.path()));
    let options = Options {
        sync,
        ..Options::default()
    };
    Log::open(
        backend,
        ChainId([7; 32]),
        &options,
        &mut |_| {},
        &mut NoProgress,
    )
    .expect("open")
    .0
}

fn bench_append(c: &mut Criterion) {
    let payloads: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; PAYLOAD_BYTES]).collect();
    let batch: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut group = c.benchmark_group("append_200B_x256");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    let policies = [
        ("always", SyncPolicy::Always),
        ("batch_sync_every_8", SyncPolicy::Batch { max_delay_ms: 10 }),
        ("never", SyncPolicy::Never),
    ];
    for (name, policy) in policies {
        group.bench_function(name, |b| {
            // A fresh directory per sample keeps the disk footprint to one sample's writes.
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut log = open_fresh(&dir, policy);
                let start = Instant::now();
                for i in 0..iters {
                    let _ = black_box(log.append(i, &batch).expect("append"));
                    if matches!(policy, SyncPolicy::Batch { .. }) && i % 8 == 7 {
                        log.sync().expect("sync");
                    }
                }
                log.sync().expect("sync");
                start.elapsed()
            });
        });
    }
    group.finish();
}

fn bench_replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open_fresh(&dir, SyncPolicy::Never);
        let payloads: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; PAYLOAD_BYTES]).collect();
        let batch: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        for i in 0..REPLAY_FRAMES / BATCH {
            let _ = log.append(i as u64, &batch).expect("append");
        }
        log.sync().expect("sync");
    }
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements((REPLAY_FRAMES / BATCH * BATCH) as u64));
    group.sample_size(10);
    group.bench_function("open_1M_frames_200B", |b| {
        b.iter(|| {
            let mut frames = 0u64;
            let backend: Arc<dyn Backend> = Arc::new(FsBackend::new(dir.path()));
            let (_, rec) = Log::open(
                backend,
                ChainId([7; 32]),
                &Options::default(),
                &mut |p| frames += p.len() as u64,
                &mut NoProgress,
            )
            .expect("open");
            assert_eq!(rec.frames, (REPLAY_FRAMES / BATCH * BATCH) as u64);
            black_box(frames)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_replay);
criterion_main!(benches);
