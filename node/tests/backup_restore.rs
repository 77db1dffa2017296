//! `ate backup` from a running node while a writer keeps writing, `ate restore` into another
//! data directory, a node started there reaches the same digest as a replay of what the backup
//! holds; `ate log dump` shows every frame with its verdict.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ate_protocol::replica::Input;
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{Config, Replica};
use common::*;

#[test]
fn backup_while_writing_restores_to_the_same_digest_and_dump_shows_every_frame() {
    let chain = generate(&Spec {
        events: 6_000,
        // The root's last write lets compaction reclaim what every admin has seen.
        root_acks: true,
        ..Spec::default()
    });
    let chain_id = Replica::new(&chain.genesis, Config::default())
        .unwrap()
        .chain();
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("one"), dir.path().join("two"));
    let (api1, api2) = ("127.0.0.1:14261", "127.0.0.1:14262");
    let start = |data: &std::path::Path, api: &str, log: &str| {
        node(
            None,
            &[
                "--data",
                data.to_str().unwrap(),
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--api",
                api,
                "--no-mdns",
            ],
            &dir.path().join(log),
        )
    };
    let _n1 = start(&d1, api1, "one.log");
    wait_for("node one", Duration::from_secs(30), || {
        api_up(api1).then_some(())
    });
    post_genesis(api1, &chain.genesis);
    // Half the events first, the rest while the backup runs.
    for batch in chain.events[..3000].chunks(100) {
        let v = post_events(api1, &chain_id, batch).unwrap();
        assert!(accepted_all(&v, batch.len()));
    }
    let written = Arc::new(AtomicUsize::new(3000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, stop) = (written.clone(), stop.clone());
        let events = chain.events.clone();
        std::thread::spawn(move || {
            for batch in events[3000..].chunks(20) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let v = post_events(api1, &chain_id, batch).unwrap();
                assert!(accepted_all(&v, batch.len()));
                written.fetch_add(batch.len(), Ordering::SeqCst);
            }
        })
    };
    let before = written.load(Ordering::SeqCst);
    let file = dir.path().join("chain.atebak");
    let out = ok(&ate(
        None,
        &[
            "backup",
            &chain_id.to_string(),
            file.to_str().unwrap(),
            "--api",
            api1,
        ],
    ));
    assert!(out.contains("backed up chain"), "{out}");
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let out = ok(&ate(
        None,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data",
            d2.to_str().unwrap(),
        ],
    ));
    assert!(out.contains(&chain_id.to_string()), "{out}");
    // Restoring over an existing log is refused, not merged.
    let again = ate(
        None,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data",
            d2.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());

    let _n2 = start(&d2, api2, "two.log");
    let (events, digest) = wait_for("node two", Duration::from_secs(30), || chain_status(api2));
    // Everything acknowledged before the backup began is in it, and it is a clean prefix.
    assert!(
        events > before,
        "backup holds {events} events, {before} were acknowledged before it began"
    );
    let mut reference = Replica::new(&chain.genesis, Config::default()).unwrap();
    reference.handle(0, Input::Replay(chain.events[..events - 1].to_vec()));
    assert_eq!(reference.view().digest_hex(), digest);

    // The dump of the restored log: one line per frame, every one valid.
    let dump = ok(&ate(
        None,
        &["log", "dump", "--data", d2.to_str().unwrap(), "--json"],
    ));
    let rows: Vec<serde_json::Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), events);
    assert!(
        rows.iter().all(|r| r["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("valid"))),
        "{:?}",
        rows.iter()
            .find(|r| !r["verdict"].as_str().unwrap_or("").starts_with("valid"))
    );
    assert_eq!(rows[1]["id"].as_str().unwrap().len(), 2 + 52, "{}", rows[1]);
    let text = ok(&ate(
        None,
        &[
            "log",
            "dump",
            "--data",
            d2.to_str().unwrap(),
            "--limit",
            "3",
        ],
    ));
    assert!(
        text.contains("genesis") && text.contains("3 frames"),
        "{text}"
    );

    // Compaction through the CLI on the running node one, then its dump: every frame still
    // verifies, the dropped bodies show as such. The rest of the chain goes in first: its last
    // event is the root's, and compaction drops only what every admin has seen.
    let written = written.load(Ordering::SeqCst);
    for batch in chain.events[written..].chunks(100) {
        let v = post_events(api1, &chain_id, batch).unwrap();
        assert!(accepted_all(&v, batch.len()));
    }
    let report = ok(&ate(
        None,
        &["compact", &chain_id.to_string(), "--api", api1, "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(report["pruned"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["log_bytes_after"].as_u64() < report["log_bytes_before"].as_u64(),
        "{report}"
    );
    let dump = ok(&ate(
        None,
        &["log", "dump", "--data", d1.to_str().unwrap(), "--json"],
    ));
    let rows: Vec<serde_json::Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().all(|r| {
        r["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("valid"))
    }));
    let pruned = rows.iter().filter(|r| r["kind"] == "body pruned").count() as u64;
    assert_eq!(pruned, report["compacted_total"].as_u64().unwrap());
}
