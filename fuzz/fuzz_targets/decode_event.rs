//! Event decoding and verification must never panic and must be canonical: whatever decodes
//! re-encodes to the same bytes, and a put compacted to its stub decodes as the same event.
#![no_main]

use ate_protocol::{ChainId, Event, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chain = ChainId([3; 32]);
    for ch in [None, Some(&chain)] {
        if let Ok(ev) = Event::decode(ch, data, &Params::default()) {
            assert_eq!(ev.encode(), data, "decoding is canonical");
            let _ = ev.verify();
            let _ = ev.put_head();
            // A put compacted to its stub still decodes, as the same event.
            if let Some(c) = ev.compacted() {
                let again = Event::decode(ch, &c.encode(), &Params::default());
                assert_eq!(again.map(|e| e.id).ok(), Some(ev.id), "a stub decodes");
            }
        }
    }
});
