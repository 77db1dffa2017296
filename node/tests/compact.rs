//! Compaction on a node with a redo log: the log shrinks on disk, the compacted log replays
//! to the same view, and a fresh peer that syncs from the compacted node (receiving headers
//! and signatures without the dropped bodies) converges to the same view digest.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ate_node::{Node, NodeConfig};
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{Config, Event, Params, Replica};
use common::wait_async;
use libp2p::Multiaddr;

#[tokio::test]
async fn compacted_node_shrinks_replays_and_serves_a_fresh_peer() {
    // Many versions of few keys: most bodies are superseded.
    let c = generate(&Spec {
        events: 3000,
        keys: 40,
        value_bytes: 400,
        // The root's last write lets compaction reclaim what every admin has seen.
        root_acks: true,
        ..Spec::default()
    });
    let chain = Replica::new(&c.genesis, Config::default()).unwrap().chain();
    let events: Vec<Event> = c
        .events
        .iter()
        .map(|b| Event::decode(Some(&chain), b, &Params::default()).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = || NodeConfig {
        data: Some(dir.path().join("a")),
        ..NodeConfig::local()
    };
    let a = Node::start(config()).await.unwrap();
    a.client().create_chain(c.genesis.clone()).await.unwrap();
    for batch in events.chunks(250) {
        a.client().submit(chain, batch.to_vec()).await.unwrap();
    }
    let digest = a
        .client()
        .read(chain, |r| r.view().digest_hex())
        .await
        .unwrap();

    let report = a.client().compact(chain).await.unwrap();
    println!("{report:?}");
    assert!(
        report.pruned > 2000,
        "most versions are superseded: {report:?}"
    );
    assert!(
        report.log_bytes_after * 2 < report.log_bytes_before,
        "the log shrinks on disk: {report:?}"
    );
    let after = a
        .client()
        .read(chain, |r| r.view().digest_hex())
        .await
        .unwrap();
    assert_eq!(after, digest, "compaction does not change the view");
    // A second compaction finds nothing more to drop.
    assert_eq!(a.client().compact(chain).await.unwrap().pruned, 0);

    // The compacted log (and its fresh snapshot) rebuild the same view after a restart, and
    // without the snapshot the whole compacted log replays, every signature checked again.
    a.stop().await;
    for with_snapshot in [true, false] {
        if !with_snapshot {
            let snaps = dir.path().join("a").join("snapshots");
            std::fs::remove_dir_all(&snaps).unwrap();
        }
        let a = Node::start(config()).await.unwrap();
        let (len, d, bodiless) = a
            .client()
            .read(chain, |r| {
                (r.len(), r.view().digest_hex(), r.compacted_len())
            })
            .await
            .unwrap();
        assert_eq!(len, 3001, "with_snapshot={with_snapshot}");
        assert_eq!(d, digest, "with_snapshot={with_snapshot}");
        assert_eq!(bodiless, report.compacted_total);
        a.stop().await;
    }

    // A fresh peer syncs everything from the compacted node.
    let a = Node::start(config()).await.unwrap();
    let b = Node::start(NodeConfig::local()).await.unwrap();
    let addrs: Vec<Multiaddr> = wait_async("a's address", Duration::from_secs(10), || async {
        let s = a.client().status().await.ok()?;
        let v: Vec<Multiaddr> = s.listen.iter().filter_map(|x| x.parse().ok()).collect();
        (!v.is_empty()).then_some(v)
    })
    .await;
    b.client().follow(chain).await.unwrap();
    b.client().dial(addrs).await;
    wait_async("b to converge", Duration::from_secs(60), || async {
        let (len, d) = b
            .client()
            .read(chain, |r| (r.len(), r.view().digest_hex()))
            .await
            .ok()?;
        (len == 3001 && d == digest).then_some(())
    })
    .await;
    let b_bodiless = b.client().read(chain, |r| r.compacted_len()).await.unwrap();
    assert_eq!(
        b_bodiless, report.compacted_total,
        "b received the dropped bodies as headers only"
    );
    a.stop().await;
    b.stop().await;
}
