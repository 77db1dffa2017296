//! A node that follows a chain by id learns of the peers that were subscribed to it before
//! it followed (their subscriptions arrived while it waited for the genesis): it counts them,
//! and its anti-entropy picks among them.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ate_node::{Node, NodeConfig};
use ate_protocol::{Params, SecretKey, genesis};
use common::{listen_addrs, wait_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_followed_by_id_counts_the_peers_subscribed_before() {
    let a = Node::start(NodeConfig::local()).await.unwrap();
    let b = Node::start(NodeConfig::local()).await.unwrap();
    let g = genesis(
        "early",
        &SecretKey::from_seed([1; 32]),
        &[],
        Params::default(),
        9,
        0,
    );
    let chain = a.client().create_chain(g.encode()).await.unwrap();
    // b connects first, so a's subscription reaches b before b follows the chain.
    let addrs = listen_addrs(&a).await;
    b.client().dial(addrs).await;
    wait_async("b to connect", Duration::from_secs(10), || async {
        (b.client().status().await.ok()?.peers >= 1).then_some(())
    })
    .await;
    b.client().follow(chain).await.unwrap();
    let peers = wait_async("b to hold the chain", Duration::from_secs(10), || async {
        let s = b.client().status().await.ok()?;
        s.chains.iter().find(|c| c.id == chain).map(|c| c.peers)
    })
    .await;
    assert_eq!(
        peers, 1,
        "a subscribed before b followed, and b must count it"
    );
}
