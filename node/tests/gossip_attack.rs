//! A raw libp2p peer (not an ate node) joins a chain's gossip topic and injects events that
//! are validly signed but not authorised: by a key without a grant, and by a writer after its
//! grant was revoked. The node it talks to rejects them (gossipsub `Reject`) and never
//! forwards them: the second node never sees them, while a later valid write does arrive.
//! Also: a late joiner started after 10,000 events catches up to the same digest.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use ate_node::{Node, NodeConfig};
use ate_protocol::replica::{Config, Input};
use ate_protocol::workload::{Spec, generate};
use ate_protocol::{ChainId, Event, Params, Replica, Rights, SecretKey, Verdict, Writer, genesis};
use common::{listen_addrs, wait_async};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::{Multiaddr, noise, tcp, yamux};

async fn pair_with(config: impl Fn() -> NodeConfig) -> (Node, Node, Vec<Multiaddr>) {
    let a = Node::start(config()).await.unwrap();
    let b = Node::start(config()).await.unwrap();
    let addrs = listen_addrs(&a).await;
    b.client().dial(addrs.clone()).await;
    (a, b, addrs)
}

async fn pair() -> (Node, Node, Vec<Multiaddr>) {
    pair_with(NodeConfig::local).await
}

/// A chain created on `a` with the root key of seed 1 and followed by `b`: the root writer,
/// the genesis and the chain id.
async fn chain_on(a: &Node, b: &Node, name: &str) -> (Writer, Event, ChainId) {
    let root = Writer::new(SecretKey::from_seed([1; 32]));
    let g = genesis(
        name,
        &SecretKey::from_seed([1; 32]),
        &[],
        Params::default(),
        9,
        0,
    );
    let chain = a.client().create_chain(g.encode()).await.unwrap();
    b.client().follow(chain).await.unwrap();
    wait_async("b to follow", Duration::from_secs(10), || async {
        b.client().read(chain, |r| r.len()).await.ok()
    })
    .await;
    (root, g, chain)
}

/// A local replica holding everything `node` has of `chain` now.
async fn copy_of(node: &Node, chain: ChainId, genesis: &[u8]) -> Replica {
    let client = node.client();
    let all = client
        .read(chain, |r| {
            r.event_ids()
                .into_iter()
                .filter_map(|id| r.event(&id))
                .map(|e| e.encode())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    let mut copy = Replica::new(genesis, Config::default()).unwrap();
    let _ = copy.handle(0, Input::Replay(all));
    copy
}

async fn submit(node: &Node, chain: ChainId, ev: Event) -> Verdict {
    node.client()
        .submit(chain, vec![ev])
        .await
        .unwrap()
        .remove(0)
}

type RawPeer = libp2p::Swarm<
    gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::AllowAllSubscriptionFilter>,
>;

/// A raw libp2p peer (plain gossipsub, not an ate node) dialling `addr`, subscribed to the
/// chain's topic.
fn raw_peer(chain: ChainId, addr: &Multiaddr) -> (RawPeer, IdentTopic) {
    let mut raw = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            let cfg = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Anonymous)
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(&blake3::hash(&m.data).as_bytes()[..20])
                })
                .heartbeat_interval(Duration::from_millis(200))
                .build()
                .unwrap();
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(MessageAuthenticity::Anonymous, cfg)
            .unwrap()
        })
        .unwrap()
        .build();
    let topic = IdentTopic::new(format!("ate/1/{chain}"));
    raw.behaviour_mut().subscribe(&topic).unwrap();
    raw.dial(addr.clone()).unwrap();
    (raw, topic)
}

/// One peer cannot open more than a few connections to a node: of 10 dials, at most 4 stay
/// up (the node refuses the rest), and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_gets_at_most_four_connections() {
    use libp2p::swarm::SwarmEvent;
    use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
    let a = Node::start(NodeConfig::local()).await.unwrap();
    let addrs = listen_addrs(&a).await;
    let a_id: libp2p::PeerId = a.client().status().await.unwrap().peer_id.parse().unwrap();
    let chain = ChainId([7; 32]);
    let (mut raw, _) = raw_peer(chain, &addrs[0]);
    for _ in 0..9 {
        let opts = DialOpts::peer_id(a_id)
            .condition(PeerCondition::Always)
            .addresses(addrs.clone())
            .build();
        raw.dial(opts).unwrap();
    }
    // Every dial ends up established or failed, and the node closes what is over its limit.
    let (mut up, mut closed, mut failed) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(up + failed >= 10 && up - closed <= 4 && closed + failed >= 6) {
        assert!(
            Instant::now() < deadline,
            "dials: {up} up, {closed} closed, {failed} failed"
        );
        let ev = tokio::time::timeout(Duration::from_millis(200), raw.select_next_some()).await;
        match ev {
            Ok(SwarmEvent::ConnectionEstablished { .. }) => up += 1,
            Ok(SwarmEvent::ConnectionClosed { .. }) => closed += 1,
            Ok(SwarmEvent::OutgoingConnectionError { .. }) => failed += 1,
            _ => {}
        }
    }
    let status = a.client().status().await.unwrap();
    assert!(
        status.connections <= 4,
        "{} connections",
        status.connections
    );
    assert_eq!(status.peers, 1);
}

/// A gossip message: a bundle of envelopes in the sync `Events` framing.
fn bundle(ev: &Event) -> Vec<u8> {
    ate_protocol::replica::SyncMsg::Events {
        events: vec![ev.encode()],
        more: false,
    }
    .encode()
}

/// Publishes `msg` from the raw peer, retrying until the node it dialled has subscribed.
async fn publish(raw: &mut RawPeer, topic: &IdentTopic, msg: Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the raw peer could not publish");
        tokio::select! {
            _ = raw.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if raw.behaviour_mut().publish(topic.clone(), msg.clone()).is_ok() {
                    return;
                }
            }
        }
    }
}

/// A writer's two puts reach node a from a raw peer in reverse order, so the second waits for
/// the first. Once the first arrives and the second is stored, a forwards the second by
/// gossip too: b, which hears only from a and runs no anti-entropy here, gets both (before
/// the fix a reported the waiting message `Ignore`, and b never got it by gossip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_that_waited_for_a_dependency_is_forwarded_once_stored() {
    let config = || NodeConfig {
        anti_entropy: Duration::from_secs(3600),
        ..NodeConfig::local()
    };
    let (a, b, addrs) = pair_with(config).await;
    let (root, g, chain) = chain_on(&a, &b, "waiting").await;
    // Two puts by the root, built on a private copy: the second's `prev` is the first.
    let mut local = copy_of(&a, chain, &g.encode()).await;
    let first = root.put_json(&local, "k", &serde_json::json!("one"), 0);
    let _ = local.handle(0, Input::Replay(vec![first.encode()]));
    let second = root.put_json(&local, "k", &serde_json::json!("two"), 0);
    assert_eq!(second.header.prev, Some(first.id));
    let (first_id, second_id) = (first.id, second.id);

    let (mut raw, topic) = raw_peer(chain, &addrs[0]);
    publish(&mut raw, &topic, bundle(&second)).await;
    // Let a hold it: the second put waits in a's replica for the first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "a never held the second put");
        let held = a.client().read(chain, |r| r.pending_len()).await.unwrap();
        if held == 1 {
            break;
        }
        tokio::select! {
            _ = raw.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    publish(&mut raw, &topic, bundle(&first)).await;
    let pump = tokio::spawn(async move {
        loop {
            raw.select_next_some().await;
        }
    });
    wait_async("b to get both puts", Duration::from_secs(20), || async {
        b.client()
            .read(chain, move |r| {
                r.contains(&first_id) && r.contains(&second_id)
            })
            .await
            .ok()?
            .then_some(())
    })
    .await;
    let (da, db) = (
        a.client().read(chain, |r| r.view().digest()).await.unwrap(),
        b.client().read(chain, |r| r.view().digest()).await.unwrap(),
    );
    assert_eq!(da, db);
    let rejected = a
        .client()
        .read(chain, |r| r.stats().rejected.clone())
        .await
        .unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    pump.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorised_gossip_is_rejected_and_not_forwarded() {
    let (a, b, addrs) = pair().await;
    let ca = a.client();
    let (root, g, chain) = chain_on(&a, &b, "attack").await;

    // The writer w is granted, then revoked, on node a.
    let w = Writer::new(SecretKey::from_seed([2; 32]));
    let gr = ca.read(chain, {
        let root = root.clone();
        let to = w.public();
        move |r| root.grant(r, to, "", Rights::Write, 0)
    });
    assert_eq!(submit(&a, chain, gr.await.unwrap()).await, Verdict::Valid);
    // A local copy of the chain where the grant is known but not the revocation: the
    // revoked writer builds its event there (a blind branch).
    let blind = copy_of(&a, chain, &g.encode()).await;
    let rv = ca.read(chain, {
        let root = root.clone();
        let who = w.public();
        move |r| root.revoke(r, who, "", 0)
    });
    assert_eq!(submit(&a, chain, rv.await.unwrap()).await, Verdict::Valid);
    // Writer w is refused through the API now.
    let after = ca.read(chain, {
        let w = w.clone();
        move |r| w.put_json(r, "k", &serde_json::json!("after"), 0)
    });
    assert!(matches!(
        submit(&a, chain, after.await.unwrap()).await,
        Verdict::Invalid(_)
    ));
    // Forged events: no grant at all, and the revoked writer on top of the revocation.
    let stranger = Writer::new(SecretKey::from_seed([3; 32]));
    let f1 = stranger.put_json(&blind, "k", &serde_json::json!("stranger"), 0);
    let current = copy_of(&a, chain, &g.encode()).await;
    let f2 = w.put_json(&current, "k", &serde_json::json!("revoked"), 0);
    let forged = [f1.id, f2.id];

    // The raw peer: plain gossipsub, connected to a only.
    let (mut raw, topic) = raw_peer(chain, &addrs[0]);
    publish(&mut raw, &topic, bundle(&f1)).await;
    publish(&mut raw, &topic, bundle(&f2)).await;
    // Keep the raw swarm polled while node a judges.
    let pump = tokio::spawn(async move {
        loop {
            raw.select_next_some().await;
        }
    });
    wait_async("node a to reject both", Duration::from_secs(20), || async {
        let n = a
            .client()
            .read(chain, |r| {
                r.stats()
                    .rejected
                    .get("not_authorized")
                    .copied()
                    .unwrap_or(0)
            })
            .await
            .ok()?;
        (n >= 3).then_some(())
    })
    .await;
    // A valid write after the forged ones reaches b; the forged ones never do.
    let ok = ca.read(chain, {
        let root = root.clone();
        move |r| root.put_json(r, "k", &serde_json::json!("root"), 0)
    });
    let ok = ok.await.unwrap();
    let ok_id = ok.id;
    assert_eq!(submit(&a, chain, ok).await, Verdict::Valid);
    wait_async(
        "b to receive the valid write",
        Duration::from_secs(20),
        || async {
            b.client()
                .read(chain, move |r| r.contains(&ok_id))
                .await
                .ok()?
                .then_some(())
        },
    )
    .await;
    let (contains, rejected) = b
        .client()
        .read(chain, move |r| {
            (
                forged.iter().any(|id| r.contains(id)),
                r.stats().rejected.clone(),
            )
        })
        .await
        .unwrap();
    assert!(!contains, "b must never store a forged event");
    assert!(
        rejected.is_empty(),
        "a must not forward forged events to b, but b rejected {rejected:?}"
    );
    let (da, db) = (
        a.client().read(chain, |r| r.view().digest()).await.unwrap(),
        b.client().read(chain, |r| r.view().digest()).await.unwrap(),
    );
    assert_eq!(da, db);
    pump.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_after_ten_thousand_events() {
    let a = Node::start(NodeConfig::local()).await.unwrap();
    let workload = generate(&Spec {
        events: 10_000,
        ..Spec::default()
    });
    let chain = a
        .client()
        .create_chain(workload.genesis.clone())
        .await
        .unwrap();
    let events: Vec<Event> = workload
        .events
        .iter()
        .map(|b| Event::decode(Some(&chain), b, &Params::default()).unwrap())
        .collect();
    for batch in events.chunks(256) {
        let v = a.client().submit(chain, batch.to_vec()).await.unwrap();
        assert!(v.iter().all(|v| *v == Verdict::Valid));
    }
    let addrs = listen_addrs(&a).await;
    let start = Instant::now();
    let b = Node::start(NodeConfig::local()).await.unwrap();
    b.client().dial(addrs).await;
    b.client().follow(chain).await.unwrap();
    let want = a.client().read(chain, |r| r.view().digest()).await.unwrap();
    wait_async(
        "the late joiner to catch up",
        Duration::from_secs(120),
        || async {
            let d = b
                .client()
                .read(chain, |r| (r.len(), r.view().digest()))
                .await
                .ok()?;
            (d.0 == 10_001 && d.1 == want).then_some(())
        },
    )
    .await;
    println!(
        "late joiner caught up on 10,000 events in {:?}",
        start.elapsed()
    );
}
