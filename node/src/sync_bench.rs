//! `ate bench sync`: two real nodes over libp2p on loopback whose copies of a chain differ by
//! the last `--missing` events; measures reconciliation round trips, bytes each way and the
//! time until the second node holds everything.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ate_node::{Client, Node, NodeConfig};
use ate_protocol::workload::Spec;
use ate_protocol::{ChainId, Event};
use clap::Args;
use futures::StreamExt;
use libp2p::Multiaddr;
use serde::Serialize;

use crate::mesh::wait_for;

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Events in the chain (node A holds all of them).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Node B lacks the last this many (0 = the two are in sync).
    #[arg(long, default_value_t = 1)]
    missing: usize,
    /// JSON value size in bytes (the generator's smallest values give envelopes of ~280 B,
    /// the closest it gets to 200 B: headers and signatures take most of it).
    #[arg(long, default_value_t = 20)]
    value_bytes: usize,
    /// Timed runs (fresh nodes each); the median time is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    events: usize,
    missing: usize,
    runs: usize,
    mean_event_bytes: f64,
    missing_event_bytes: u64,
    /// Reconciliation messages both ways, and round trips (two messages each).
    recon_messages: u64,
    round_trips: u64,
    recon_bytes_a_to_b: u64,
    recon_bytes_b_to_a: u64,
    /// All `/ate/sync/1` payload bytes (reconciliation, event batches, requests), each way.
    sync_bytes_a_to_b: u64,
    sync_bytes_b_to_a: u64,
    gossip_bytes: u64,
    /// (sync + gossip bytes both ways) / bytes of the missing events.
    wire_over_event_bytes: f64,
    seconds_median: f64,
    seconds_all: Vec<f64>,
}

pub(crate) fn run(a: &SyncArgs) -> anyhow::Result<()> {
    ensure!(
        a.events > 0 && a.runs > 0 && a.missing <= a.events,
        "--events and --runs must be positive and --missing at most --events"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(a))
}

struct Run {
    secs: f64,
    recon_messages: u64,
    recon: (u64, u64),
    sync: (u64, u64),
    gossip: u64,
}

async fn bench(a: &SyncArgs) -> anyhow::Result<()> {
    let say = |s: String| {
        if !a.json {
            eprintln!("{s}");
        }
    };
    say(format!("generating {} events…", a.events));
    let (chain, chain_id, events) = crate::bench::generate_decoded(&Spec {
        events: a.events,
        value_bytes: a.value_bytes,
        ..Spec::default()
    })?;
    let total_bytes: u64 = chain.events.iter().map(|e| e.len() as u64).sum();
    let shared = a.events - a.missing;
    let missing_bytes: u64 = chain.events[shared..].iter().map(|e| e.len() as u64).sum();
    let mut runs = Vec::new();
    for run in 0..a.runs {
        let (na, nb) = (start_node().await?, start_node().await?);
        let (ca, cb) = (na.client(), nb.client());
        let loaded = Instant::now();
        ca.create_chain(chain.genesis.clone()).await?;
        cb.create_chain(chain.genesis.clone()).await?;
        load(&ca, chain_id, &events).await?;
        load(&cb, chain_id, &events[..shared]).await?;
        say(format!(
            "run {}: node A holds {} events, node B {} (loaded in {:.1?})",
            run + 1,
            a.events,
            shared,
            loaded.elapsed()
        ));
        let r = measure(a, &ca, &cb, chain_id).await?;
        say(format!(
            "run {}: caught up in {:.2} s; {} reconciliation messages, {} + {} B; sync bytes A→B {} B→A {}",
            run + 1,
            r.secs,
            r.recon_messages,
            r.recon.0,
            r.recon.1,
            r.sync.0,
            r.sync.1
        ));
        runs.push(r);
        na.shutdown();
        nb.shutdown();
    }
    let mut secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    let seconds_all = secs.clone();
    secs.sort_by(f64::total_cmp);
    let last = runs.last().context("at least one run")?;
    let wire = last.sync.0 + last.sync.1 + last.gossip;
    let report = Report {
        events: a.events,
        missing: a.missing,
        runs: a.runs,
        mean_event_bytes: total_bytes as f64 / a.events as f64,
        missing_event_bytes: missing_bytes,
        recon_messages: last.recon_messages,
        round_trips: last.recon_messages.div_ceil(2),
        recon_bytes_a_to_b: last.recon.0,
        recon_bytes_b_to_a: last.recon.1,
        sync_bytes_a_to_b: last.sync.0,
        sync_bytes_b_to_a: last.sync.1,
        gossip_bytes: last.gossip,
        wire_over_event_bytes: wire as f64 / missing_bytes.max(1) as f64,
        seconds_median: secs[secs.len() / 2],
        seconds_all,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "sync: {} of {} events missing ({:.0} B mean envelope): {} round trips, reconciliation {} B A→B + {} B B→A; sync payload A→B {} B, B→A {} B ({:.3}× the missing event bytes); caught up in {:.2} s (median of {})",
            report.missing,
            report.events,
            report.mean_event_bytes,
            report.round_trips,
            report.recon_bytes_a_to_b,
            report.recon_bytes_b_to_a,
            report.sync_bytes_a_to_b,
            report.sync_bytes_b_to_a,
            report.wire_over_event_bytes,
            report.seconds_median,
            report.runs
        );
    }
    Ok(())
}

async fn start_node() -> anyhow::Result<Node> {
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        mdns: false,
        ..NodeConfig::default()
    };
    Node::start(config).await
}

/// Submits events in batches, a few in flight (the node checks them in parallel).
async fn load(c: &Client, chain: ChainId, events: &[Event]) -> anyhow::Result<()> {
    let mut acks = futures::stream::iter(events.chunks(1024))
        .map(|batch| c.submit(chain, batch.to_vec()))
        .buffered(4);
    while let Some(verdicts) = acks.next().await {
        verdicts?;
    }
    Ok(())
}

/// Connects B to A and waits until B holds every event.
async fn measure(a: &SyncArgs, ca: &Client, cb: &Client, chain: ChainId) -> anyhow::Result<Run> {
    let addrs: Vec<Multiaddr> = wait_for(Duration::from_secs(10), || async {
        let s = ca.status().await.ok()?;
        let addrs: Vec<Multiaddr> = s.listen.iter().filter_map(|a| a.parse().ok()).collect();
        (!addrs.is_empty()).then_some(addrs)
    })
    .await
    .context("node A did not start listening")?;
    let target = a.events + 1;
    let bar = (!a.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(a.missing as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let base = target - a.missing;
    let start = Instant::now();
    cb.dial(addrs).await;
    wait_for(Duration::from_secs(600), || async {
        let len = cb.read(chain, |r| r.len()).await.ok()?;
        if let Some(bar) = &bar {
            bar.set_position(len.saturating_sub(base) as u64);
        }
        (len >= target).then_some(())
    })
    .await
    .context("node B did not catch up within 10 minutes")?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Count once the session is over at both ends (B may hold everything before it starts:
    // with nothing missing, or when the last event arrives before the session's last reply).
    wait_for(Duration::from_secs(60), || async {
        let (ma, mb) = (ca.metrics(), cb.metrics());
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let started = get(&ma.recon.sessions_started) + get(&mb.recon.sessions_started);
        let ended = [ma, mb]
            .iter()
            .map(|m| get(&m.recon.sessions_done) + get(&m.recon.sessions_failed))
            .sum::<u64>();
        (started > 0 && ended >= 2 * started).then_some(())
    })
    .await
    .context("the reconciliation session did not end")?;
    let (da, db) = (
        ca.read(chain, |r| r.view().digest()).await?,
        cb.read(chain, |r| r.view().digest()).await?,
    );
    ensure!(da == db, "the two nodes' views differ after the catch-up");
    let (ma, mb) = (ca.metrics(), cb.metrics());
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Ok(Run {
        secs,
        recon_messages: get(&ma.recon.msgs_sent) + get(&mb.recon.msgs_sent),
        recon: (get(&ma.recon.bytes_sent), get(&mb.recon.bytes_sent)),
        sync: (get(&ma.sync_out_bytes), get(&mb.sync_out_bytes)),
        gossip: get(&ma.gossip_out_bytes) + get(&mb.gossip_out_bytes),
    })
}
