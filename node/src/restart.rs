//! `ate bench restart`: how long a node with a big chain on disk takes to serve reads again.

use std::time::Instant;

use anyhow::{Context, ensure};
use ate_node::journal::Fsync;
use ate_node::{Node, NodeConfig};
use ate_protocol::ChainId;
use ate_protocol::workload::Spec;
use futures::StreamExt;
use serde::Serialize;

use crate::bench::RestartArgs;

#[derive(Debug, Serialize)]
struct Report {
    events: usize,
    tail_events: usize,
    log_bytes: u64,
    snapshot_bytes: u64,
    runs: usize,
    restart_with_snapshot_ms_median: f64,
    restart_with_snapshot_ms_all: Vec<f64>,
    restart_full_replay_ms: Option<f64>,
}

pub(crate) fn run(a: &RestartArgs) -> anyhow::Result<()> {
    ensure!(
        a.events > a.tail && a.runs > 0,
        "--events must exceed --tail, and --runs must be positive"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(a))
}

fn config(data: &std::path::Path) -> NodeConfig {
    NodeConfig {
        data: Some(data.to_path_buf()),
        // The data is written once for the benchmark; what is timed is the restart.
        fsync: Fsync::Never,
        snapshot_every: 0,
        ..NodeConfig::local()
    }
}

/// Starts a node on `data` and returns how long until `chain` answered a read.
async fn restart(data: &std::path::Path, chain: ChainId, want: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let node = Node::start(config(data)).await?;
    let len = node.client().read(chain, |r| r.len()).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        len == want,
        "the restarted node holds {len} events, expected {want}"
    );
    node.stop().await;
    Ok(ms)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        total += if p.is_dir() {
            dir_bytes(&p)
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

async fn bench(a: &RestartArgs) -> anyhow::Result<()> {
    let say = |s: String| {
        if !a.json {
            eprintln!("{s}");
        }
    };
    say(format!("generating {} events…", a.events));
    let (chain, chain_id, events) = crate::bench::generate_decoded(&Spec {
        events: a.events,
        ..Spec::default()
    })?;
    let tmp = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let data = tmp.path().join("data");

    say("writing the chain through a node…".into());
    let node = Node::start(config(&data)).await?;
    let c = node.client();
    c.create_chain(chain.genesis.clone()).await?;
    let head = a.events - a.tail;
    let mut acks = futures::stream::iter(events[..head].chunks(1024))
        .map(|b| c.submit(chain_id, b.to_vec()))
        .buffered(4);
    while let Some(v) = acks.next().await {
        v?;
    }
    c.checkpoint().await?;
    for b in events[head..].chunks(1024) {
        c.submit(chain_id, b.to_vec()).await?;
    }
    node.stop().await;
    let want = a.events + 1;
    let snap = data.join("snapshots").join(format!("{chain_id}.snap"));
    let snapshot_bytes = std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0);
    ensure!(snapshot_bytes > 0, "no snapshot was written");
    let log_bytes = dir_bytes(&data.join("chains"));

    let mut times = Vec::new();
    for run in 0..a.runs {
        let ms = restart(&data, chain_id, want).await?;
        say(format!(
            "restart {}: serving reads after {ms:.0} ms (snapshot + {} log events)",
            run + 1,
            a.tail
        ));
        times.push(ms);
    }
    let full = if a.no_full_replay {
        None
    } else {
        std::fs::rename(&snap, snap.with_extension("kept"))?;
        say("restarting without the snapshot (replays and re-verifies the whole log)…".into());
        let ms = restart(&data, chain_id, want).await?;
        say(format!("full replay: serving reads after {ms:.0} ms"));
        Some(ms)
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let report = Report {
        events: a.events,
        tail_events: a.tail,
        log_bytes,
        snapshot_bytes,
        runs: a.runs,
        restart_with_snapshot_ms_median: sorted[sorted.len() / 2],
        restart_with_snapshot_ms_all: times,
        restart_full_replay_ms: full,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "restart: {:.0} ms median to serve reads ({} events, log {} MiB, snapshot {} MiB){}",
            report.restart_with_snapshot_ms_median,
            report.events,
            log_bytes >> 20,
            snapshot_bytes >> 20,
            full.map(|f| format!("; without the snapshot {:.1} s", f / 1000.0))
                .unwrap_or_default()
        );
    }
    Ok(())
}
