//! `ate bench replicate`: two real nodes over libp2p on loopback.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::ensure;
use ate_protocol::workload::Spec;
use futures::StreamExt;
use serde::Serialize;

use crate::bench::ReplicateArgs;
use crate::mesh;

#[derive(Debug, Serialize)]
struct Report {
    events: usize,
    runs: usize,
    events_per_sec_median: f64,
    events_per_sec_all: Vec<f64>,
    event_bytes: u64,
    bytes_sent_a: u64,
    bytes_sent_b: u64,
    wire_bytes_per_event: f64,
}

pub(crate) fn run(a: &ReplicateArgs) -> anyhow::Result<()> {
    ensure!(
        a.events > 0 && a.runs > 0 && a.batch > 0,
        "--events, --runs and --batch must be positive"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(a))
}

async fn bench(a: &ReplicateArgs) -> anyhow::Result<()> {
    if !a.json {
        eprintln!("generating {} events…", a.events);
    }
    let generated_at = Instant::now();
    let (chain, chain_id, events) = crate::bench::generate_decoded(&Spec {
        events: a.events,
        ..Spec::default()
    })?;
    let event_bytes: u64 = chain.events.iter().map(|e| e.len() as u64).sum();
    if !a.json {
        eprintln!("generated and decoded in {:.2?}", generated_at.elapsed());
    }
    let mut rates = Vec::new();
    let mut last = (0, 0);
    for run in 0..a.runs {
        let nodes = mesh::start(2).await?;
        let (ca, cb) = (nodes[0].client(), nodes[1].client());
        ca.create_chain(chain.genesis.clone()).await?;
        cb.follow(chain_id).await?;
        mesh::wait_events(&cb, chain_id, 1, Duration::from_secs(10)).await?;
        // Let the gossip mesh form (one heartbeat) before timing.
        mesh::wait_for(Duration::from_secs(10), || async {
            let s = ca.status().await.ok()?;
            (s.chains.first()?.peers > 0).then_some(())
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let start = Instant::now();
        // Writers do not wait for one batch before sending the next: keep a few in flight,
        // as concurrent API clients would (the node checks them in parallel, applies in order).
        let mut acks = futures::stream::iter(events.chunks(a.batch))
            .map(|batch| ca.submit(chain_id, batch.to_vec()))
            .buffered(a.in_flight.max(1));
        while let Some(verdicts) = acks.next().await {
            verdicts?;
        }
        let submitted = start.elapsed();
        let mut last_report = Instant::now();
        mesh::wait_for(Duration::from_secs(600), || {
            let cb = cb.clone();
            let show = !a.json && last_report.elapsed() > Duration::from_secs(5);
            if show {
                last_report = Instant::now();
            }
            async move {
                let (len, pending, stats) = cb.read(chain_id, |r| (r.len(), r.pending_len(), r.stats().clone())).await.ok()?;
                if show {
                    let m = cb.metrics();
                    eprintln!(
                        "  node B: {len} events, {pending} pending, {} sync failures, {} sync bytes in; {stats:?}",
                        m.sync_failures.load(Ordering::Relaxed),
                        m.sync_in_bytes.load(Ordering::Relaxed)
                    );
                }
                (len > a.events).then_some(())
            }
        })
        .await?;
        let secs = start.elapsed().as_secs_f64();
        if !a.json {
            let mb = cb.metrics();
            let per = mb.gossip_in_msgs.load(Ordering::Relaxed) as f64
                / mb.gossip_batches.load(Ordering::Relaxed).max(1) as f64;
            let ma = ca.metrics();
            eprintln!(
                "node A accepted everything after {submitted:?}; node B after {secs:.2} s ({per:.1} gossip messages per validation batch; A: {} gossip retries after full queues; B: {} gossip messages, {} sync bytes in)",
                ma.gossip_backpressure.load(Ordering::Relaxed),
                mb.gossip_in_msgs.load(Ordering::Relaxed),
                mb.sync_in_bytes.load(Ordering::Relaxed)
            );
        }
        let rate = a.events as f64 / secs;
        let m = |c: &ate_node::Client| {
            let m = c.metrics();
            m.gossip_out_bytes.load(Ordering::Relaxed) + m.sync_out_bytes.load(Ordering::Relaxed)
        };
        last = (m(&ca), m(&cb));
        let (da, db) = (
            ca.read(chain_id, |r| r.view().digest()).await?,
            cb.read(chain_id, |r| r.view().digest()).await?,
        );
        ensure!(da == db, "the two nodes' views differ after replication");
        if !a.json {
            eprintln!("run {}: {:.0} events/s ({:.2} s)", run + 1, rate, secs);
        }
        rates.push(rate);
        for n in nodes {
            n.shutdown();
        }
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let report = Report {
        events: a.events,
        runs: a.runs,
        events_per_sec_median: sorted[sorted.len() / 2],
        events_per_sec_all: rates,
        event_bytes,
        bytes_sent_a: last.0,
        bytes_sent_b: last.1,
        wire_bytes_per_event: (last.0 + last.1) as f64 / a.events as f64,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "replicate: {:.0} events/s median of {} runs ({} events); node A sent {} bytes, node B {} ({:.0} B/event; events are {:.0} B)",
            report.events_per_sec_median,
            report.runs,
            report.events,
            report.bytes_sent_a,
            report.bytes_sent_b,
            report.wire_bytes_per_event,
            event_bytes as f64 / a.events as f64
        );
    }
    Ok(())
}
