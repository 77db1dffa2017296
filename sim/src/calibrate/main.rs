//! `ate-calibrate`: run a scenario's workload on real `ate node run` processes on loopback,
//! measure how long each write takes to become visible on every other node, and set the
//! figures beside the simulator's for the same scenario (DESIGN §9: the mesh model is
//! calibrated against real nodes).
//!
//! Visibility is observed, not polled: the harness holds one server-sent-events stream
//! (`/v1/chains/<id>/changes`) per node and stamps each change the moment its chunk is read.
//! A write's latency on node `j` is `t_j - t_origin`, both stamps taken by this one process
//! and clock, `t_origin` being the change on the node the write was posted to. The nodes find
//! each other by `--join` against a dnsmasq the harness starts, so every node dials every
//! other (a full mesh of connections, as on a LAN where everyone resolves the same name).
//!
//! The cluster runs at two sizes and, at full size, with a smaller gossip mesh; [`fit`] turns
//! their CPU accounting into the simulator's per-message and per-event costs, the first
//! receiver's latency into the per-hop latency and the median receiver's into the share of
//! the CPU spent after visibility, then compares the tails. `cluster` owns the processes, `workload` the writes, `http` the few requests.

mod cluster;
mod fit;
mod http;
mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ate_protocol::EventId;
use ate_sim::report::Dist;
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "ate-calibrate",
    about = "Run a scenario's workload on real `ate` processes on loopback and compare with the simulator.",
    after_help = "Example:\n  cargo build --release -p ate-node -p ate-sim\n  target/release/ate-calibrate scenarios/lan-20.toml --ate target/release/ate --runs 3\n  target/release/ate-calibrate scenarios/lan-20.toml --from sim/calibration/lan-20-quiet-a.json\n\nTimings move with the machine's other load: run it on a quiet machine (as root, `chrt -r 10`\nin front keeps other jobs from distorting it).\n\nNeeds dnsmasq (apt-get install dnsmasq-base). Uses 127.0.0.49 (DNS) and 127.0.0.50+ (nodes),\nports 4600 (p2p), 4653 (DNS) and 4680 (API) by default. Every process it starts is killed\nwhen it exits. Exit codes: 0 sim within --tolerance of real, 1 outside it, 2 error."
)]
pub(crate) struct Cli {
    /// The scenario whose workload (nodes, writers, events, rate, keys, value size) is played.
    scenario: PathBuf,
    /// The `ate` binary.
    #[arg(long, default_value = "target/release/ate")]
    ate: PathBuf,
    /// Fresh clusters to measure per size; the report quotes the median of each figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Size of the second, smaller cluster whose CPU per put, with the full one's, gives the
    /// CPU a node spends per put it receives (default: half the scenario's nodes).
    #[arg(long)]
    small: Option<usize>,
    /// Gossip mesh degree of a third cluster (full size), whose CPU per put against the full
    /// cluster's (mesh degree 6) gives the CPU a node spends per message it receives; 0 skips
    /// it and keeps the scenario's `cpu_per_msg_us`.
    #[arg(long, default_value_t = 3)]
    mesh: usize,
    /// First node address (node i gets this + i; DNS listens on this - 1).
    #[arg(long, default_value = "127.0.0.50")]
    base_ip: std::net::Ipv4Addr,
    /// libp2p TCP port.
    #[arg(long, default_value_t = 4600)]
    p2p_port: u16,
    /// HTTP API port.
    #[arg(long, default_value_t = 4680)]
    api_port: u16,
    /// dnsmasq port.
    #[arg(long, default_value_t = 4653)]
    dns_port: u16,
    /// Seconds to let gossip meshes settle before writing.
    #[arg(long, default_value_t = 3)]
    settle_s: u64,
    /// Seed of keys and record keys (and of the simulator run).
    #[arg(long)]
    seed: Option<u64>,
    /// Largest accepted relative difference between sim and real delivery p99 and convergence
    /// p50 and p99.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) tolerance: f64,
    /// Skip the real runs: derive and compare from a `real.json` an earlier run wrote.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Output directory (logs, real.json, compare.json).
    #[arg(long, default_value = "sim-out/calibrate")]
    pub(crate) out: PathBuf,
}

/// One real run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RealRun {
    /// Write → visible on another node, over all (write, other node) pairs, ms.
    pub(crate) delivery_ms: Dist,
    /// Write → visible on the last other node, per write, ms.
    pub(crate) event_convergence_ms: Dist,
    /// Write → visible on the first other node, per write, ms.
    pub(crate) first_ms: Dist,
    /// Median time until the k-th other node sees a write (k = 1, 2, …), ms
    /// (`ate_sim::report::rank_profile`; empty in files from before it was kept).
    #[serde(default)]
    pub(crate) ranks_ms: Vec<f64>,
    /// (write, node) pairs never seen before the deadline.
    missing: usize,
    /// /proc/loadavg before the run (the machine is shared; timings depend on it).
    loadavg: String,
    /// CPU the node processes used while the puts went out, per put (all nodes together), ms.
    pub(crate) nodes_cpu_ms_per_put: f64,
    /// CPU the node processes used per second while idle (before the puts), ms.
    nodes_idle_cpu_ms_per_s: f64,
    /// Share of the machine's CPU time used by everything else (other work, this harness)
    /// during the puts: the nodes had the rest.
    others_cpu_share: f64,
    /// Wall time of the put phase (from the first put to every node seeing the last), s.
    put_phase_s: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<bool> {
    let sc = ate_sim::Scenario::load(&cli.scenario)?;
    let seed = cli.seed.unwrap_or(sc.seed);
    std::fs::create_dir_all(&cli.out)?;
    let small_n = cli.small.unwrap_or(sc.nodes / 2).max(3);
    let mut small = sc.clone();
    small.nodes = small_n;
    small
        .validate()
        .map_err(|m| anyhow::anyhow!("with {small_n} nodes: {m}"))?;
    // The same cluster with another gossip mesh degree: same nodes, fewer copies per message.
    let mut meshed = sc.clone();
    if cli.mesh > 0 {
        meshed.gossip.d = cli.mesh;
        meshed.gossip.d_low = cli.mesh.saturating_sub(1).max(1);
        meshed.gossip.d_high = 2 * cli.mesh;
        meshed
            .validate()
            .map_err(|m| anyhow::anyhow!("with gossip mesh {}: {m}", cli.mesh))?;
    }
    type Runs = Vec<RealRun>;
    let (big_runs, small_runs, mesh_runs): (Runs, Runs, Runs) = match &cli.from {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            // Files from before the mesh cluster hold two sets.
            serde_json::from_str::<(Runs, Runs, Runs)>(&text)
                .or_else(|_| {
                    serde_json::from_str::<(Runs, Runs)>(&text).map(|(b, s)| (b, s, Vec::new()))
                })
                .with_context(|| {
                    format!("{} is not a real.json of ate-calibrate", path.display())
                })?
        }
        None => {
            let big_runs = measure_runs(cli, &sc, seed, "big", &[])?;
            let small_runs = measure_runs(cli, &small, seed, "small", &[])?;
            let mesh_runs = if cli.mesh > 0 {
                let arg = ["--gossip-mesh".to_string(), cli.mesh.to_string()];
                measure_runs(cli, &meshed, seed, "mesh", &arg)?
            } else {
                Vec::new()
            };
            write_json(
                &cli.out.join("real.json"),
                &(&big_runs, &small_runs, &mesh_runs),
            )?;
            (big_runs, small_runs, mesh_runs)
        }
    };
    let mesh = (!mesh_runs.is_empty()).then_some((&meshed, mesh_runs.as_slice()));
    let costs = fit::derive(&sc, &small, seed, &big_runs, &small_runs, mesh);
    fit::compare(cli, &sc, seed, &big_runs, &costs)
}

/// `cli.runs` fresh clusters of `sc.nodes` nodes.
fn measure_runs(
    cli: &Cli,
    sc: &ate_sim::Scenario,
    seed: u64,
    tag: &str,
    node_args: &[String],
) -> Result<Vec<RealRun>> {
    let mut runs = Vec::new();
    for r in 0..cli.runs {
        let layout = cluster::Layout {
            ate: cli.ate.clone(),
            base_ip: cli.base_ip,
            p2p_port: cli.p2p_port,
            api_port: cli.api_port,
            dns_port: cli.dns_port,
            dir: cli.out.join(format!("{tag}-run{r}")),
            node_args: node_args.to_vec(),
        };
        let one = measure(cli, sc, layout, seed + r as u64)?;
        println!(
            "real, {} nodes, run {r}: delivery p50 {:.3} p99 {:.3} ms; convergence p50 {:.3} \
             p99 {:.3} ms; missing {}; nodes' CPU {:.2} ms per put ({:.0} ms/s idle); others \
             used {:.0}% of the CPU; load {}",
            sc.nodes,
            one.delivery_ms.p50,
            one.delivery_ms.p99,
            one.event_convergence_ms.p50,
            one.event_convergence_ms.p99,
            one.missing,
            one.nodes_cpu_ms_per_put,
            one.nodes_idle_cpu_ms_per_s,
            one.others_cpu_share * 100.0,
            one.loadavg
        );
        runs.push(one);
    }
    Ok(runs)
}

pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Per node: (time, event id) of every added version it streamed.
type Seen = Vec<(Instant, EventId)>;

fn measure(
    cli: &Cli,
    sc: &ate_sim::Scenario,
    layout: cluster::Layout,
    seed: u64,
) -> Result<RealRun> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let n = sc.nodes;
    let dir = layout.dir.clone();
    let c = cluster::start(layout, n)?;
    let mut rng = workload::Mix(seed);
    let (chain, writers) = workload::setup(&c, sc.workload.writers, &mut rng)?;
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let opened = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for i in 0..n {
        let (api, counts, opened) = (c.layout.api(i), counts.clone(), opened.clone());
        let path = format!("/v1/chains/{chain}/changes");
        readers.push(std::thread::spawn(move || {
            let mut seen: Seen = Vec::new();
            let _ = http::follow_sse(
                api,
                &path,
                |t, v| {
                    let id = v["id"].as_str().and_then(|s| s.parse().ok());
                    if let (Some(id), Some("added")) = (id, v["kind"].as_str()) {
                        seen.push((t, id));
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                },
                || {
                    opened.fetch_add(1, Ordering::Relaxed);
                },
            );
            seen
        }));
    }
    cluster::wait_for("every change stream", Duration::from_secs(10), || {
        (opened.load(Ordering::Relaxed) == n).then_some(())
    })?;
    let (idle0, t_idle) = (c.nodes_cpu_ms(), Instant::now());
    std::thread::sleep(Duration::from_secs(cli.settle_s));
    let idle_rate = (c.nodes_cpu_ms() - idle0) / t_idle.elapsed().as_secs_f64();
    let (cpu0, mach0, t0) = (c.nodes_cpu_ms(), cluster::machine_cpu_ms(), Instant::now());
    let puts = workload::puts(&c, &chain, &writers, &sc.workload, &mut rng)?;
    let want = puts.len();
    let _ = cluster::wait_for(
        "every node to see every put",
        Duration::from_secs(30),
        || {
            counts
                .iter()
                .all(|x| x.load(Ordering::Relaxed) >= want)
                .then_some(())
        },
    );
    let (cpu1, mach1, wall) = (c.nodes_cpu_ms(), cluster::machine_cpu_ms(), t0.elapsed());
    let nodes_cpu = cpu1 - cpu0;
    let (busy, total) = (mach1.0 - mach0.0, mach1.1 - mach0.1);
    // Stopping the nodes closes the streams, which ends the reader threads.
    drop(c);
    let seen: Vec<Seen> = readers
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    let (mut run, pairs) = figures(&puts, &seen, loadavg.trim().to_string());
    write_json(&dir.join("latencies.json"), &pairs)?;
    run.nodes_cpu_ms_per_put = nodes_cpu / want.max(1) as f64;
    run.nodes_idle_cpu_ms_per_s = idle_rate;
    run.others_cpu_share = ((busy - nodes_cpu) / total.max(1.0)).clamp(0.0, 1.0);
    run.put_phase_s = wall.as_secs_f64();
    Ok(run)
}

/// The run's figures, and every (write, other node) latency in µs, per write in write order
/// (node order inside), for plots and for checking the model by hand.
fn figures(puts: &[workload::Put], seen: &[Seen], loadavg: String) -> (RealRun, Vec<Vec<u64>>) {
    let at: Vec<HashMap<EventId, Instant>> = seen
        .iter()
        .map(|s| s.iter().map(|&(t, id)| (id, t)).collect())
        .collect();
    let (mut pairs, mut conv, mut first, mut missing) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut per_write = Vec::with_capacity(puts.len());
    for p in puts {
        let mut row = Vec::new();
        let t0 = at[p.node].get(&p.id).copied().unwrap_or(p.acked);
        let mut last = Some(0u64);
        for (j, m) in at.iter().enumerate() {
            if j == p.node {
                continue;
            }
            match m.get(&p.id) {
                Some(&t) => {
                    let us = t.saturating_duration_since(t0).as_micros() as u64;
                    pairs.push(us);
                    row.push(us);
                    last = last.map(|l| l.max(us));
                }
                None => {
                    missing += 1;
                    last = None;
                }
            }
        }
        conv.extend(last);
        first.extend(row.iter().min());
        per_write.push(row);
    }
    let run = RealRun {
        delivery_ms: Dist::of(pairs, 1e-3),
        event_convergence_ms: Dist::of(conv, 1e-3),
        first_ms: Dist::of(first, 1e-3),
        ranks_ms: ate_sim::report::rank_profile(&mut per_write.clone()),
        missing,
        loadavg,
        nodes_cpu_ms_per_put: 0.0,
        nodes_idle_cpu_ms_per_s: 0.0,
        others_cpu_share: 0.0,
        put_phase_s: 0.0,
    };
    (run, per_write)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_measured_from_the_writers_own_stream() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (a, b) = (EventId([1; 32]), EventId([2; 32]));
        let puts = [
            workload::Put {
                id: a,
                node: 0,
                acked: at(100),
            },
            workload::Put {
                id: b,
                node: 1,
                acked: at(100),
            },
        ];
        // Node 0 wrote `a` (streamed at 10 ms); node 1 wrote `b` (20 ms); node 2 never saw `b`.
        let seen = vec![
            vec![(at(10), a), (at(25), b)],
            vec![(at(14), a), (at(20), b)],
            vec![(at(13), a)],
        ];
        let (run, per_write) = figures(&puts, &seen, String::new());
        assert_eq!(per_write, vec![vec![4000, 3000], vec![5000]]);
        assert_eq!(run.missing, 1);
        assert_eq!(run.first_ms.count, 2);
        assert_eq!(run.event_convergence_ms.count, 1, "b never converged");
        assert_eq!(run.event_convergence_ms.max, 4.0);
        // First receivers 3 and 5 ms (median of two: the upper), second 4 ms (only `a`).
        assert_eq!(run.ranks_ms, vec![5.0, 4.0]);
    }
}
