//! The node's redo log under injected storage faults (the store's `FaultBackend` in place of
//! files): a power cut after acknowledged writes loses none of them; a failed fsync is never
//! acknowledged nor published; a torn tail is cut and the rest served; a flipped bit in the
//! middle makes the node refuse the chain unless asked to repair it.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ate_node::{Node, NodeConfig, NodeError};
use ate_protocol::replica::{Input, Verdict};
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{ChainId, Config, Event, Params, Replica};
use ate_store::FaultBackend;

fn config(fault: &FaultBackend, dir: &tempfile::TempDir, repair: bool) -> NodeConfig {
    NodeConfig {
        data: Some(dir.path().to_path_buf()),
        storage: Some(Arc::new(fault.clone())),
        repair,
        ..NodeConfig::local()
    }
}

struct Fixture {
    genesis: Vec<u8>,
    chain: ChainId,
    events: Vec<Event>,
    raw: Vec<Vec<u8>>,
}

fn fixture(n: usize) -> Fixture {
    let c = generate(&Spec {
        events: n,
        ..Spec::default()
    });
    let chain = Replica::new(&c.genesis, Config::default()).unwrap().chain();
    let events = c
        .events
        .iter()
        .map(|b| Event::decode(Some(&chain), b, &Params::default()).unwrap())
        .collect();
    Fixture {
        genesis: c.genesis,
        chain,
        events,
        raw: c.events,
    }
}

/// The digest of a replica holding the genesis and the first `n` events.
fn reference_digest(f: &Fixture, n: usize) -> String {
    let mut r = Replica::new(&f.genesis, Config::default()).unwrap();
    r.handle(0, Input::Replay(f.raw[..n].to_vec()));
    assert_eq!(r.len(), n + 1);
    r.view().digest_hex()
}

async fn held(node: &Node, chain: ChainId) -> Option<(usize, String)> {
    node.client()
        .read(chain, |r| (r.len(), r.view().digest_hex()))
        .await
        .ok()
}

#[tokio::test]
async fn power_cut_keeps_every_acknowledged_write() {
    let f = fixture(600);
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultBackend::new();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let c = node.client();
    c.create_chain(f.genesis.clone()).await.unwrap();
    for batch in f.events[..500].chunks(37) {
        let v = c.submit(f.chain, batch.to_vec()).await.unwrap();
        assert!(v.iter().all(|v| *v == Verdict::Valid), "{v:?}");
    }
    // Power cut: only what reached the disk through a sync survives.
    fault.crash();
    node.stop().await;
    fault.crash();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let (len, digest) = held(&node, f.chain)
        .await
        .expect("chain served after restart");
    assert_eq!(len, 501, "genesis + 500 acknowledged events");
    assert_eq!(digest, reference_digest(&f, 500));
    // And it keeps taking writes.
    let v = node
        .client()
        .submit(f.chain, f.events[500..].to_vec())
        .await
        .unwrap();
    assert!(v.iter().all(|v| *v == Verdict::Valid));
    node.stop().await;
}

#[tokio::test]
async fn failed_fsync_is_not_acknowledged_nor_published() {
    let f = fixture(50);
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultBackend::new();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let c = node.client();
    c.create_chain(f.genesis.clone()).await.unwrap();
    let v = c.submit(f.chain, f.events[..10].to_vec()).await.unwrap();
    assert!(v.iter().all(|v| *v == Verdict::Valid));
    let published = c.metrics().gossip_out_msgs.load(Ordering::Relaxed)
        + c.metrics().gossip_backpressure.load(Ordering::Relaxed);

    fault.fail_next_syncs(1);
    let r = c.submit(f.chain, f.events[10..20].to_vec()).await;
    assert!(
        matches!(r, Err(NodeError::NotDurable(_))),
        "a write whose fsync failed must not be acknowledged: {r:?}"
    );
    let after = c.metrics().gossip_out_msgs.load(Ordering::Relaxed)
        + c.metrics().gossip_backpressure.load(Ordering::Relaxed);
    assert_eq!(
        after, published,
        "nothing of the failed write was published"
    );
    // The chain now refuses writes with a clear error instead of guessing.
    let r = c.submit(f.chain, f.events[20..30].to_vec()).await;
    let Err(e @ NodeError::Storage(..)) = r else {
        panic!("expected a storage error, got {r:?}");
    };
    assert!(e.to_string().contains("redo log"), "{e}");
    node.stop().await;

    // A restart re-reads what is really on disk: the 10 acknowledged events.
    fault.crash();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let (len, digest) = held(&node, f.chain).await.unwrap();
    assert_eq!(len, 11);
    assert_eq!(digest, reference_digest(&f, 10));
    node.stop().await;
}

#[tokio::test]
async fn torn_tail_is_cut_and_the_rest_served() {
    let f = fixture(100);
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultBackend::new();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let c = node.client();
    c.create_chain(f.genesis.clone()).await.unwrap();
    c.submit(f.chain, f.events[..60].to_vec()).await.unwrap();
    // The next write is torn on its way to the disk: part of it lands, then the power goes.
    fault.short_next_write(150);
    let r = c.submit(f.chain, f.events[60..].to_vec()).await;
    assert!(r.is_err(), "a torn write must not be acknowledged: {r:?}");
    node.stop().await;
    fault.crash_tearing(150);
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let (len, digest) = held(&node, f.chain).await.unwrap();
    assert_eq!(len, 61);
    assert_eq!(digest, reference_digest(&f, 60));
    node.stop().await;
}

#[tokio::test]
async fn corruption_in_the_middle_needs_repair() {
    let f = fixture(200);
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultBackend::new();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let c = node.client();
    c.create_chain(f.genesis.clone()).await.unwrap();
    for batch in f.events.chunks(50) {
        c.submit(f.chain, batch.to_vec()).await.unwrap();
    }
    node.stop().await;
    let seg = ate_store::segment_name(0);
    let len = fault.file(&f.chain.to_string(), &seg).unwrap().len() as u64;
    assert!(fault.flip_bit(&f.chain.to_string(), &seg, len / 2, 3));

    // Refused: the node starts, serves nothing for that chain, and says why in its log.
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    assert!(
        held(&node, f.chain).await.is_none(),
        "a log corrupt in the middle must not be served without --repair"
    );
    node.stop().await;

    // With repair: cut at the damage, serve the valid prefix.
    let node = Node::start(config(&fault, &dir, true)).await.unwrap();
    let (len, digest) = held(&node, f.chain).await.expect("served after repair");
    assert!(len > 1 && len < 201, "a prefix survives: {len}");
    assert_eq!(digest, reference_digest(&f, len - 1));
    node.stop().await;
}

#[tokio::test]
async fn snapshot_plus_log_tail_rebuilds_the_state_and_bad_snapshots_are_ignored() {
    let f = fixture(500);
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultBackend::new();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let c = node.client();
    c.create_chain(f.genesis.clone()).await.unwrap();
    c.submit(f.chain, f.events[..300].to_vec()).await.unwrap();
    assert_eq!(c.checkpoint().await.unwrap(), 1);
    // More events after the snapshot: they come from the log's tail.
    c.submit(f.chain, f.events[300..400].to_vec())
        .await
        .unwrap();
    node.stop().await;

    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let client = node.client();
    let m = client.metrics();
    assert_eq!(m.snapshots_restored.load(Ordering::Relaxed), 1);
    assert_eq!(m.snapshots_ignored.load(Ordering::Relaxed), 0);
    let (len, digest) = held(&node, f.chain).await.unwrap();
    assert_eq!(len, 401);
    assert_eq!(digest, reference_digest(&f, 400));
    // It keeps taking writes after a snapshot restore.
    let v = node
        .client()
        .submit(f.chain, f.events[400..].to_vec())
        .await
        .unwrap();
    assert!(v.iter().all(|v| *v == Verdict::Valid));
    node.stop().await;

    // A damaged snapshot is ignored and the log replayed, with the same result.
    let snap = dir
        .path()
        .join("snapshots")
        .join(format!("{}.snap", f.chain));
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&snap, &bytes).unwrap();
    let node = Node::start(config(&fault, &dir, false)).await.unwrap();
    let client = node.client();
    let m = client.metrics();
    assert_eq!(m.snapshots_restored.load(Ordering::Relaxed), 0);
    assert_eq!(m.snapshots_ignored.load(Ordering::Relaxed), 1);
    let (len, digest) = held(&node, f.chain).await.unwrap();
    assert_eq!(len, 501);
    assert_eq!(digest, reference_digest(&f, 500));
    node.stop().await;
}

#[tokio::test]
async fn a_snapshot_that_does_not_match_the_log_is_ignored() {
    // A snapshot of a *different* history of the same chain (a backup of another data dir,
    // say): its checksum is fine, but its events are not the log's first frames.
    let f = fixture(300);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fa, fb) = (FaultBackend::new(), FaultBackend::new());
    let a = Node::start(config(&fa, &dir_a, false)).await.unwrap();
    a.client().create_chain(f.genesis.clone()).await.unwrap();
    a.client()
        .submit(f.chain, f.events[..200].to_vec())
        .await
        .unwrap();
    a.client().checkpoint().await.unwrap();
    a.stop().await;
    let b = Node::start(config(&fb, &dir_b, false)).await.unwrap();
    b.client().create_chain(f.genesis.clone()).await.unwrap();
    b.client()
        .submit(f.chain, f.events[..100].to_vec())
        .await
        .unwrap();
    b.stop().await;
    let name = format!("{}.snap", f.chain);
    std::fs::create_dir_all(dir_b.path().join("snapshots")).unwrap();
    std::fs::copy(
        dir_a.path().join("snapshots").join(&name),
        dir_b.path().join("snapshots").join(&name),
    )
    .unwrap();
    let b = Node::start(config(&fb, &dir_b, false)).await.unwrap();
    let client = b.client();
    let m = client.metrics();
    assert_eq!(m.snapshots_ignored.load(Ordering::Relaxed), 1);
    let (len, digest) = held(&b, f.chain).await.unwrap();
    assert_eq!(len, 101, "the log decides, not a snapshot of more events");
    assert_eq!(digest, reference_digest(&f, 100));
    b.stop().await;
}
