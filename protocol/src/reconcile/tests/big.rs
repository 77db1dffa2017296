//! The 1M-item figures. Release only (`cargo test --release -p ate-protocol --lib
//! reconcile::tests::big -- --nocapture`): building two 1M-item indexes takes seconds there.

use super::*;

const N: u64 = 1_000_000;
const WRITERS: u64 = 4;

/// Keys in arrival order: increasing, but 1% arrive up to 64 places late.
fn arrivals(n: u64, seed: u64) -> Vec<ReconKey> {
    let mut keys: Vec<ReconKey> = (0..n).map(|i| key(i, WRITERS)).collect();
    let mut rng = Rng(seed);
    for i in 0..keys.len() {
        if rng.below(100) == 0 {
            let j = (i + 1 + rng.below(64) as usize).min(keys.len() - 1);
            keys.swap(i, j);
        }
    }
    keys
}

fn base() -> ReconIndex {
    static BASE: std::sync::OnceLock<ReconIndex> = std::sync::OnceLock::new();
    BASE.get_or_init(|| index_of(arrivals(N, 1))).clone()
}

fn report(name: &str, a: &ReconIndex, b: &ReconIndex, cfg: &ReconConfig) -> Run {
    let run = reconcile(a, b, cfg, 100_000);
    assert_exact(a, b, &run);
    println!(
        "{name:<36} {:>3} msgs {:>3} RTs {:>7} B (A→B {:>6}, B→A {:>6}) lacks: A {:>4} B {:>7}",
        run.messages,
        run.round_trips(),
        run.bytes(),
        run.bytes_a_to_b,
        run.bytes_b_to_a,
        run.a_lacks.len(),
        run.b_lacks.len(),
    );
    run
}

#[test]
#[cfg_attr(debug_assertions, ignore = "1M items: run with --release")]
fn million_items_figures() {
    let cfg = ReconConfig::default();
    let a = base();
    println!(
        "config: split {} threshold {} max_msg_bytes {}",
        cfg.split_factor, cfg.list_threshold, cfg.max_msg_bytes
    );

    let run = report("in sync, 1M", &a, &a.clone(), &cfg);
    assert_eq!(run.round_trips(), 1);
    assert!(run.bytes() <= 200, "{} bytes", run.bytes());

    let mut rng = Rng(5);
    let mut b = a.clone();
    let gone = key(rng.below(N), WRITERS);
    b.remove(gone.clock, gone.id);
    let run = report("1 diff in 1M (random position)", &a, &b, &cfg);
    assert!(run.round_trips() <= 3, "{run:?}");
    assert!(run.bytes() <= 3_000, "{} bytes", run.bytes());

    let mut b = a.clone();
    let newest = key(N - 1, WRITERS);
    b.remove(newest.clock, newest.id);
    let run = report("1 diff in 1M (newest)", &a, &b, &cfg);
    assert!(run.round_trips() <= 3, "{run:?}");
    assert!(run.bytes() <= 3_000, "{} bytes", run.bytes());

    let mut a_tail = a.clone();
    for i in N..N + 1_000 {
        let k = key(i, WRITERS);
        a_tail.insert(k.clock, k.id);
    }
    report("tail diff: A has 1000 newer", &a_tail, &a, &cfg);
    report("tail diff: B has 1000 newer", &a, &a_tail, &cfg);

    let mut a_sc = a.clone();
    let mut b_sc = a.clone();
    for n in 0..1_000 {
        let k = key(rng.below(N), WRITERS);
        if n % 2 == 0 {
            a_sc.remove(k.clock, k.id);
        } else {
            b_sc.remove(k.clock, k.id);
        }
    }
    report("scattered diff: 1000 (500 each way)", &a_sc, &b_sc, &cfg);
    let mut b_sc = a.clone();
    for _ in 0..1_000 {
        let k = key(rng.below(N), WRITERS);
        b_sc.remove(k.clock, k.id);
    }
    report("scattered diff: B lacks 1000", &a, &b_sc, &cfg);
    for max_msg_bytes in [64 << 10, 1 << 20] {
        let big = ReconConfig {
            max_msg_bytes,
            ..cfg.clone()
        };
        report(
            &format!("  same, max_msg_bytes {max_msg_bytes}"),
            &a,
            &b_sc,
            &big,
        );
    }

    let run = report("late joiner: 1M vs empty", &a, &ReconIndex::new(), &cfg);
    assert_eq!(run.round_trips(), 1);
    let run = report(
        "late joiner initiates: empty vs 1M",
        &ReconIndex::new(),
        &a,
        &cfg,
    );
    assert_eq!(run.messages, 1);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "1M items: run with --release")]
fn million_items_memory() {
    let keys = arrivals(N, 1);
    let ix = index_of(keys.iter().copied());
    ix.check();
    let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
    println!(
        "1M keys, increasing with 1% up to 64 late: {per_item:.1} B/item ({} B, {ix:?})",
        ix.heap_bytes(),
    );
    assert!(per_item <= 64.0, "{per_item} B/item");
    // Uniformly random arrival order, the worst case for node fill.
    let mut shuffled = keys;
    let mut rng = Rng(3);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let ix = index_of(shuffled.iter().copied());
    let per_item = ix.heap_bytes() as f64 / ix.len() as f64;
    println!("1M keys, random order: {per_item:.1} B/item");
    assert!(per_item <= 64.0, "{per_item} B/item");
}
