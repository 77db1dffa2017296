//! Query cost on a large chain: what one `select` / `list_latest` / `history` costs the node
//! (a read runs on the node's event loop, so its time is time the loop does nothing else).
//!
//! `cargo bench -p ate-protocol --bench queries`. Builds the chain the ingest bench builds
//! (`workload::generate`: 8 writers, 1000 keys, ~100-byte values; 100,000 events, or
//! `ATE_QUERY_BENCH_EVENTS`), ingests it once, then measures queries with `limit = 10`:
//! * `select_all`: every version matches;
//! * `select_meta`: a condition on metadata only (`$seq = 0`: each record's first version);
//! * `select_key_prefix`: `$key ^= "users/5"` (111 of the 1000 keys): read from a range of the
//!   key index, not a scan; `select_key_prefix_scan` is the same condition hidden from that
//!   shortcut (`not not (…)`), the cost without it;
//! * `select_value`: a condition on the value (`n < 0`: nothing matches);
//! * `list_latest`: the latest version of every record, newest clock first;
//! * `history_one_key`: every version of one key (no limit).

// A benchmark harness: a setup failure should abort the run loudly.
#![allow(clippy::expect_used)]

use ate_protocol::PeerId;
use ate_protocol::replica::{Config, Input, Replica};
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{Condition, Order};
use criterion::{Criterion, criterion_group, criterion_main};

fn queries(c: &mut Criterion) {
    let events: usize = std::env::var("ATE_QUERY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    eprintln!("generating and ingesting {events} events…");
    let chain = generate(&Spec {
        events,
        ..Spec::default()
    });
    let mut r = Replica::new(&chain.genesis, Config::default()).expect("generated genesis");
    for chunk in chain.events.chunks(256) {
        let events = chunk.to_vec();
        std::hint::black_box(r.handle(
            0,
            Input::Fetched {
                from: PeerId(1),
                events,
            },
        ));
    }
    assert_eq!(r.len(), events + 1, "every generated event is valid");
    let view = r.view();
    let key = view
        .select(&Condition::True, None, Some(1))
        .first()
        .map(|v| v.key.clone())
        .expect("a version");
    let parse = |t: &str| Condition::parse(t).expect("a valid condition");
    let (all, meta, value) = (Condition::True, parse("$seq = 0"), parse("n < 0"));
    let prefix = parse(r#"$key ^= "users/5""#);
    let prefix_scan = parse(r#"not not ($key ^= "users/5")"#);
    let newest = Order::parse("-$clock").expect("a valid order");
    eprintln!(
        "{} versions; {} match `$seq = 0`; {} under `users/5`; {} versions of `{key}`",
        view.select(&all, None, None).len(),
        view.select(&meta, None, None).len(),
        view.select(&prefix, None, None).len(),
        view.history(&key).len(),
    );

    let mut group = c.benchmark_group(format!("queries_{}k", events / 1000));
    group.sample_size(10);
    group.bench_function("select_all", |b| {
        b.iter(|| std::hint::black_box(view.select(&all, None, Some(10))))
    });
    group.bench_function("select_meta", |b| {
        b.iter(|| std::hint::black_box(view.select(&meta, None, Some(10))))
    });
    group.bench_function("select_key_prefix", |b| {
        b.iter(|| std::hint::black_box(view.select(&prefix, None, Some(10))))
    });
    group.bench_function("select_key_prefix_scan", |b| {
        b.iter(|| std::hint::black_box(view.select(&prefix_scan, None, Some(10))))
    });
    group.bench_function("select_value", |b| {
        b.iter(|| std::hint::black_box(view.select(&value, None, Some(10))))
    });
    group.bench_function("list_latest", |b| {
        b.iter(|| std::hint::black_box(view.list_latest(&all, &all, Some(&newest), Some(10))))
    });
    group.bench_function("history_one_key", |b| {
        b.iter(|| std::hint::black_box(view.history(&key)))
    });
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
