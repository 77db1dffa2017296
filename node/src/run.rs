//! `ate node run`: the daemon, configured by flags or a TOML file with the same keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ate_node::{Node, NodeConfig, default_quic, default_tcp};
use ate_protocol::ChainId;
use clap::{Args, Subcommand};
use libp2p::Multiaddr;
use serde::Deserialize;

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Runs the daemon: joins the mesh, follows chains, serves the HTTP API.
    #[command(
        after_help = "Examples:\n  ate node run                                  # mDNS on the LAN, API on 127.0.0.1:4180\n  ate node run --join mesh.example.org          # dial every A/AAAA record of the name (port 4100)\n  ate node run --listen /ip4/127.0.0.11/tcp/4100 --join mesh.test --dns-server 127.0.0.1:5353 --no-mdns\n  ate node run --data /var/lib/ate              # keep redo logs (fsync before every acknowledgement)\n  ate node run --config node.toml\n\nLogs: RUST_LOG=info (default), RUST_LOG=ate_node=debug for more."
    )]
    Run(RunArgs),
}

/// Flags of `ate node run`; the config file uses the same names (with `_` for `-`).
#[derive(Debug, Args, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RunArgs {
    /// A TOML file with any of these settings (flags override it).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Data directory: the node identity and every followed chain's redo log
    /// (`DATA/chains/<chain>/`). Without it the node keeps everything in memory only.
    #[arg(long)]
    data: Option<PathBuf>,
    /// When writes are made durable: `always` (fsync before any acknowledgement; concurrent
    /// writes share one fsync), `batch:MS` (also wait up to MS ms for more writes to share it)
    /// or `never` (tests only: a machine crash loses recent writes). Default `always`.
    #[arg(long)]
    fsync: Option<String>,
    /// Cut a chain's log at a corrupt frame in the middle (losing what follows it) instead of
    /// refusing to serve that chain.
    #[arg(long)]
    repair: bool,
    /// Write a chain's snapshot after this many new events (default 100000; 0: only at
    /// shutdown). A restart loads the snapshot and replays only the log after it.
    #[arg(long)]
    snapshot_every: Option<usize>,
    /// Listen multiaddr (repeatable). Default: TCP and QUIC on port 4100, all interfaces.
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// HTTP API address (loopback by default; anything else must be asked for).
    #[arg(long)]
    api: Option<SocketAddr>,
    /// Join the mesh by a DNS name: NAME[:PORT] (repeatable; default port 4100).
    #[arg(long)]
    join: Vec<String>,
    /// Ask this DNS server (IP:PORT) instead of the system resolver.
    #[arg(long)]
    dns_server: Option<SocketAddr>,
    /// Turn off mDNS discovery on the LAN.
    #[arg(long)]
    no_mdns: bool,
    /// Follow a chain at start (repeatable).
    #[arg(long)]
    follow: Vec<ChainId>,
    /// Seconds between re-resolutions of --join names.
    #[arg(long)]
    join_interval_secs: Option<u64>,
    /// Gossipsub mesh degree (default 6). For measurements (`ate-calibrate`); leave it alone.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u16).range(2..=32))]
    gossip_mesh: Option<u16>,
}

/// Largest config file read (a real one is a few hundred bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_config(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read config {} (is it UTF-8 text?)", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "config {} is over {MAX_CONFIG_BYTES} bytes: not a config file?",
            path.display()
        );
    }
    Ok(text)
}

impl RunArgs {
    fn merged(self) -> anyhow::Result<RunArgs> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = read_config(path)?;
        let file: RunArgs =
            toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))?;
        Ok(RunArgs {
            config: None,
            data: self.data.or(file.data),
            fsync: self.fsync.or(file.fsync),
            repair: self.repair || file.repair,
            snapshot_every: self.snapshot_every.or(file.snapshot_every),
            listen: if self.listen.is_empty() {
                file.listen
            } else {
                self.listen
            },
            api: self.api.or(file.api),
            join: if self.join.is_empty() {
                file.join
            } else {
                self.join
            },
            dns_server: self.dns_server.or(file.dns_server),
            no_mdns: self.no_mdns || file.no_mdns,
            follow: if self.follow.is_empty() {
                file.follow
            } else {
                self.follow
            },
            join_interval_secs: self.join_interval_secs.or(file.join_interval_secs),
            gossip_mesh: self.gossip_mesh,
        })
    }
}

fn identity_seed(data: Option<&PathBuf>) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(dir) = data else { return Ok(None) };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let path = dir.join("node.key");
    let key = if path.exists() {
        ate_node::keys::load(&path)?
    } else {
        ate_node::keys::create(&path)?
    };
    let text = key.to_text();
    Ok(Some(blake3::derive_key(
        "ate v1 node identity",
        text.as_bytes(),
    )))
}

pub(crate) fn run(cmd: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Run(args) = cmd;
    let args = args.merged()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,libp2p_mdns=warn,libp2p_gossipsub=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = NodeConfig {
        listen: if args.listen.is_empty() {
            vec![default_tcp(4100), default_quic(4100)]
        } else {
            args.listen
        },
        join: args.join,
        dns_server: args.dns_server,
        mdns: !args.no_mdns,
        follow: args.follow,
        identity_seed: identity_seed(args.data.as_ref())?,
        join_interval: Duration::from_secs(args.join_interval_secs.unwrap_or(30)),
        replica: Default::default(),
        data: args.data.clone(),
        fsync: match &args.fsync {
            Some(s) => s.parse().map_err(|e: String| anyhow::anyhow!(e))?,
            None => ate_node::journal::Fsync::Always,
        },
        repair: args.repair,
        storage: None,
        snapshot_every: args.snapshot_every.unwrap_or(100_000),
        gossip_mesh: args.gossip_mesh.map(usize::from),
        ..NodeConfig::default()
    };
    let api = args
        .api
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4180)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let node = Node::start(config).await?;
        tracing::info!(peer = %node.peer_id, "node started");
        let client = node.client();
        tokio::select! {
            r = ate_node::api::serve(api, client.clone()) => r,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down: writing snapshots");
                match tokio::time::timeout(Duration::from_secs(60), client.checkpoint()).await {
                    Ok(Ok(n)) => tracing::info!("{n} snapshots written"),
                    Ok(Err(ate_node::NodeError::NoData)) => {}
                    Ok(Err(e)) => tracing::warn!("snapshots not written: {e}"),
                    Err(_) => tracing::warn!("snapshots took too long; the logs will be replayed"),
                }
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_are_read_up_to_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("node.toml");
        std::fs::write(&small, "api = \"127.0.0.1:4999\"\n").unwrap();
        assert_eq!(read_config(&small).unwrap(), "api = \"127.0.0.1:4999\"\n");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = read_config(&big).unwrap_err().to_string();
        assert!(err.contains("over 1048576 bytes"), "{err}");
        let err = read_config(&dir.path().join("none.toml")).unwrap_err();
        assert!(err.to_string().contains("cannot read config"), "{err}");
    }
}
