//! Snapshot restore: whatever the bytes — a damaged file, or content behind a checksum that
//! matches — restoring is an error or a usable replica, never a panic.
//!
//! The first byte picks a mode: 0 restores the bytes as a whole snapshot (header and
//! checksum path); 1 treats them as snapshot content without a checksum; 2 reads them as
//! edits (4-byte offset, 1-byte value) to the content of a real snapshot, which reaches deep
//! into the decoder that random bytes would not.
#![no_main]

use std::sync::{Arc, OnceLock};

use ate_protocol::replica::{Config, Input, Replica, SyncMsg};
use ate_protocol::serde_json::json;
use ate_protocol::verify::Ed25519Batch;
use ate_protocol::{ChainId, Event, PeerId, Rights, SecretKey, Writer, genesis};
use libfuzzer_sys::fuzz_target;

const HEADER_BYTES: usize = 128;

struct Base {
    genesis: Vec<u8>,
    chain: ChainId,
    content: Vec<u8>,
    next: Event,
}

/// A small chain with a grant, several versions, a revocation and a compaction, snapshotted.
fn base() -> &'static Base {
    static B: OnceLock<Base> = OnceLock::new();
    B.get_or_init(|| {
        let root = Writer::new(SecretKey::from_seed([1; 32]));
        let w = Writer::new(SecretKey::from_seed([2; 32]));
        let g = genesis(
            "fuzz",
            &SecretKey::from_seed([1; 32]),
            &[],
            Default::default(),
            1,
            0,
        );
        let genesis = g.encode();
        let mut r = Replica::new(&genesis, Config::default()).expect("valid genesis");
        let ev = root.grant(&r, w.public(), "", Rights::Write, 0);
        let _ = r.handle(0, Input::local(ev));
        for i in 0..4 {
            let ev = w.put_json(&r, "a", &json!(i), 0);
            let _ = r.handle(0, Input::local(ev));
            let ev = root.put_json(&r, "b", &json!(i), 0);
            let _ = r.handle(0, Input::local(ev));
        }
        let ev = root.revoke(&r, w.public(), "", 0);
        let _ = r.handle(0, Input::local(ev));
        let _ = r.compact();
        let next = root.put_json(&r, "a", &json!("next"), 0);
        let snap = r.snapshot();
        Base {
            genesis,
            chain: r.chain(),
            content: snap[HEADER_BYTES..].to_vec(),
            next,
        }
    })
}

/// Uses a restored replica the way a node would; none of it may panic.
fn exercise(b: &Base, mut r: Replica) {
    let digest = r.view().digest();
    let again = Replica::restore(
        &b.genesis,
        &r.snapshot(),
        Config::default(),
        Arc::new(Ed25519Batch),
    )
    .expect("a replica's own snapshot restores");
    assert_eq!(again.view().digest(), digest);
    let _ = r.view().get_latest("a");
    let _ = r.view().history("b");
    let _ = r.author_head(&b.next.header.author);
    let _ = r.handle(
        0,
        Input::Sync {
            from: PeerId(1),
            msg: SyncMsg::Heads { heads: Vec::new() },
        },
    );
    let _ = r.handle(0, Input::local(b.next.clone()));
    let _ = r.compact();
    let _ = r.envelopes_in_order().count();
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let result = match mode % 3 {
        0 => Replica::restore(&b.genesis, rest, Config::default(), Arc::new(Ed25519Batch)),
        1 => Replica::restore_unchecked(&b.genesis, b.chain, rest, Config::default()),
        _ => {
            let mut content = b.content.clone();
            for edit in rest.chunks_exact(5) {
                let at = u32::from_le_bytes([edit[0], edit[1], edit[2], edit[3]]) as usize;
                let len = content.len();
                content[at % len] = edit[4];
            }
            Replica::restore_unchecked(&b.genesis, b.chain, &content, Config::default())
        }
    };
    if let Ok(r) = result {
        exercise(b, r);
    }
});
