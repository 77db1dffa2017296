//! `ate-sim`: run, sweep and compare simulations (see `ate-sim --help`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ate_sim::report::Report;
use ate_sim::{Scenario, run};
use clap::{Parser, Subcommand};

/// `println!` without the panic when stdout is a closed pipe (`ate-sim run … | head`): a
/// reader that went away is not an error worth a stack trace.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Debug, Parser)]
#[command(
    name = "ate-sim",
    about = "Deterministic simulator of ate networks: many real protocol cores, one virtual clock.",
    after_help = "Examples:\n  ate-sim run scenarios/lan-20.toml\n  ate-sim run scenarios/wan-10k-loss1.toml --seed 7 --out out/wan10k\n  ate-sim sweep scenarios/byzantine.toml --seeds 100\n  ate-sim compare out/a/report.json out/b/report.json\n\nExit codes: 0 passed, 1 a checker failed (the seed and a reproduce command are printed), 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one scenario with one seed; write report.json, timing.json and SVG plots.
    #[command(
        after_help = "Example:\n  ate-sim run scenarios/partition-heal.toml --seed 3 --out out/ph\n\nreport.json is a function of the scenario and the seed (byte-identical across runs);\nwall time, CPU time, deliveries per second and peak RSS go to timing.json."
    )]
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Master seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Override the number of nodes.
        #[arg(long)]
        nodes: Option<usize>,
        /// Output directory (default: sim-out/<scenario>-<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Threads for replica calls (default: available cores); the report is the same.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run a scenario over many seeds in parallel and summarise.
    #[command(
        after_help = "Example:\n  ate-sim sweep scenarios/byzantine.toml --seeds 100 --first 1"
    )]
    Sweep {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// How many seeds.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        first: u64,
        /// Worker threads (default: available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Override the number of nodes.
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// Show the numeric differences between two reports.
    #[command(after_help = "Example:\n  ate-sim compare out/a/report.json out/b/report.json")]
    Compare {
        /// The baseline report.
        a: PathBuf,
        /// The report to compare with it.
        b: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run {
            scenario,
            seed,
            nodes,
            out,
            threads,
        } => cmd_run(&scenario, seed, nodes, out, threads),
        Cmd::Sweep {
            scenario,
            seeds,
            first,
            threads,
            nodes,
        } => cmd_sweep(&scenario, first, seeds, threads, nodes),
        Cmd::Compare { a, b } => cmd_compare(&a, &b).map(|()| true),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path, nodes: Option<usize>) -> Result<Scenario> {
    let mut sc = Scenario::load(path)?;
    if let Some(n) = nodes {
        sc.nodes = n;
        sc.validate()
            .map_err(|m| anyhow::anyhow!("{}: with --nodes {n}: {m}", path.display()))?;
    }
    Ok(sc)
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time of this process (all threads) in ms, from the kernel's accounting (10 ms ticks):
/// a figure that depends much less than wall time on what else the machine is doing.
fn cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after its `) `.
    let rest = s.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

fn reproduce(path: &Path, seed: u64, nodes: Option<usize>) -> String {
    let n = nodes.map(|n| format!(" --nodes {n}")).unwrap_or_default();
    format!("ate-sim run {} --seed {seed}{n}", path.display())
}

fn cmd_run(
    path: &Path,
    seed: Option<u64>,
    nodes: Option<usize>,
    out: Option<PathBuf>,
    threads: Option<usize>,
) -> Result<bool> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let sc = load(path, nodes)?;
    let seed = seed.unwrap_or(sc.seed);
    let out = out.unwrap_or_else(|| PathBuf::from(format!("sim-out/{}-{seed}", sc.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(100)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} simulated ms  {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let outcome = ate_sim::run_threads(&sc, seed, threads, &mut |t, total| {
        bar.set_length(total);
        bar.set_position(t);
    });
    bar.finish_and_clear();
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let json = serde_json::to_string_pretty(&outcome.report)? + "\n";
    std::fs::write(out.join("report.json"), json)?;
    let per_s = outcome.deliveries as f64 / (wall_ms / 1000.0).max(1e-9);
    let cpu = cpu_ms();
    let per_cpu_s = cpu.map(|c| (outcome.deliveries as f64 / (c / 1000.0).max(1e-9)).round());
    let timing = serde_json::json!({
        "wall_ms": wall_ms.round(),
        "cpu_ms": cpu.map(f64::round),
        "deliveries": outcome.deliveries,
        "deliveries_per_wall_s": per_s.round(),
        "deliveries_per_cpu_s": per_cpu_s,
        "peak_rss_mib": peak_rss_mib().map(f64::round),
        "threads": threads,
    });
    std::fs::write(
        out.join("timing.json"),
        serde_json::to_string_pretty(&timing)? + "\n",
    )?;
    if let Err(e) = ate_sim::plot::write_plots(&out, &outcome.series) {
        eprintln!("warning: plots not written: {e}");
    }
    print_summary(&outcome.report);
    say!("timing: {timing}");
    say!(
        "wrote {}/{{report.json,timing.json,convergence_cdf.svg,bytes_per_node.svg}}",
        out.display()
    );
    if !outcome.passed {
        say!(
            "FAILED seed {seed}; reproduce with: {}",
            reproduce(path, seed, nodes)
        );
    }
    Ok(outcome.passed)
}

fn print_summary(r: &Report) {
    say!(
        "{} seed {}: {} ({} nodes, {} live, {} events)",
        r.scenario,
        r.seed,
        if r.passed { "PASSED" } else { "FAILED" },
        r.nodes,
        r.live_nodes,
        r.reference_events
    );
    let d = &r.delivery_latency_ms;
    say!(
        "  delivery latency ms: p50 {} p90 {} p99 {} max {}; liveness converged in {:?} ms",
        d.p50,
        d.p90,
        d.p99,
        d.max,
        r.liveness_converged_ms
    );
    say!(
        "  deliveries {}; duplicates/delivery {}; bytes sent/node mean {}; invalid accepted {}; rejected {:?}",
        r.deliveries,
        r.duplicates_per_delivery,
        r.per_node.bytes_sent.mean,
        r.invalid_accepted,
        r.rejected
    );
    for v in &r.violations {
        say!("  ! {v}");
    }
}

#[derive(Debug)]
struct SeedResult {
    seed: u64,
    passed: bool,
    invalid_accepted: u64,
    p99_ms: f64,
    conv_ms: Option<f64>,
    first_violation: Option<String>,
}

/// Runs seeds `first..first + count` on `threads` threads (seed `s` on thread `s % threads`).
fn sweep_runs(
    sc: &Scenario,
    first: u64,
    count: u64,
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Vec<SeedResult> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Vec::new();
                    let mut seed = first + t;
                    while seed < first + count {
                        let o = run(sc, seed, &mut |_, _| {});
                        v.push(SeedResult {
                            seed,
                            passed: o.passed,
                            invalid_accepted: o.report.invalid_accepted,
                            p99_ms: o.report.delivery_latency_ms.p99,
                            conv_ms: o.report.liveness_converged_ms,
                            first_violation: o.report.violations.first().cloned(),
                        });
                        bar.inc(1);
                        seed += threads as u64;
                    }
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn cmd_sweep(
    path: &Path,
    first: u64,
    count: u64,
    threads: Option<usize>,
    nodes: Option<usize>,
) -> Result<bool> {
    let sc = load(path, nodes)?;
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(count)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut results = sweep_runs(&sc, first, count, threads, &bar);
    bar.finish_and_clear();
    results.sort_by_key(|r| r.seed);
    let failed: Vec<&SeedResult> = results.iter().filter(|r| !r.passed).collect();
    let invalid: u64 = results.iter().map(|r| r.invalid_accepted).sum();
    let mut p99: Vec<u64> = results.iter().map(|r| (r.p99_ms * 1000.0) as u64).collect();
    p99.sort_unstable();
    let conv: Vec<u64> = results
        .iter()
        .filter_map(|r| r.conv_ms.map(|x| (x * 1000.0) as u64))
        .collect();
    let summary = serde_json::json!({
        "scenario": sc.name,
        "seeds": results.len(),
        "first_seed": first,
        "passed": results.len() - failed.len(),
        "failed_seeds": failed.iter().map(|r| r.seed).collect::<Vec<_>>(),
        "invalid_accepted_total": invalid,
        "delivery_p99_ms_over_seeds": ate_sim::report::Dist::of(p99, 1e-3),
        "liveness_converged_ms_over_seeds": ate_sim::report::Dist::of(conv, 1e-3),
        "wall_ms": started.elapsed().as_millis() as u64,
    });
    say!("{}", serde_json::to_string_pretty(&summary)?);
    for r in &failed {
        say!(
            "FAILED seed {}: {}; reproduce with: {}",
            r.seed,
            r.first_violation.as_deref().unwrap_or("?"),
            reproduce(path, r.seed, nodes)
        );
    }
    Ok(failed.is_empty())
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => out.push((prefix.to_string(), n.as_f64().unwrap_or(0.0))),
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        _ => {}
    }
}

fn cmd_compare(a: &Path, b: &Path) -> Result<()> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let t =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&t).with_context(|| format!("{} is not a JSON report", p.display()))
    };
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    flatten("", &read(a)?, &mut fa);
    flatten("", &read(b)?, &mut fb);
    let mb: std::collections::BTreeMap<String, f64> = fb.into_iter().collect();
    say!("{:<44} {:>16} {:>16} {:>9}", "field", "A", "B", "change");
    for (k, x) in fa {
        let Some(&y) = mb.get(&k) else { continue };
        if x == y {
            continue;
        }
        let pct = if x != 0.0 {
            format!("{:+.1}%", (y - x) / x.abs() * 100.0)
        } else {
            "new".into()
        };
        say!("{k:<44} {x:>16.3} {y:>16.3} {pct:>9}");
    }
    Ok(())
}
