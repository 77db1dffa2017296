//! `ate demo`: three replicas of one chain in this process, wired by an in-memory network.
//!
//! It shows the protocol core doing its job without any networking: a root creates a chain
//! and grants two writers; all three write concurrently (some to the same keys); the replicas
//! gossip and sync through queues; at the end every replica holds the same events and the
//! same view digest. The real multi-process mesh is `ate node run` (coming with the node).

use std::collections::VecDeque;

use anyhow::ensure;
use ate_protocol::replica::{Config, Input, Output, Replica};
use ate_protocol::{PeerId, PutValue, Rights, SecretKey, Writer, genesis};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Writes per replica.
    #[arg(long, default_value_t = 10)]
    writes: usize,
}

type Msg = (usize, usize, Input);

fn route(from: usize, outs: Vec<Output>, queue: &mut VecDeque<Msg>, n: usize) {
    for o in outs {
        match o {
            Output::Publish(bytes) => {
                for to in (0..n).filter(|&t| t != from) {
                    queue.push_back((
                        from,
                        to,
                        Input::Gossip {
                            from: PeerId(from as u64),
                            bytes: bytes.clone(),
                        },
                    ));
                }
            }
            Output::Send { to, msg } => {
                queue.push_back((
                    from,
                    to.0 as usize,
                    Input::Sync {
                        from: PeerId(from as u64),
                        msg,
                    },
                ));
            }
            _ => {}
        }
    }
}

pub(crate) fn run(a: &DemoArgs) -> anyhow::Result<()> {
    let keys: Vec<SecretKey> = (1..=3u8).map(|i| SecretKey::from_seed([i; 32])).collect();
    let g = genesis("demo", &keys[0], &[], Default::default(), 7, 0);
    println!(
        "chain {} created by root {}",
        ate_protocol::ChainId(g.id.0),
        keys[0].public()
    );
    let gbytes = g.encode();
    let mut nodes: Vec<Replica> = (0..3)
        .map(|_| Replica::new(&gbytes, Config::default()))
        .collect::<Result<_, _>>()?;
    let writers: Vec<Writer> = keys.iter().cloned().map(Writer::new).collect();
    let mut queue: VecDeque<Msg> = VecDeque::new();
    let mut now = 0;
    for w in &writers[1..] {
        let ev = writers[0].grant(&nodes[0], w.public(), "", Rights::Write, now);
        let out = nodes[0].handle(now, Input::local(ev));
        route(0, out, &mut queue, 3);
        println!("root grants Write on \"\" to {}", w.public().short());
    }
    // Let the grants spread before the writers write.
    drain(&mut nodes, &mut queue, &mut now);
    for i in 0..a.writes {
        for (n, w) in writers.iter().enumerate() {
            let key = format!("shared/{}", i % 3);
            let value = serde_json::json!({ "writer": n, "i": i });
            let ev = w.put(&nodes[n], &key, PutValue::Json(value.to_string()), now);
            let out = nodes[n].handle(now, Input::local(ev));
            route(n, out, &mut queue, 3);
        }
        // Deliver only some messages between rounds, so writes are concurrent.
        for _ in 0..queue.len() / 2 {
            step(&mut nodes, &mut queue, &mut now);
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        let heads = node.heads();
        for to in (0..3).filter(|&t| t != n) {
            queue.push_back((
                n,
                to,
                Input::Sync {
                    from: PeerId(n as u64),
                    msg: ate_protocol::SyncMsg::Heads {
                        heads: heads.clone(),
                    },
                },
            ));
        }
    }
    drain(&mut nodes, &mut queue, &mut now);
    for (n, r) in nodes.iter().enumerate() {
        println!(
            "replica {n}: {} events, view digest {}",
            r.len(),
            &r.view().digest_hex()[..16]
        );
    }
    for k in 0..3 {
        let key = format!("shared/{k}");
        if let Some(v) = nodes[0].view().get_latest(&key) {
            println!(
                "{key} = {} (seq {}, conflict: {})",
                v.value.unwrap_or_default(),
                v.seq,
                v.conflict
            );
        }
    }
    let d0 = nodes[0].view().digest();
    ensure!(
        nodes
            .iter()
            .all(|r| r.view().digest() == d0 && r.len() == nodes[0].len()),
        "replicas did not converge"
    );
    println!("all three replicas converged");
    Ok(())
}

fn step(nodes: &mut [Replica], queue: &mut VecDeque<Msg>, now: &mut u64) {
    if let Some((_from, to, input)) = queue.pop_front() {
        *now += 1;
        let out = nodes[to].handle(*now, input);
        route(to, out, queue, nodes.len());
    }
}

fn drain(nodes: &mut [Replica], queue: &mut VecDeque<Msg>, now: &mut u64) {
    let mut budget = 1_000_000;
    while !queue.is_empty() && budget > 0 {
        step(nodes, queue, now);
        budget -= 1;
    }
}
