//! `ate` — the command-line tool and the daemon.
//!
//! Client commands sign locally with key files and talk to a node's HTTP API (`--api`,
//! default 127.0.0.1:4180); `ate node run` is the daemon; `ate demo` starts a three-node mesh
//! on this machine; `ate bench …` measures.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod cli;
mod demo;
mod mesh;
mod replicate;
mod restart;
mod run;
mod sync_bench;
mod tools;

/// Counts heap bytes so `ate bench ingest` can report measured memory per event.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// ate: a peer-to-peer replicated datastore of signed, hash-chained events.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  ate demo                                   # a three-node mesh on this machine\n  ate node run --join mesh.example.org       # the daemon\n  ate key new alice.key && ate chain new notes --key alice.key\n  ate put CHAIN users/alice '{\"age\": 31}' --key alice.key\n  ate list CHAIN --where 'age >= 18' --latest --json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the node daemon.
    #[command(subcommand)]
    Node(run::NodeCommand),
    /// Key files (writers sign locally; the node never sees a secret key).
    #[command(subcommand)]
    Key(cli::KeyCommand),
    /// Chains.
    #[command(subcommand)]
    Chain(cli::ChainCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// Starts three nodes on this machine, writes through one, shows the others converge.
    #[command(after_help = "Example:\n  ate demo --writes 50")]
    Demo(demo::DemoArgs),
    /// Redo-log tools.
    #[command(subcommand)]
    Log(tools::LogCommand),
    /// Copies a chain's redo log from a running node into one self-checking file.
    #[command(after_help = "Example:\n  ate backup chainabc… notes.atebak --api 127.0.0.1:4180")]
    Backup(tools::BackupArgs),
    /// Drops the values of settled superseded versions from a chain on a running node and
    /// rewrites its redo log without them; headers, signatures, keys and record links stay, so
    /// the chain still verifies and peers still place every version.
    #[command(
        after_help = "A version's value is dropped only once a newer version of its record is settled: every\n\
                      root and admin key has written an event that saw the newer version, and no revocation\n\
                      or rotation is concurrent with it. Until then a revocation made without seeing the newer\n\
                      version could bring the old one back, so its value is kept. An admin that never writes\n\
                      keeps everything; the report says how many values were kept for this reason.\n\n\
                      Example:\n  ate compact chainabc… --api 127.0.0.1:4180"
    )]
    Compact(tools::CompactArgs),
    /// Restores a backup file into a data directory (verified in full before writing).
    #[command(after_help = "Example:\n  ate restore notes.atebak --data /var/lib/ate-restored")]
    Restore(tools::RestoreArgs),
    /// Built-in benchmarks you can run on your own hardware.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(n) => run::run(n),
        Command::Key(k) => cli::key(k),
        Command::Chain(c) => cli::chain(c),
        Command::Client(c) => cli::client(c),
        Command::Demo(d) => demo::run(&d),
        Command::Bench(b) => bench::run(b),
        Command::Log(l) => tools::log(l),
        Command::Backup(b) => tools::backup(b),
        Command::Restore(r) => tools::restore(r),
        Command::Compact(c) => tools::compact(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
