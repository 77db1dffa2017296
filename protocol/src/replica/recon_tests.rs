//! Two replicas reconciling over an in-memory FIFO network.

use std::collections::VecDeque;
use std::sync::Arc;

use super::super::*;
use crate::workload::{Generated, Spec, generate};

/// A's name for B, and B's for A.
const B: PeerId = PeerId(2);
const A: PeerId = PeerId(1);

fn chain(events: usize) -> Generated {
    generate(&Spec {
        events,
        writers: 4,
        keys: 200,
        value_bytes: 40,
        seed: 7,
        root_acks: false,
    })
}

fn replica(g: &Generated, first: usize, config: Config) -> Replica {
    let mut r = Replica::new(&g.genesis, config).unwrap();
    for chunk in g.events[..first].chunks(512) {
        let _ = r.handle(0, Input::Replay(chunk.to_vec()));
    }
    assert_eq!(r.len(), first + 1);
    r
}

/// Messages in flight: (to A?, message).
#[derive(Default)]
struct Net {
    queue: VecDeque<(bool, SyncMsg)>,
    delivered: usize,
}

impl Net {
    fn collect(&mut self, from_a: bool, outputs: Vec<Output>) {
        for o in outputs {
            if let Output::Send { msg, .. } = o {
                self.queue.push_back((!from_a, msg));
            }
        }
    }

    /// Delivers up to `max` messages.
    fn run(&mut self, a: &mut Replica, b: &mut Replica, max: usize) {
        for _ in 0..max {
            let Some((to_a, msg)) = self.queue.pop_front() else {
                return;
            };
            self.delivered += 1;
            if to_a {
                let out = a.handle(1, Input::Sync { from: B, msg });
                self.collect(true, out);
            } else {
                let out = b.handle(1, Input::Sync { from: A, msg });
                self.collect(false, out);
            }
        }
    }
}

fn small_batches() -> Config {
    Config {
        sync_batch_events: 300,
        ..Config::default()
    }
}

#[test]
fn replicas_in_sync_exchange_one_round_trip() {
    let g = chain(3000);
    let mut a = replica(&g, 3000, Config::default());
    let mut b = replica(&g, 3000, Config::default());
    let mut net = Net::default();
    net.collect(true, a.handle(1, Input::PeerUp(B)));
    net.run(&mut a, &mut b, 100);
    let (sa, sb) = (a.sync_stats(), b.sync_stats());
    assert_eq!((sa.msgs_sent, sb.msgs_sent), (1, 1), "one message each way");
    assert_eq!(net.delivered, 2);
    assert!(sa.bytes_sent + sb.bytes_sent <= 100, "{sa:?} {sb:?}");
    assert_eq!((sa.sessions_done, sb.sessions_done), (1, 1));
    assert!(a.sync_peers().is_empty() && b.sync_peers().is_empty());
}

#[test]
fn late_joiner_gets_every_event_once_in_bounded_batches() {
    let g = chain(4000);
    let mut a = replica(&g, 4000, small_batches());
    let mut b = replica(&g, 0, small_batches());
    let mut net = Net::default();
    // Both ends start a session (both see the other come up): each event still goes once.
    net.collect(true, a.handle(1, Input::PeerUp(B)));
    net.collect(false, b.handle(1, Input::PeerUp(A)));
    let mut max_in_flight = 0;
    while !net.queue.is_empty() {
        let batches = net
            .queue
            .iter()
            .filter(|(_, m)| matches!(m, SyncMsg::Events { .. }))
            .count();
        max_in_flight = max_in_flight.max(batches);
        net.run(&mut a, &mut b, 1);
    }
    assert_eq!(b.len(), a.len());
    assert_eq!(a.view().digest(), b.view().digest());
    let sa = a.sync_stats();
    assert_eq!(sa.events_streamed, 4000, "{sa:?}");
    assert_eq!(sa.batches_streamed, 4000_u64.div_ceil(300));
    assert_eq!(max_in_flight, 1, "one batch in flight per peer");
    assert_eq!(b.stats().duplicates, 0);
    assert!(a.sync_peers().is_empty() && b.sync_peers().is_empty());
}

#[test]
fn a_tail_difference_goes_both_ways_and_the_next_session_is_one_round_trip() {
    let g = chain(3000);
    let mut a = replica(&g, 3000, Config::default());
    let mut b = replica(&g, 2990, Config::default());
    let mut net = Net::default();
    // B, the one behind, starts: the ten it lacks come as a stream or by GetEvents.
    net.collect(false, b.handle(1, Input::PeerUp(A)));
    net.run(&mut a, &mut b, 1000);
    assert_eq!(b.len(), a.len());
    let bytes = |r: &Replica| r.sync_stats().bytes_sent;
    assert!(bytes(&a) + bytes(&b) < 3000, "{} {}", bytes(&a), bytes(&b));
    let before = (a.sync_stats().msgs_sent, b.sync_stats().msgs_sent);
    net.collect(true, a.handle(2, Input::Reconcile(B)));
    net.run(&mut a, &mut b, 1000);
    assert_eq!(
        (a.sync_stats().msgs_sent, b.sync_stats().msgs_sent),
        (before.0 + 1, before.1 + 1)
    );
}

#[test]
fn a_dropped_connection_forgets_the_peer_and_a_new_session_resumes() {
    let g = chain(3000);
    let mut a = replica(&g, 3000, small_batches());
    let mut b = replica(&g, 0, small_batches());
    let mut net = Net::default();
    net.collect(false, b.handle(1, Input::PeerUp(A)));
    net.run(&mut a, &mut b, 5);
    let got = b.len();
    assert!(got > 1 && got < a.len(), "part way: {got}");
    assert!(!a.sync_peers().is_empty());
    // The connection drops: in-flight messages are lost, both ends forget the other.
    net.queue.clear();
    let _ = a.handle(2, Input::PeerDown(B));
    let _ = b.handle(2, Input::PeerDown(A));
    assert!(a.sync_peers().is_empty() && b.sync_peers().is_empty());
    net.collect(false, b.handle(3, Input::PeerUp(A)));
    net.run(&mut a, &mut b, 1000);
    assert_eq!(b.len(), a.len());
    // Only what was missing was sent again.
    let streamed = a.sync_stats().events_streamed;
    assert!(streamed < 3000 + 2 * 300, "{streamed}");
}

#[test]
fn sessions_expire_on_tick_and_a_stalled_stream_is_resent() {
    let g = chain(2000);
    let cfg = small_batches();
    let idle = cfg.recon.idle_timeout_ms;
    let mut a = replica(&g, 2000, cfg.clone());
    let mut b = replica(&g, 0, cfg);
    let mut net = Net::default();
    net.collect(false, b.handle(0, Input::PeerUp(A)));
    // Deliver the Open to A and A's answer (reply + first batch) to B, but lose B's `More`.
    net.run(&mut a, &mut b, 1);
    net.run(&mut a, &mut b, 2);
    net.queue
        .retain(|(to_a, m)| !(*to_a && matches!(m, SyncMsg::More)));
    // Long after: A's session state is gone, its stream is resent, and B catches up.
    let out = a.handle(idle + 10, Input::Tick);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: SyncMsg::Events { .. },
            ..
        }
    )));
    net.collect(true, out);
    net.run(&mut a, &mut b, 1000);
    assert_eq!(b.len(), a.len());
    let _ = b.handle(3 * idle, Input::Tick);
    assert!(b.sync_peers().is_empty());
}

#[test]
fn an_unanswered_session_expires_and_frees_the_peer() {
    let g = chain(100);
    let mut a = replica(&g, 100, Config::default());
    let _ = a.handle(0, Input::PeerUp(B));
    assert_eq!(a.sync_peers().len(), 1);
    let idle = Config::default().recon.idle_timeout_ms;
    let _ = a.handle(idle + 1, Input::Tick);
    assert!(a.sync_peers().is_empty());
    assert_eq!(a.sync_stats().sessions_failed, 1);
}

#[test]
fn a_restored_replica_rebuilds_its_index() {
    let g = chain(2000);
    let a = replica(&g, 2000, Config::default());
    let mut b = replica(&g, 2000, Config::default());
    let checker: Arc<dyn crate::verify::SignatureCheck> = Arc::new(crate::verify::Ed25519Batch);
    let mut a = Replica::restore(&g.genesis, &a.snapshot(), Config::default(), checker).unwrap();
    let mut net = Net::default();
    net.collect(true, a.handle(1, Input::PeerUp(B)));
    net.run(&mut a, &mut b, 100);
    assert_eq!(net.delivered, 2, "in sync after restore: one round trip");
}

#[test]
fn a_peer_message_over_the_limit_is_refused() {
    let g = chain(10);
    let mut a = replica(&g, 10, Config::default());
    let big = crate::reconcile::ReconMsg::Reply {
        round: 1,
        ranges: vec![
            crate::reconcile::WireRange {
                upper: crate::reconcile::WireBound::End,
                payload: crate::reconcile::Payload::Skip,
            };
            Config::default().recon.max_msg_bytes
        ],
    };
    let _ = a.handle(0, Input::PeerUp(B));
    let out = a.handle(
        1,
        Input::Sync {
            from: B,
            msg: SyncMsg::Recon(big),
        },
    );
    assert!(out.is_empty());
    assert!(a.sync_peers().is_empty(), "the session was dropped");
}
