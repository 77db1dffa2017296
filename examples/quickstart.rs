//! Quick start: open a node in-process, create a chain, store a record, read it back, query.
//!
//! `cargo run --example quickstart`

use ate::prelude::*;
use ate::{Chain, Node, NodeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = Node::start(NodeConfig::local()).await?;
    let key = ate::random_key()?;
    let chain = Chain::create(&node, "quickstart", key).await?;
    println!("chain {}", chain.id());

    // Store a record; `put` returns once the node has verified and accepted the signed event.
    chain
        .put(
            "users/alice",
            serde_json::json!({"name": "Alice", "age": 30}),
        )
        .await?;
    chain
        .put(
            "users/alice",
            serde_json::json!({"name": "Alice", "age": 31}),
        )
        .await?;
    chain
        .put("users/bob", serde_json::json!({"name": "Bob", "age": 12}))
        .await?;

    // Read it back.
    let alice = chain
        .get("users/alice")
        .await?
        .ok_or_else(|| anyhow::anyhow!("not found"))?;
    println!(
        "users/alice = {} (version {})",
        alice.value.unwrap_or_default(),
        alice.seq
    );

    // Latest version of every record, then a condition on it.
    let adults = chain
        .list_latest(Condition::True, Condition::parse("age >= 18")?, None, None)
        .await?;
    for v in adults {
        println!("adult: {} -> {}", v.key, v.value.unwrap_or_default());
    }
    node.shutdown();
    Ok(())
}
