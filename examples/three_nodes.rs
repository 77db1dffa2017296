//! Three in-process nodes on loopback: one creates a chain and writes, the others follow it
//! and converge to the same view.
//!
//! `cargo run --example three_nodes`

use std::time::Duration;

use ate::{Chain, Node, NodeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Node::start(NodeConfig::local()).await?;
    let b = Node::start(NodeConfig::local()).await?;
    let c = Node::start(NodeConfig::local()).await?;
    // Connect b and c to a (in a deployment, --join or mDNS does this).
    let addrs = loop {
        let listen = a.client().status().await?.listen;
        if !listen.is_empty() {
            break listen
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    b.client().dial(addrs.clone()).await;
    c.client().dial(addrs).await;

    let key = ate::random_key()?;
    let chain = Chain::create(&a, "three", key.clone()).await?;
    let on_b = Chain::follow(&b, chain.id(), key.clone()).await?;
    let on_c = Chain::follow(&c, chain.id(), key).await?;
    for i in 0..10 {
        chain.put(&format!("k{i}"), serde_json::json!(i)).await?;
    }
    let want = chain.digest().await?;
    for (name, replica) in [("b", &on_b), ("c", &on_c)] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while replica.digest().await.ok().as_ref() != Some(&want) {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "node {name} did not converge"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("node {name} converged: digest {}", &want[..16]);
    }
    println!(
        "k9 on node c = {:?}",
        on_c.get("k9").await?.and_then(|v| v.value)
    );
    Ok(())
}
