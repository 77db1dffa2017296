//! Costs of sealed values (DESIGN §6): sealing and opening one value, making and opening one
//! read key share (ML-KEM-768 encapsulation / decapsulation), and replica ingest of a chain of
//! sealed puts next to the same chain with plain values (same keys, authors, DAG shape and
//! value sizes). A replica never opens sealed values while ingesting, so the difference is the
//! body decoding and the epoch rule.
//!
//! `cargo bench -p ate-protocol --bench seal`.

// A benchmark harness: a setup failure should abort the run loudly.
#![allow(clippy::expect_used)]

use ate_protocol::replica::{Config, Input, Replica};
use ate_protocol::seal::{self, EpochKey, Reader, ReaderSecret, SealWith};
use ate_protocol::{Event, Params, PeerId, PutValue, SecretKey, Template, Writer};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

const EVENTS: usize = 10_000;
const KEYS: usize = 500;

/// A ~100-byte JSON value, as in the ingest bench.
fn value(n: usize) -> serde_json::Value {
    json!({"n": n, "pad": "x".repeat(70)})
}

/// Genesis and `EVENTS` envelopes: a root shares epoch 0 of "users/" with itself, then puts
/// (sealed or plain) to KEYS records.
fn chain(sealed: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let root = SecretKey::from_seed([1; 32]);
    let g = ate_protocol::genesis("bench", &root, &[], Params::default(), 1, 0);
    let genesis = g.encode();
    let mut r = Replica::new(&genesis, Config::default()).expect("genesis");
    let w = Writer::new(root);
    let secret = ReaderSecret::from_seed([2; 64]);
    let me = Reader {
        id: w.public(),
        kem: secret.public(),
    };
    let mut events = Vec::with_capacity(EVENTS);
    let mut apply = |r: &mut Replica, ev: Event| {
        events.push(ev.encode());
        let _ = r.handle(0, Input::local(ev));
    };
    let (shares, key) = seal::rekey(&r.chain(), "users/", 0, &[me], &[3; 32]).expect("rekey");
    for s in shares {
        let ev = w.share(&r, s, 0);
        apply(&mut r, ev);
    }
    for n in 1..EVENTS {
        let k = format!("users/{}", n % KEYS);
        let t = Template::for_writer(&r, &w.public(), Some(&k));
        let ev = if sealed {
            let with = SealWith {
                scope: "users/",
                epoch: 0,
                key: &key,
            };
            let mut nonce = [0u8; 24];
            nonce[..8].copy_from_slice(&(n as u64).to_le_bytes());
            w.put_sealed_from(&t, &k, &value(n), with, nonce, 0)
                .expect("seal")
        } else {
            w.put_from(&t, &k, PutValue::Json(value(n).to_string()), 0)
        };
        apply(&mut r, ev);
    }
    (genesis, events)
}

fn primitives(c: &mut Criterion) {
    let root = SecretKey::from_seed([1; 32]);
    let g = ate_protocol::genesis("bench", &root, &[], Params::default(), 1, 0);
    let r = Replica::new(&g.encode(), Config::default()).expect("genesis");
    let w = Writer::new(root);
    let key = EpochKey::from_bytes([4; 32]);
    let with = SealWith {
        scope: "users/",
        epoch: 0,
        key: &key,
    };
    let t = Template::for_writer(&r, &w.public(), Some("users/1"));
    let v = value(1);
    let mut group = c.benchmark_group("seal");
    group.bench_function("seal_100B_value_and_sign", |b| {
        b.iter(|| w.put_sealed_from(&t, "users/1", &v, with, [5; 24], 0))
    });
    group.bench_function("plain_100B_value_and_sign", |b| {
        b.iter(|| w.put_from(&t, "users/1", PutValue::Json(v.to_string()), 0))
    });
    let ev = w
        .put_sealed_from(&t, "users/1", &v, with, [5; 24], 0)
        .expect("seal");
    let chain = r.chain();
    group.bench_function("open_100B_value", |b| {
        b.iter(|| seal::open(&chain, &ev, &key))
    });
    let secret = ReaderSecret::from_seed([6; 64]);
    let reader = Reader {
        id: w.public(),
        kem: secret.public(),
    };
    group.bench_function("make_share_mlkem768_encaps", |b| {
        b.iter(|| seal::make_share(&chain, "users/", 0, &key, &reader, &[7; 32]))
    });
    let share = seal::make_share(&chain, "users/", 0, &key, &reader, &[7; 32]).expect("share");
    group.bench_function("open_share_mlkem768_decaps", |b| {
        b.iter(|| seal::open_share(&chain, &share, &secret))
    });
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal_ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for sealed in [false, true] {
        let (genesis, events) = chain(sealed);
        let name = if sealed { "sealed" } else { "plain" };
        group.bench_function(format!("10k_{name}_puts_batch_256"), |b| {
            b.iter_batched(
                || Replica::new(&genesis, Config::default()).expect("genesis"),
                |mut r| {
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
                    assert_eq!(r.len(), EVENTS + 1, "every event accepted");
                    r
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, primitives, ingest);
criterion_main!(benches);
