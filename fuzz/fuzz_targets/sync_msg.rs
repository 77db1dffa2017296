//! The sync message decoder: no panic, bounded, canonical.
#![no_main]

use ate_protocol::replica::SyncMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = SyncMsg::decode(data) {
        let again = msg.encode();
        assert!(again.len() <= data.len(), "re-encoding is never longer than the input");
    }
});
