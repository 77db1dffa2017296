//! Arbitrary bytes fed to a replica as gossip, fetched events and sync messages: no panic, no
//! unbounded growth, nothing accepted that is not signed by an authorised author.
#![no_main]

use std::sync::OnceLock;

use ate_protocol::replica::{Config, Input, Replica, SyncMsg};
use ate_protocol::{PeerId, Writer, SecretKey, genesis};
use libfuzzer_sys::fuzz_target;

fn genesis_bytes() -> &'static Vec<u8> {
    static G: OnceLock<Vec<u8>> = OnceLock::new();
    G.get_or_init(|| genesis("fuzz", &SecretKey::from_seed([1; 32]), &[], Default::default(), 1, 0).encode())
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = Replica::new(genesis_bytes(), Config { max_pending_events: 64, ..Config::default() }) else {
        return;
    };
    // A valid event first, so fuzzed bytes can reference real parents.
    let w = Writer::new(SecretKey::from_seed([1; 32]));
    let ev = w.put_json(&r, "k", &ate_protocol::serde_json::json!(1), 0);
    let _ = r.handle(0, Input::local(ev));
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    for (i, p) in parts.iter().enumerate() {
        let input = match i % 4 {
            0 => Input::Gossip { from: PeerId(1), bytes: p.to_vec() },
            1 => Input::Fetched { from: PeerId(2), events: vec![p.to_vec()] },
            2 => match SyncMsg::decode(p) {
                Ok(msg) => Input::Sync { from: PeerId(3), msg },
                Err(_) => Input::Tick,
            },
            _ => Input::Tick,
        };
        let _ = r.handle(i as u64 * 1000, input);
    }
    assert_eq!(r.len(), 2, "fuzzed bytes cannot forge a root signature");
    assert!(r.pending_len() <= 64);
});
