//! Reconciliation messages from a hostile peer: the decoder is bounded and canonical, and a
//! session fed any sequence of messages never panics, keeps its memory bounded, and reports
//! no more missing ids than the messages named.
#![no_main]

use std::sync::OnceLock;

use ate_protocol::EventId;
use ate_protocol::reconcile::{ReconConfig, ReconIndex, ReconMsg, Session};
use libfuzzer_sys::fuzz_target;

fn index() -> &'static ReconIndex {
    static INDEX: OnceLock<ReconIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut ix = ReconIndex::new();
        for i in 0u64..2_000 {
            ix.insert(i / 3, pseudo_id(i));
        }
        ix
    })
}

/// Ids that look random (splitmix64; the fuzz crate has no hash of its own).
fn pseudo_id(i: u64) -> EventId {
    let mut out = [0u8; 32];
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    for chunk in out.chunks_exact_mut(8) {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(x ^ (x >> 31)).to_le_bytes());
    }
    EventId(out)
}

fn config() -> ReconConfig {
    ReconConfig {
        max_msg_bytes: 16 << 10,
        max_rounds: 16,
        ..ReconConfig::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = config();
    let ix = index();
    // Messages are length-prefixed (u16, little-endian) so one input drives several rounds.
    let mut rest = data;
    let mut responder: Option<Session> = None;
    let (mut initiator, _) = Session::initiate(ix, &cfg, [9; 16], 0);
    let mut now = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (chunk, tail) = rest[2..].split_at(len);
        rest = tail;
        now += 1;
        let Ok(msg) = ReconMsg::decode(chunk, cfg.max_msg_bytes) else {
            continue;
        };
        let again = msg.encode();
        assert!(
            again.len() <= chunk.len(),
            "re-encoding is never longer than the input"
        );
        assert_eq!(again.len(), msg.encoded_len());
        let named: usize = msg
            .ranges()
            .iter()
            .map(|r| match &r.payload {
                ate_protocol::reconcile::Payload::Ids(ids) => ids.len(),
                _ => 0,
            })
            .sum();
        let step = match responder.as_mut() {
            None => Session::respond(ix, &cfg, msg.clone(), now).map(|(s, step)| {
                responder = Some(s);
                step
            }),
            Some(s) => s.handle(ix, msg.clone(), now),
        };
        if let Ok(step) = step {
            assert!(step.we_lack.len() <= named);
            if let Some(reply) = &step.reply {
                assert!(reply.encoded_len() <= cfg.max_msg_bytes);
            }
        }
        if let Ok(step) = initiator.handle(ix, msg, now) {
            assert!(step.we_lack.len() <= named);
            if let Some(reply) = &step.reply {
                assert!(reply.encoded_len() <= cfg.max_msg_bytes);
            }
        }
        assert!(initiator.heap_bytes() <= cfg.max_msg_bytes);
        if let Some(s) = &responder {
            assert!(s.heap_bytes() <= cfg.max_msg_bytes);
        }
    }
});
