//! Gossip payloads: a bundle of event envelopes.
//!
//! One gossip message carries the events one replica call published (a local write batch),
//! up to [`MAX_BUNDLE_EVENTS`] envelopes and [`MAX_BUNDLE_BYTES`]. Measured on the 2-core
//! machine: with one event per gossipsub message, `ate bench replicate` spent more CPU in
//! per-message work (allocation, timers, syscalls, caches) than in verifying signatures;
//! bundling pays that once per batch. A single write is a bundle of one, so latency is
//! unchanged. The framing is the sync protocol's `Events` message (postcard, size-limited,
//! fuzzed as `sync_msg`), so there is no second decoder.

use ate_protocol::replica::SyncMsg;

/// Most envelopes in one gossip message.
pub(crate) const MAX_BUNDLE_EVENTS: usize = 256;
/// A bundle is closed once it holds this many envelope bytes (a single larger event still
/// travels alone; gossipsub's limit is the hard event cap plus slack).
pub(crate) const MAX_BUNDLE_BYTES: usize = 512 * 1024;

/// Splits envelopes into bundles within the limits and encodes each.
pub(crate) fn encode_all(events: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for ev in events {
        if !cur.is_empty()
            && (cur.len() >= MAX_BUNDLE_EVENTS || bytes + ev.len() > MAX_BUNDLE_BYTES)
        {
            out.push(encode(std::mem::take(&mut cur)));
            bytes = 0;
        }
        bytes += ev.len();
        cur.push(ev);
    }
    if !cur.is_empty() {
        out.push(encode(cur));
    }
    out
}

fn encode(events: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMsg::Events {
        events,
        more: false,
    }
    .encode()
}

/// Why a gossip payload is not a bundle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BundleError {
    /// Not a postcard `Events` message.
    #[error("gossip payload does not decode: {0}")]
    Malformed(String),
    /// Decoded, but not a bundle (another message kind, `more` set, empty).
    #[error("gossip payload is not an event bundle")]
    NotABundle,
    /// More envelopes than a bundle may hold.
    #[error("gossip bundle holds {0} events, over the limit of {MAX_BUNDLE_EVENTS}")]
    TooMany(usize),
}

/// Decodes a gossip payload into its envelopes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    match SyncMsg::decode(bytes) {
        Ok(SyncMsg::Events {
            events,
            more: false,
        }) if !events.is_empty() => {
            if events.len() > MAX_BUNDLE_EVENTS {
                Err(BundleError::TooMany(events.len()))
            } else {
                Ok(events)
            }
        }
        Ok(_) => Err(BundleError::NotABundle),
        Err(e) => Err(BundleError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_respect_both_limits_and_round_trip() {
        let events: Vec<Vec<u8>> = (0..600u32).map(|i| vec![i as u8; 100]).collect();
        let bundles = encode_all(events.clone());
        assert_eq!(bundles.len(), 3, "600 small events → 256 + 256 + 88");
        let back: Vec<Vec<u8>> = bundles.iter().flat_map(|b| decode(b).unwrap()).collect();
        assert_eq!(back, events);

        let big: Vec<Vec<u8>> = (0..5).map(|_| vec![7u8; 300 * 1024]).collect();
        let bundles = encode_all(big.clone());
        assert_eq!(
            bundles.len(),
            5,
            "300 KiB events do not share a 512 KiB bundle"
        );
        assert!(encode_all(Vec::new()).is_empty());
    }

    #[test]
    fn garbage_and_other_messages_are_typed_errors() {
        assert!(matches!(decode(&[0xff; 9]), Err(BundleError::Malformed(_))));
        let heads = SyncMsg::Heads { heads: Vec::new() }.encode();
        assert_eq!(decode(&heads), Err(BundleError::NotABundle));
        let empty = SyncMsg::Events {
            events: Vec::new(),
            more: false,
        }
        .encode();
        assert_eq!(decode(&empty), Err(BundleError::NotABundle));
        let too_many = SyncMsg::Events {
            events: vec![vec![1]; MAX_BUNDLE_EVENTS + 1],
            more: false,
        }
        .encode();
        assert_eq!(
            decode(&too_many),
            Err(BundleError::TooMany(MAX_BUNDLE_EVENTS + 1))
        );
    }
}
