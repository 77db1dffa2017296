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
