//! Ingest throughput: decode + batch signature check + trust check + DAG + view apply.
//!
//! `cargo bench -p ate-protocol --bench ingest`. The same measurement is available to users as
//! `ate bench ingest --events N`.

// A benchmark harness: a setup failure should abort the run loudly.
#![allow(clippy::expect_used)]

use ate_protocol::PeerId;
use ate_protocol::replica::{Config, Input, Replica};
use ate_protocol::workload::{Spec, generate};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn ingest(c: &mut Criterion) {
    let spec = Spec {
        events: 20_000,
        ..Spec::default()
    };
    let chain = generate(&spec);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(chain.events.len() as u64));
    group.sample_size(10);
    for batch in [1usize, 256] {
        group.bench_function(format!("20k_events_batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    Replica::new(&chain.genesis, Config::default())
                        .expect("generated genesis is valid")
                },
                |mut r| {
                    for chunk in chain.events.chunks(batch) {
                        let out = r.handle(
                            0,
                            Input::Fetched {
                                from: PeerId(1),
                                events: chunk.to_vec(),
                            },
                        );
                        std::hint::black_box(out);
                    }
                    assert_eq!(r.len(), chain.events.len() + 1);
                    r
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
