//! `ate bench …`: measurements users can repeat on their own machines.

use std::time::Instant;

use anyhow::{Context, ensure};
use ate_protocol::PeerId;
use ate_protocol::replica::{Config, Input, Replica};
use ate_protocol::workload::{Spec, generate};
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Ingest throughput of one replica on one core: decode, batch signature check, chain of
    /// trust, DAG and view, for a generated chain with several writers and grants.
    #[command(after_help = "Example:\n  ate bench ingest --events 200000 --runs 5 --json")]
    Ingest(IngestArgs),
    /// Replication throughput: two nodes over real libp2p on loopback; events/s from the first
    /// write on node A to the last event visible in node B's view, and bytes sent.
    #[command(after_help = "Example:\n  ate bench replicate --events 100000 --runs 3 --json")]
    Replicate(ReplicateArgs),
    /// Restart time of a node with a big chain on disk: from start until the chain serves a
    /// read, loading its snapshot plus the log after it (and, once, replaying the whole log
    /// without a snapshot, for comparison).
    #[command(after_help = "Example:\n  ate bench restart --events 1000000 --runs 3 --json")]
    Restart(RestartArgs),
    /// Catch-up by range-based set reconciliation: two nodes over libp2p on loopback, node B
    /// lacking the last `--missing` of `--events`; prints round trips, bytes each way and the
    /// time until B holds everything (a progress bar on a terminal).
    #[command(
        after_help = "Examples:\n  ate bench sync --events 1000000 --missing 1      # one difference\n  ate bench sync --events 1000000 --missing 1000000 --json   # a late joiner"
    )]
    Sync(crate::sync_bench::SyncArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    /// Events in the chain.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: usize,
    /// Events written after the snapshot (replayed from the log on every restart).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) tail: usize,
    /// Timed restarts with the snapshot; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Skip the (slow) restart without a snapshot.
    #[arg(long)]
    pub(crate) no_full_replay: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReplicateArgs {
    /// Events to replicate.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) events: usize,
    /// Events per submission to node A.
    #[arg(long, default_value_t = 256)]
    pub(crate) batch: usize,
    /// Submissions to node A in flight at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) in_flight: usize,
    /// Timed runs (fresh nodes each); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// Events in the generated chain.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per ingest batch (signatures are batch-verified per batch).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Writers granted by the root.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Distinct record keys.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// JSON value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct IngestReport {
    events: usize,
    batch: usize,
    runs: usize,
    events_per_sec_median: f64,
    events_per_sec_all: Vec<f64>,
    body_bytes: u64,
    replica_heap_bytes: usize,
    overhead_bytes_per_event: f64,
    view_digest: String,
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(&a),
        BenchCommand::Replicate(a) => crate::replicate::run(&a),
        BenchCommand::Restart(a) => crate::restart::run(&a),
        BenchCommand::Sync(a) => crate::sync_bench::run(&a),
    }
}

fn ingest(a: &IngestArgs) -> anyhow::Result<()> {
    ensure!(
        a.events > 0 && a.runs > 0 && a.batch > 0,
        "--events, --runs and --batch must be positive"
    );
    let spec = Spec {
        events: a.events,
        writers: a.writers,
        keys: a.keys,
        value_bytes: a.value_bytes,
        seed: 1,
        root_acks: false,
    };
    if !a.json {
        eprintln!(
            "generating {} events ({} writers, {} keys)…",
            a.events, a.writers, a.keys
        );
    }
    let chain = generate(&spec);
    let mut rates = Vec::new();
    let mut last = None;
    for run in 0..a.runs {
        // Heap in use before the replica exists; after the run every batch has been consumed,
        // so the difference is what the replica holds.
        let heap_before = crate::ALLOCATOR.allocated();
        let mut r = Replica::new(&chain.genesis, Config::default()).context("generated genesis")?;
        let batches: Vec<Vec<Vec<u8>>> = chain.events.chunks(a.batch).map(|c| c.to_vec()).collect();
        let start = Instant::now();
        for events in batches {
            let out = r.handle(
                0,
                Input::Fetched {
                    from: PeerId(1),
                    events,
                },
            );
            std::hint::black_box(out);
        }
        let secs = start.elapsed().as_secs_f64();
        let heap = crate::ALLOCATOR.allocated().saturating_sub(heap_before);
        ensure!(
            r.len() == a.events + 1,
            "only {} of {} events were accepted",
            r.len() - 1,
            a.events
        );
        let rate = a.events as f64 / secs;
        if !a.json {
            eprintln!("run {}: {:.0} events/s ({:.2} s)", run + 1, rate, secs);
        }
        rates.push(rate);
        last = Some((r, heap));
    }
    let (r, heap) = last.context("at least one run")?;
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let report = IngestReport {
        events: a.events,
        batch: a.batch,
        runs: a.runs,
        events_per_sec_median: sorted[sorted.len() / 2],
        events_per_sec_all: rates,
        body_bytes: r.body_bytes(),
        replica_heap_bytes: heap,
        overhead_bytes_per_event: heap.saturating_sub(r.body_bytes() as usize) as f64
            / r.len() as f64,
        view_digest: r.view().digest_hex(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "ingest: {:.0} events/s median of {} runs ({} events, batches of {}); replica heap {:.0} B/event beyond {} body bytes (measured by a counting allocator)",
            report.events_per_sec_median,
            report.runs,
            report.events,
            report.batch,
            report.overhead_bytes_per_event,
            report.body_bytes
        );
    }
    Ok(())
}

/// A generated chain (see `ate_protocol::workload`) with its id and its events decoded, as the
/// node benchmarks submit them through a node's client.
pub(crate) fn generate_decoded(
    spec: &Spec,
) -> anyhow::Result<(
    ate_protocol::workload::Generated,
    ate_protocol::ChainId,
    Vec<ate_protocol::Event>,
)> {
    use ate_protocol::{ChainId, Event, Params};
    let chain = generate(spec);
    let g = Event::decode(None, &chain.genesis, &Params::default())?;
    let chain_id = ChainId(g.id.0);
    let events = chain
        .events
        .iter()
        .map(|b| Event::decode(Some(&chain_id), b, &Params::default()))
        .collect::<Result<_, _>>()?;
    Ok((chain, chain_id, events))
}
