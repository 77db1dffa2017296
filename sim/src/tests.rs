//! Scenario tests: determinism, safety under attack, convergence after a partition, and the
//! mesh's invariants. Each runs a small scenario in well under a few seconds (debug build).

use crate::scenario::Scenario;
use crate::vopr::run;
use crate::world::{Status, World};

fn scenario(name: &str, text: &str) -> Scenario {
    match Scenario::parse(name, text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn lan() -> Scenario {
    scenario("lan-20.toml", include_str!("../../scenarios/lan-20.toml"))
}

#[test]
fn same_seed_gives_a_byte_identical_report() {
    let sc = scenario(
        "byzantine.toml",
        include_str!("../../scenarios/byzantine.toml"),
    );
    let a = run(&sc, 5, &mut |_, _| {});
    let b = run(&sc, 5, &mut |_, _| {});
    let ja = serde_json::to_string_pretty(&a.report).unwrap();
    let jb = serde_json::to_string_pretty(&b.report).unwrap();
    assert_eq!(ja, jb);
    let c = run(&sc, 6, &mut |_, _| {});
    assert_ne!(ja, serde_json::to_string_pretty(&c.report).unwrap());
}

#[test]
fn byzantine_nodes_get_nothing_invalid_accepted() {
    let sc = scenario(
        "byzantine.toml",
        include_str!("../../scenarios/byzantine.toml"),
    );
    for seed in 1..=3 {
        let o = run(&sc, seed, &mut |_, _| {});
        let r = &o.report;
        assert!(o.passed, "seed {seed}: {:?}", r.violations);
        assert_eq!(r.invalid_accepted, 0);
        // The attacks really reached the replicas and were refused for the right reasons.
        for reason in ["bad_signature", "not_authorized", "decode"] {
            assert!(
                r.rejected.get(reason).copied().unwrap_or(0) > 0,
                "{reason}: {r:?}"
            );
        }
        assert!(r.injected.get("blind").copied().unwrap_or(0) > 0);
        assert!(r.equivocations_detected > 0);
    }
}

#[test]
fn a_healed_partition_converges() {
    let mut sc = scenario(
        "partition-heal.toml",
        include_str!("../../scenarios/partition-heal.toml"),
    );
    sc.nodes = 60;
    sc.workload.events = 120;
    let o = run(&sc, 2, &mut |_, _| {});
    assert!(o.passed, "{:?}", o.report.violations);
    // Events written during the split reached the other sides only after the heal (≥ 1 s late).
    assert!(o.report.delivery_latency_ms.max > 1000.0);
    assert_eq!(o.report.live_nodes, 60);
    assert!(o.report.liveness_converged_ms.is_some());
}

#[test]
fn churn_with_and_without_logs_converges() {
    let mut sc = scenario("churn.toml", include_str!("../../scenarios/churn.toml"));
    sc.nodes = 80;
    sc.workload.late_joiners = 5;
    for f in &mut sc.faults {
        if let crate::scenario::Fault::Crash { count, .. } = f {
            *count = 5;
        }
    }
    let o = run(&sc, 1, &mut |_, _| {});
    assert!(o.passed, "{:?}", o.report.violations);
}

#[test]
fn mesh_stays_symmetric_within_connections_and_near_degree() {
    let sc = lan();
    let mut w = World::new_world(sc.clone(), 9);
    w.plan();
    w.build();
    w.run_until(5_000_000);
    let g = &sc.gossip;
    let mut total = 0;
    for (a, n) in w.nodes.iter().enumerate() {
        assert_eq!(w.link[a].status, Status::Up);
        for &b in &n.mesh {
            assert!(
                n.peers.contains(&b),
                "mesh peer {b} of {a} is not connected"
            );
            assert!(w.nodes[b as usize].mesh.contains(&(a as u32)), "asymmetric");
        }
        assert!(n.mesh.len() <= g.d_high.max(n.peers.len()));
        total += n.mesh.len();
    }
    let mean = total as f64 / w.nodes.len() as f64;
    assert!(
        mean >= g.d_low as f64 && mean <= g.d_high as f64,
        "mean degree {mean}"
    );
}

#[test]
fn seen_cache_hands_each_gossip_message_to_a_replica_once() {
    let o = run(&lan(), 4, &mut |_, _| {});
    let r = &o.report;
    assert!(o.passed, "{:?}", r.violations);
    assert!(
        r.gossip_duplicates > 0,
        "a mesh of degree 6 must see duplicates"
    );
    // Each honest node accepted every event once: node-event pairs = (nodes) × (events − genesis).
    assert_eq!(
        r.delivery_latency_ms.count,
        (r.live_nodes * (r.reference_events - 1)) as u64
    );
}

#[test]
fn the_safety_checker_catches_an_invalid_event_in_a_store() {
    // Checking the checker: pretend an event the honest nodes hold had been built invalid.
    let mut w = World::new_world(lan(), 3);
    w.plan();
    w.build();
    w.run_until(3_000_000);
    w.full_check();
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    let i = w.msgs.len() - 1;
    w.msgs[i].class = crate::world::Class::Invalid;
    w.invalid_ids.insert(w.msgs[i].id);
    w.full_check();
    assert!(!w.violations.is_empty());
    assert!(
        w.violations[0].starts_with("safety: node"),
        "{:?}",
        w.violations
    );
}

#[test]
fn a_scenario_whose_writes_outlast_the_safety_phase_is_refused() {
    let text = include_str!("../../scenarios/lan-20.toml")
        .replace("safety_ms = 12000", "safety_ms = 3000");
    let err = Scenario::parse("lan.toml", &text).unwrap_err().to_string();
    assert!(err.contains("safety_ms"), "{err}");
}

#[test]
fn every_shipped_scenario_parses_and_validates() {
    let all = [
        ("lan-20", include_str!("../../scenarios/lan-20.toml")),
        ("wan-1k", include_str!("../../scenarios/wan-1k.toml")),
        (
            "wan-10k-loss1",
            include_str!("../../scenarios/wan-10k-loss1.toml"),
        ),
        (
            "partition-heal",
            include_str!("../../scenarios/partition-heal.toml"),
        ),
        ("churn", include_str!("../../scenarios/churn.toml")),
        ("byzantine", include_str!("../../scenarios/byzantine.toml")),
        ("shadow", include_str!("../../scenarios/shadow.toml")),
        (
            "scale-100k",
            include_str!("../../scenarios/scale-100k.toml"),
        ),
    ];
    for (name, text) in all {
        assert_eq!(scenario(name, text).name, name);
    }
}

#[test]
fn revoked_writers_blind_branches_are_stored_but_have_no_effect() {
    let sc = scenario(
        "byzantine.toml",
        include_str!("../../scenarios/byzantine.toml"),
    );
    let mut w = World::new_world(sc.clone(), 2);
    w.plan();
    w.build();
    w.run_until(sc.safety_ms * 1000);
    assert_eq!(w.actors.revokes.len(), 2);
    assert_eq!(w.actors.blind_grants.len(), 1);
    assert_eq!(w.actors.blind.len(), 10);
    // The root (node 0) is honest and saw everything by now.
    let r = w.nodes[0].replica.as_ref().unwrap();
    for rv in &w.actors.revokes {
        assert!(r.contains(rv));
    }
    for g in &w.actors.blind_grants {
        assert!(r.contains(g), "the puppet grant is valid, so stored");
        assert_eq!(
            r.admin_in_effect(g),
            Some(false),
            "but cut by the revocation"
        );
    }
    for b in &w.actors.blind {
        assert!(r.contains(b));
        assert_eq!(r.view().get_by_id(b).map(|v| v.effective), Some(false));
    }
}

#[test]
fn connections_reaching_nodes_minus_one_make_a_full_mesh() {
    let sc = lan();
    assert!(sc.network.connections + 1 >= sc.nodes);
    let mut w = World::new_world(sc.clone(), 3);
    w.plan();
    w.build();
    for (a, n) in w.nodes.iter().enumerate() {
        assert_eq!(n.peers.len(), sc.nodes - 1, "node {a}");
        assert!(!n.peers.contains(&(a as u32)));
    }
}

#[test]
fn node_costs_delay_puts_and_stay_deterministic() {
    let mut free = lan();
    free.node = Default::default();
    let quick = run(&free, 1, &mut |_, _| {});
    assert!(quick.passed, "{:?}", quick.report.violations);
    // Without costs a put reaches the first other node in one hop on the modelled LAN.
    let hop_ms = free.network.rtt_ms[0][0] / 2.0 + free.network.jitter_ms;
    assert!(quick.report.puts.first_ms.p50 <= hop_ms + 0.01);

    let mut costly = lan();
    costly.node.cpu_exponential = true;
    let a = run(&costly, 1, &mut |_, _| {});
    let b = run(&costly, 1, &mut |_, _| {});
    assert!(a.passed, "{:?}", a.report.violations);
    // The validation batch lingers, and validation takes CPU on a shared host.
    assert!(a.report.puts.first_ms.p50 >= costly.node.linger_ms);
    assert!(a.report.puts.delivery_ms.p99 > a.report.puts.delivery_ms.p50);
    assert!(a.report.puts.convergence_ms.p50 >= a.report.puts.delivery_ms.p50);
    let (ja, jb) = (
        serde_json::to_string(&a.report).unwrap(),
        serde_json::to_string(&b.report).unwrap(),
    );
    assert_eq!(ja, jb, "exponential CPU costs come from the seeded streams");
}

#[test]
fn replica_calls_on_two_threads_give_the_same_report() {
    let mut sc = scenario(
        "partition-heal.toml",
        include_str!("../../scenarios/partition-heal.toml"),
    );
    sc.nodes = 60;
    sc.workload.events = 120;
    let one = crate::vopr::run_threads(&sc, 4, 1, &mut |_, _| {});
    let two = crate::vopr::run_threads(&sc, 4, 2, &mut |_, _| {});
    assert!(one.passed, "{:?}", one.report.violations);
    assert_eq!(
        serde_json::to_string(&one.report).unwrap(),
        serde_json::to_string(&two.report).unwrap()
    );
}

#[test]
fn a_fairly_shared_host_ends_a_burst_together_and_work_after_acceptance_delays_nothing() {
    use crate::scenario::HostSharing;
    let mut fifo = lan();
    fifo.node.cpu_exponential = false;
    fifo.node.cpu_after_share = 0.0;
    fifo.node.host_sharing = HostSharing::Fifo;
    let mut fair = fifo.clone();
    fair.node.host_sharing = HostSharing::Fair;
    let puts = |sc: &Scenario| {
        let o = run(sc, 1, &mut |_, _| {});
        assert!(o.passed, "{:?}", o.report.violations);
        (o.report.puts.clone(), o.put_ranks_ms, o.report)
    };
    let (a, a_ranks, _) = puts(&fifo);
    let (b, b_ranks, b_report) = puts(&fair);
    // First come first served: receivers become visible one after another, evenly spaced.
    // Shared fairly, the burst's tasks run side by side: the first receiver is later, and
    // the receivers bunch up at the end, while the last one needs about the same total work.
    assert!(b.first_ms.p50 > a.first_ms.p50 + 1.0, "{b:?} vs {a:?}");
    assert!((b.convergence_ms.p50 / a.convergence_ms.p50 - 1.0).abs() < 0.1);
    let spread = |r: &[f64]| r[r.len() - 1] - r[r.len() / 2];
    assert!(
        spread(&b_ranks) < spread(&a_ranks) / 2.0,
        "{b_ranks:?} vs {a_ranks:?}"
    );
    // Deterministic.
    let (_, _, again) = puts(&fair);
    assert_eq!(
        serde_json::to_string(&b_report).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    // CPU spent after acceptance keeps the cores busy but delays no acceptance of its own.
    for mut sc in [fifo, fair] {
        let before = puts(&sc).0;
        sc.node.cpu_after_share = 1.0;
        let after = puts(&sc).0;
        assert!(
            after.convergence_ms.p50 < before.convergence_ms.p50 - 2.0,
            "{after:?} vs {before:?}"
        );
        // Only the linger, the timer tick and the messages' own CPU remain.
        assert!(after.delivery_ms.p50 < before.delivery_ms.p50);
    }
}
