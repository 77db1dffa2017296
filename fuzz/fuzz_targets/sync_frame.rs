//! The node's `/ate/sync/1` frames (`node/src/wire/frame.rs`, included by path: it is pure,
//! and depending on `ate-node` would pull libp2p and tokio into every fuzz build): whatever
//! the bytes, reading a frame and decoding a request or response is a typed error or a
//! message that encodes and decodes back to the same bytes — never a panic, and never an
//! allocation bigger than the bytes that came.
#![no_main]

#[path = "../../node/src/wire/frame.rs"]
mod frame;

use libfuzzer_sys::fuzz_target;

fn round_trip<M: serde::Serialize + for<'a> serde::Deserialize<'a>>(bytes: &[u8]) {
    if let Ok(m) = frame::decode::<M>(bytes) {
        let once = frame::encode(&m).expect("a decoded message encodes");
        let back: M = frame::decode(&once).expect("an encoded message decodes");
        assert_eq!(frame::encode(&back).expect("encodes again"), once);
    }
}

fuzz_target!(|data: &[u8]| {
    // As framed on the wire: a length header, then the message.
    let mut io = futures::io::Cursor::new(data);
    if let Ok(body) = futures::executor::block_on(frame::read_frame(&mut io)) {
        assert!(body.len() <= frame::MAX_FRAME_BYTES);
        let mut again = Vec::new();
        futures::executor::block_on(frame::write_frame(&mut again, &body))
            .expect("a frame that was read can be written");
        let mut io = futures::io::Cursor::new(again);
        let back = futures::executor::block_on(frame::read_frame(&mut io)).expect("reads back");
        assert_eq!(back, body);
        round_trip::<frame::SyncRequest>(&body);
        round_trip::<frame::SyncResponse>(&body);
    }
    // And the message bytes alone.
    round_trip::<frame::SyncRequest>(data);
    round_trip::<frame::SyncResponse>(data);
});
