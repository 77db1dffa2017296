//! Wire sizes without encoding: postcard's layout of [`SyncMsg`] computed from lengths, so
//! the simulator does not serialize megabytes just to count them (a test pins it to
//! `SyncMsg::encode`).

use ate_protocol::SyncMsg;

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// `SyncMsg::encode().len()`, computed.
pub(crate) fn sync_size(m: &SyncMsg) -> usize {
    match m {
        SyncMsg::Heads { heads: ids } | SyncMsg::GetEvents { ids } => {
            1 + varint_len(ids.len()) + 32 * ids.len()
        }
        SyncMsg::Events { events, .. } => {
            1 + varint_len(events.len())
                + events
                    .iter()
                    .map(|e| varint_len(e.len()) + e.len())
                    .sum::<usize>()
                + 1
        }
        // A message kind added to the protocol later: encode it (exact, just slower).
        #[allow(unreachable_patterns)]
        _ => m.encode().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ate_protocol::EventId;

    #[test]
    fn computed_size_matches_postcard() {
        let msgs = [
            SyncMsg::Heads {
                heads: vec![EventId([7; 32]); 3],
            },
            SyncMsg::GetEvents {
                ids: vec![EventId([1; 32]); 200],
            },
            SyncMsg::Events {
                events: vec![vec![1; 10], vec![2; 300], vec![]],
                more: true,
            },
        ];
        for m in &msgs {
            assert_eq!(sync_size(m), m.encode().len(), "{m:?}");
        }
    }
}
