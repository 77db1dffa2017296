//! Crash safety of `ate node run --data`: a writer streams events through the HTTP API while
//! the node is killed with SIGKILL at a random moment, again and again. After every restart:
//! the log opens, every event the API acknowledged is there, and the node's view digest equals
//! a replay of exactly the events it holds (a prefix of what was written, with no gaps).
//!
//! `ATE_CRASH_ITERS` sets the number of kills (default 200, as in CI); `ATE_CRASH_SEED` the
//! seed of the kill timings and batch sizes (printed, so a failure can be replayed).

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ate_protocol::replica::Input;
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{Config, Replica};
use common::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let iters: usize = std::env::var("ATE_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("ATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c0ffee);
    println!("crash test: {iters} kills, ATE_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);

    let chain = generate(&Spec {
        events: 40_000,
        ..Spec::default()
    });
    let mut reference = Replica::new(&chain.genesis, Config::default()).unwrap();
    let chain_id = reference.chain();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = "127.0.0.1:14251";
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        api,
        "--no-mdns",
        // Snapshots every few hundred events, so kills also land while one is written and
        // restarts load snapshot + log tail.
        "--snapshot-every",
        "300",
    ];
    let start = |i: usize| node(None, &args, &dir.path().join(format!("node-{i}.log")));

    // Create the chain once.
    let mut proc = start(0);
    wait_for("the API", Duration::from_secs(30), || {
        api_up(api).then_some(())
    });
    post_genesis(api, &chain.genesis);

    // `held` events (genesis included) are in the node; `acked` were acknowledged.
    let mut held = 1usize;
    let mut acked = 1usize;
    let mut kills = 0usize;
    let mut total_written = 0usize;
    let started = Instant::now();
    for i in 1..=iters {
        // Write from `held` on, in random batches, until the kill lands.
        let killed = Arc::new(AtomicBool::new(false));
        let delay = Duration::from_millis(rng.below(120));
        let pid = proc.0.id();
        let killer = {
            let killed = killed.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // SIGKILL: no chance to flush anything.
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                killed.store(true, Ordering::SeqCst);
            })
        };
        let mut next = held;
        while !killed.load(Ordering::SeqCst) && next < chain.events.len() + 1 {
            let n = 1 + rng.below(16) as usize;
            let end = (next + n).min(chain.events.len() + 1);
            match post_events(api, &chain_id, &chain.events[next - 1..end - 1]) {
                Some(v) => {
                    assert!(
                        accepted_all(&v, end - next),
                        "the node refused part of a valid batch: {v}"
                    );
                    acked = acked.max(end);
                    total_written += end - next;
                    next = end;
                }
                // The node died mid-request (or is dying): nothing more is acknowledged.
                _ => break,
            }
        }
        killer.join().unwrap();
        let _ = proc.0.wait();
        kills += 1;

        // Restart on the same data directory; the log must open and hold every ack.
        proc = start(i);
        let (events, digest) = wait_for("the restarted node", Duration::from_secs(60), || {
            chain_status(api)
        });
        assert!(
            events >= acked,
            "kill {i}: the node holds {events} events but {acked} were acknowledged"
        );
        assert!(
            events <= chain.events.len() + 1,
            "kill {i}: more events than were ever written"
        );
        // The reference replays exactly the prefix the node holds.
        if events > held {
            let more = chain.events[held - 1..events - 1].to_vec();
            reference.handle(0, Input::Replay(more));
        }
        assert!(events >= held, "kill {i}: the node lost events it had held");
        assert_eq!(reference.len(), events, "kill {i}: reference out of step");
        assert_eq!(
            reference.view().digest_hex(),
            digest,
            "kill {i}: the node's view is not a replay of the {events} events it holds"
        );
        held = events;
        if held > chain.events.len() {
            break;
        }
    }
    println!(
        "crash test: {kills} kills in {:.1?}; {total_written} events acknowledged in all, {held} held at the end",
        started.elapsed()
    );
    assert!(kills >= iters.min(10), "the test made too few kills");
    assert!(
        held > 1,
        "no write was ever acknowledged: the test proved nothing"
    );
}
