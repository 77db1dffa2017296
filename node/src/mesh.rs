//! Small in-process meshes of real nodes on loopback, for `ate demo` and `ate bench replicate`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ate_node::{Client, Node, NodeConfig};
use ate_protocol::ChainId;
use libp2p::Multiaddr;

/// Starts `n` nodes listening on 127.0.0.1 (random TCP ports, no mDNS) and connects every
/// later node to the first.
pub(crate) async fn start(n: usize) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut first: Vec<Multiaddr> = Vec::new();
    for i in 0..n {
        let config = NodeConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            mdns: false,
            ..NodeConfig::default()
        };
        let node = Node::start(config).await?;
        if i == 0 {
            first = wait_for(Duration::from_secs(10), || async {
                let s = node.client().status().await.ok()?;
                let addrs: Vec<Multiaddr> =
                    s.listen.iter().filter_map(|a| a.parse().ok()).collect();
                (!addrs.is_empty()).then_some(addrs)
            })
            .await
            .context("the first node did not start listening")?;
        } else {
            node.client().dial(first.clone()).await;
        }
        nodes.push(node);
    }
    for node in &nodes[1..] {
        wait_for(Duration::from_secs(10), || async {
            (node.client().status().await.ok()?.peers > 0).then_some(())
        })
        .await
        .context("a node did not connect to the first")?;
    }
    Ok(nodes)
}

/// Polls `f` every 20 ms until it returns `Some`, or fails after `deadline`.
pub(crate) async fn wait_for<T, F, Fut>(deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `client` follows `chain` and holds `events` events.
pub(crate) async fn wait_events(
    client: &Client,
    chain: ChainId,
    events: usize,
    deadline: Duration,
) -> anyhow::Result<()> {
    wait_for(deadline, || async {
        (client.read(chain, |r| r.len()).await.ok()? >= events).then_some(())
    })
    .await
}
