//! Snapshot and restore of a 1M-event replica (issue #4: a restart serves reads in ≤ 2 s).
//!
//! `cargo bench -p ate-protocol --bench snapshot`. Builds the chain the ingest bench builds
//! (`workload::generate`, 1M events, 8 writers, 1000 keys, ~100-byte values), ingests it once
//! (about a minute: signing and verifying 1M events), then measures:
//! * `snapshot`: `Replica::snapshot` of the whole replica;
//! * `restore`: `Replica::restore` from those bytes (checksum, decode, index rebuild);
//! * `restore_replay_10k_tail`: restore a snapshot taken 10,000 events earlier, then replay
//!   those 10,000 as the node would replay its redo log's tail.
//!
//! It also prints, once, the snapshot size, the replica heap after ingest and after restore
//! (a counting global allocator), and what compaction frees on this chain. Set
//! `ATE_SNAPSHOT_BENCH_EVENTS` to run at another size.

// A benchmark harness: a setup failure should abort the run loudly.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use ate_protocol::PeerId;
use ate_protocol::replica::{Config, Input, Replica};
use ate_protocol::verify::Ed25519Batch;
use ate_protocol::workload::{Spec, generate};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

const TAIL: usize = 10_000;

fn ingest(genesis: &[u8], events: &[Vec<u8>]) -> Replica {
    let mut r = Replica::new(genesis, Config::default()).expect("generated genesis is valid");
    for chunk in events.chunks(256) {
        let out = r.handle(
            0,
            Input::Fetched {
                from: PeerId(1),
                events: chunk.to_vec(),
            },
        );
        std::hint::black_box(out);
    }
    assert_eq!(r.len(), events.len() + 1, "every generated event is valid");
    r
}

fn restore(genesis: &[u8], snap: &[u8]) -> Replica {
    Replica::restore(genesis, snap, Config::default(), Arc::new(Ed25519Batch))
        .expect("a fresh snapshot restores")
}

fn per_event(heap: usize, r: &Replica) -> f64 {
    heap.saturating_sub(r.body_bytes() as usize) as f64 / r.len() as f64
}

fn snapshot(c: &mut Criterion) {
    let events: usize = std::env::var("ATE_SNAPSHOT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    eprintln!("generating and ingesting {events} events…");
    let chain = generate(&Spec {
        events,
        ..Spec::default()
    });
    let split = events.saturating_sub(TAIL);
    let early = ingest(&chain.genesis, &chain.events[..split]);
    let early_snap = early.snapshot();
    drop(early);
    let before = ALLOCATOR.allocated();
    let mut r = ingest(&chain.genesis, &chain.events);
    let heap_ingest = ALLOCATOR.allocated() - before;
    let snap = r.snapshot();
    let before = ALLOCATOR.allocated();
    let restored = restore(&chain.genesis, &snap);
    let heap_restore = ALLOCATOR.allocated() - before;
    assert_eq!(restored.view().digest(), r.view().digest());
    eprintln!(
        "{} events: snapshot {:.1} MB ({:.0} B/event, of which body bytes {:.1} MB); replica heap beyond body bytes {:.0} B/event after ingest, {:.0} B/event after restore",
        r.len(),
        snap.len() as f64 / 1e6,
        snap.len() as f64 / r.len() as f64,
        r.body_bytes() as f64 / 1e6,
        per_event(heap_ingest, &r),
        per_event(heap_restore, &restored),
    );
    drop(restored);

    let mut group = c.benchmark_group(format!("snapshot_{}k", events / 1000));
    group.sample_size(10);
    group.bench_function("snapshot", |b| {
        b.iter(|| std::hint::black_box(r.snapshot()))
    });
    group.bench_function("restore", |b| {
        b.iter_batched(
            || (),
            |()| restore(&chain.genesis, &snap),
            BatchSize::PerIteration,
        )
    });
    let tail = &chain.events[split..];
    group.bench_function(format!("restore_replay_{}k_tail", TAIL / 1000), |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut x = restore(&chain.genesis, &early_snap);
                let out = x.handle(0, Input::Replay(tail.to_vec()));
                std::hint::black_box(out);
                assert_eq!(x.len(), events + 1);
                x
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let before_body = r.body_bytes();
    let c = r.compact();
    let compacted_snap = r.snapshot();
    let before = ALLOCATOR.allocated();
    let compacted = restore(&chain.genesis, &compacted_snap);
    let heap_compacted = ALLOCATOR.allocated() - before;
    assert_eq!(compacted.view().digest(), r.view().digest());
    let log_before: usize = chain.events.iter().map(Vec::len).sum();
    let log_after: usize = r.envelopes_in_order().map(|e| e.len()).sum();
    eprintln!(
        "compaction: {} bodies dropped, {:.1} of {:.1} MB body bytes freed; snapshot {:.1} MB; log of envelopes {:.1} MB -> {:.1} MB; compacted replica heap {:.1} MB ({:.0} B/event beyond body bytes)",
        c.pruned.len(),
        c.bytes_freed as f64 / 1e6,
        before_body as f64 / 1e6,
        compacted_snap.len() as f64 / 1e6,
        log_before as f64 / 1e6,
        log_after as f64 / 1e6,
        heap_compacted as f64 / 1e6,
        per_event(heap_compacted, &compacted),
    );
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
