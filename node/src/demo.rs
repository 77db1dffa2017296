//! `ate demo`: three real nodes on this machine (libp2p over loopback), one chain, writes
//! through the first node, and the others converging to the same view digest.

use std::time::{Duration, Instant};

use ate_protocol::{PutValue, SecretKey, Writer, genesis};
use clap::Args;

use crate::mesh;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Records to write through the first node.
    #[arg(long, default_value_t = 20)]
    writes: usize,
}

pub(crate) fn run(a: &DemoArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(a.writes))
}

async fn demo(writes: usize) -> anyhow::Result<()> {
    println!("starting three nodes on 127.0.0.1 …");
    let nodes = mesh::start(3).await?;
    for (i, n) in nodes.iter().enumerate() {
        println!("node {}: {}", i + 1, n.peer_id);
    }
    let root = SecretKey::from_seed(ate_node::keys::random_seed()?);
    let g = genesis("demo", &root, &[], Default::default(), 1, 0);
    let chain = nodes[0].client().create_chain(g.encode()).await?;
    println!("node 1 created chain {chain}");
    for n in &nodes[1..] {
        n.client().follow(chain).await?;
    }
    let writer = Writer::new(root);
    let c1 = nodes[0].client();
    let start = Instant::now();
    for i in 0..writes {
        let key = format!("notes/{}", i % 5);
        let value = serde_json::json!({ "n": i, "text": format!("note number {i}") });
        let ev = {
            let (k, v, w) = (key.clone(), value.to_string(), writer.clone());
            c1.read(chain, move |r| w.put(r, &k, PutValue::Json(v), 0))
                .await?
        };
        let verdicts = c1.submit(chain, vec![ev]).await?;
        anyhow::ensure!(
            matches!(verdicts[0], ate_protocol::Verdict::Valid),
            "write refused: {:?}",
            verdicts[0]
        );
    }
    println!("wrote {writes} records through node 1");
    let want = writes + 1;
    for n in &nodes[1..] {
        mesh::wait_events(&n.client(), chain, want, Duration::from_secs(20)).await?;
    }
    println!(
        "nodes 2 and 3 hold all {want} events after {:?}",
        start.elapsed()
    );
    let mut digests = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let d = n.client().read(chain, |r| r.view().digest_hex()).await?;
        println!("node {} view digest {}", i + 1, &d[..16]);
        digests.push(d);
    }
    let latest = nodes[2]
        .client()
        .read(chain, |r| r.view().get_latest("notes/0"))
        .await?;
    if let Some(v) = latest {
        println!("node 3 reads notes/0 = {}", v.value.unwrap_or_default());
    }
    anyhow::ensure!(
        digests.iter().all(|d| d == &digests[0]),
        "nodes did not converge"
    );
    println!("all three nodes converged");
    for n in nodes {
        n.shutdown();
    }
    Ok(())
}
