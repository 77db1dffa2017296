//! The facade crate as an application uses it: two in-process replicas of one chain exchange
//! events through the sans-IO interface and converge. (Multi-process tests with real `ate`
//! nodes join this folder with the node.)

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ate::prelude::*;

fn deliver(to: &mut Replica, outputs: Vec<Output>) -> Vec<Output> {
    let mut replies = Vec::new();
    for o in outputs {
        if let Output::Publish(bytes) = o {
            replies.extend(to.handle(
                0,
                Input::Gossip {
                    from: PeerId(1),
                    bytes,
                },
            ));
        }
    }
    replies
}

#[test]
fn two_replicas_converge_through_gossip() {
    let root = SecretKey::from_seed([1; 32]);
    let g = genesis("facade", &root, &[], Default::default(), 1, 0).encode();
    let mut a = Replica::new(&g, Config::default()).unwrap();
    let mut b = Replica::new(&g, Config::default()).unwrap();
    let w = Writer::new(root);
    for i in 0..20 {
        let ev = w.put_json(&a, &format!("k{}", i % 4), &serde_json::json!(i), 0);
        let out = a.handle(0, Input::local(ev));
        let replies = deliver(&mut b, out);
        assert!(replies.iter().any(|o| matches!(
            o,
            Output::Verdict {
                verdict: Verdict::Valid,
                ..
            }
        )));
    }
    assert_eq!(a.view().digest(), b.view().digest());
    assert_eq!(
        b.view().get_latest("k3").unwrap().value,
        Some(serde_json::json!(19))
    );
    let evens = Condition::parse("$seq >= 4").unwrap();
    assert_eq!(b.view().select(&evens, None, None).len(), 4);
}

/// Sealed values and root rotation through the facade, on an in-process node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_and_rotation_through_the_facade() {
    use serde_json::json;
    let node = ate::Node::start(ate::NodeConfig::local()).await.unwrap();
    let (root, next) = (ate::random_key().unwrap(), ate::random_key().unwrap());
    let commit = ate::protocol::next_key_commitment(&next.public());
    let admin = ate::Chain::create_rotatable(&node, "sealed", root, commit)
        .await
        .unwrap()
        .with_reader(ate::random_reader().unwrap());
    let bob = ate::Chain::follow(&node, admin.id(), ate::random_key().unwrap())
        .await
        .unwrap()
        .with_reader(ate::random_reader().unwrap());
    let eve = ate::Chain::follow(&node, admin.id(), ate::random_key().unwrap())
        .await
        .unwrap()
        .with_reader(ate::random_reader().unwrap());
    admin.share(&bob.reader().unwrap(), "docs/").await.unwrap();
    admin
        .put_sealed("docs/plan", json!({"v": 1}), "docs/")
        .await
        .unwrap();
    let seen = bob.get_opened("docs/plan").await.unwrap().unwrap();
    assert_eq!(seen.value, Some(json!({"v": 1})));
    // Not a reader: sealed, not an error; the node's own view is the same.
    let other = eve.get_opened("docs/plan").await.unwrap().unwrap();
    assert_eq!((other.value, other.sealed.unwrap().opened), (None, false));
    assert_eq!(admin.get("docs/plan").await.unwrap().unwrap().value, None);
    // Unshare: bob keeps the old value, not the new one.
    let bob_id = bob.reader().unwrap().id;
    admin.unshare(&bob_id, "docs/").await.unwrap();
    admin
        .put_sealed("docs/plan", json!({"v": 2}), "docs/")
        .await
        .unwrap();
    let now = bob.get_opened("docs/plan").await.unwrap().unwrap();
    assert_eq!((now.value, now.sealed.unwrap().epoch), (None, 1));
    assert!(matches!(
        bob.put_sealed("docs/x", json!(0), "docs/").await,
        Err(ate::Error::NoReadKey(_))
    ));
    // Rotation: the new key is root, the old one no longer.
    let after = ate::protocol::next_key_commitment(&ate::random_key().unwrap().public());
    admin.rotate(next.public(), after).await.unwrap();
    assert!(matches!(
        admin.put("k", json!(1)).await,
        Err(ate::Error::Refused(_))
    ));
    let new_root = ate::Chain::follow(&node, admin.id(), next).await.unwrap();
    new_root.put("k", json!(2)).await.unwrap();
    assert_eq!(
        new_root.get("k").await.unwrap().unwrap().value,
        Some(json!(2))
    );
}
