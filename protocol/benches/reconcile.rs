//! Reconciliation costs: index inserts, range summaries, whole sessions on 1M-item sets.
//!
//! `cargo bench -p ate-protocol --bench reconcile`. Message counts and bytes of the same
//! scenarios are asserted and printed by
//! `cargo test --release -p ate-protocol --lib reconcile::tests::big -- --nocapture`.

// A benchmark harness: a setup failure should abort the run loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use ate_protocol::EventId;
use ate_protocol::reconcile::{Bound, ReconConfig, ReconIndex, ReconKey, ReconMsg, Session};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const WRITERS: u64 = 4;

fn key(i: u64) -> ReconKey {
    ReconKey::new(
        i / WRITERS,
        EventId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
    )
}

/// Keys in arrival order: increasing, but every 100th arrives up to 64 places late.
fn arrivals(n: u64) -> Vec<ReconKey> {
    let mut keys: Vec<ReconKey> = (0..n).map(key).collect();
    let mut x = 1u64;
    for i in 0..keys.len() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        if (x >> 33).is_multiple_of(100) {
            let j = (i + 1 + ((x >> 40) % 64) as usize).min(keys.len() - 1);
            keys.swap(i, j);
        }
    }
    keys
}

fn build(keys: &[ReconKey]) -> ReconIndex {
    let mut ix = ReconIndex::new();
    for k in keys {
        ix.insert(k.clock, k.id);
    }
    ix
}

/// Runs one session to its end; returns the messages exchanged.
fn reconcile(a: &ReconIndex, b: &ReconIndex, cfg: &ReconConfig) -> usize {
    let (mut sa, open) = Session::initiate(a, cfg, [1; 16], 0);
    let (mut sb, step) = Session::respond(b, cfg, open, 0).expect("valid open");
    let mut messages = 1;
    let mut next: Option<ReconMsg> = step.reply;
    let mut to_a = true;
    while let Some(msg) = next.take() {
        messages += 1;
        let step = if to_a {
            sa.handle(a, msg, 0)
        } else {
            sb.handle(b, msg, 0)
        }
        .expect("honest peers agree");
        black_box((&step.we_lack, &step.peer_lacks));
        next = step.reply;
        to_a = !to_a;
    }
    messages
}

fn inserts(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_insert");
    group.sample_size(10);
    let keys = arrivals(1_000_000);
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("build_1M_mostly_increasing", |b| {
        b.iter(|| black_box(build(&keys)))
    });
    // One insert (and the remove that undoes it) into sets of growing size: O(log n).
    for n in [10_000u64, 100_000, 1_000_000] {
        let mut ix = build(&keys[..n as usize]);
        let extra: Vec<ReconKey> = (0..1024)
            .map(|i| key(n / 2 * WRITERS + 10_000_000 + i))
            .collect();
        group.throughput(Throughput::Elements(extra.len() as u64));
        group.bench_function(format!("insert_remove_1024_into_{n}"), |b| {
            b.iter(|| {
                for k in &extra {
                    let k = ReconKey::new(k.clock % (n / WRITERS), k.id);
                    assert!(ix.insert(k.clock, k.id));
                    assert!(ix.remove(k.clock, k.id));
                }
            })
        });
    }
    group.finish();
}

fn summaries(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_summary");
    let ix = build(&arrivals(1_000_000));
    let bounds: Vec<(Bound, Bound)> = (0..1024u64)
        .map(|i| {
            let (x, y) = (key(i * 977 % 1_000_000), key(i * 7_919 % 1_000_000));
            (Bound::At(x.min(y)), Bound::At(x.max(y)))
        })
        .collect();
    group.throughput(Throughput::Elements(bounds.len() as u64));
    group.bench_function("1024_random_ranges_of_1M", |b| {
        b.iter(|| {
            for (lo, hi) in &bounds {
                black_box(ix.summary(lo, hi));
            }
        })
    });
    group.finish();
}

fn sessions(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_session");
    group.sample_size(10);
    let cfg = ReconConfig::default();
    let a = build(&arrivals(1_000_000));
    group.bench_function("1M_in_sync", |b| b.iter(|| reconcile(&a, &a, &cfg)));
    let mut one = a.clone();
    let k = key(123_457);
    one.remove(k.clock, k.id);
    group.bench_function("1M_one_difference", |b| {
        b.iter(|| reconcile(&a, &one, &cfg))
    });
    let mut scattered = a.clone();
    for i in 0..1_000u64 {
        let k = key(i * 999_983 % 1_000_000);
        scattered.remove(k.clock, k.id);
    }
    group.bench_function("1M_scattered_1000", |b| {
        b.iter(|| reconcile(&a, &scattered, &cfg))
    });
    let empty = ReconIndex::new();
    group.bench_function("1M_vs_empty", |b| {
        b.iter_batched(
            || (),
            |()| reconcile(&a, &empty, &cfg),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, inserts, summaries, sessions);
criterion_main!(benches);
