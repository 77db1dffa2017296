//! `ate` — the command-line tool and (soon) the daemon.
//!
//! Today it offers the built-in benchmark `ate bench ingest` and `ate demo`, an in-process
//! three-replica mesh that shows the protocol core converging. The networked node (`ate node
//! run`) arrives with the node issue.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;

/// Counts heap bytes so `ate bench ingest` can report measured memory per event.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// ate: a peer-to-peer replicated datastore of signed, hash-chained events.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = "Examples:\n  ate demo\n  ate bench ingest --events 200000 --runs 5")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Built-in benchmarks you can run on your own hardware.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Runs three in-process replicas that write concurrently and converge.
    #[command(after_help = "Example:\n  ate demo --writes 20")]
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => bench::run(b),
        Command::Demo(d) => demo::run(&d),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
