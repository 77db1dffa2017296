//! The reconciliation messages as they travel (postcard), and their checked decoding.
//!
//! A message is a list of ranges that together cover the whole order from [`Bound::MIN`]:
//! each range carries only its *upper* bound, its lower bound being the previous range's
//! upper bound. Ranges after the last one listed are implicitly `Skip`. Clocks are sent as
//! deltas from the previous bound (and id lists as deltas from the range's lower bound, then
//! from the previous item), so most bounds cost 2–4 bytes.

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use super::key::{Bound, ReconKey, prefix_len};
use crate::ids::EventId;

/// One reconciliation message (sent over `/ate/sync/1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconMsg {
    /// Opens a session (round 0, from the initiator).
    Open {
        /// The initiator's fresh random nonce: the session's fingerprint key derives from it.
        nonce: [u8; 16],
        /// The first ranges (usually one fingerprint over everything).
        ranges: Vec<WireRange>,
    },
    /// A later round: odd rounds come from the responder, even ones from the initiator.
    Reply {
        /// The round number (1, 2, …).
        round: u32,
        /// The ranges; none means "nothing left to compare".
        ranges: Vec<WireRange>,
    },
}

/// A range: its upper bound and what the sender says about its own items in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    /// The exclusive upper bound.
    pub upper: WireBound,
    /// The payload.
    pub payload: Payload,
}

/// An upper bound on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireBound {
    /// After every item (only the last range may end here).
    End,
    /// `(clock, id_prefix ‖ zeros)`.
    At {
        /// The clock minus the previous bound's clock in this message (0 for the first).
        clock_delta: u64,
        /// The significant bytes of the id (at most 32; the rest are zeros).
        id_prefix: Vec<u8>,
    },
}

/// What a range says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Nothing to do here.
    Skip,
    /// "My items here have this fingerprint": compare, and split or list if they differ.
    Fingerprint(Fingerprint),
    /// "These are all my items here": the receiver now knows both differences.
    Ids(Vec<WireItem>),
}

/// An item of an id list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireItem {
    /// The clock minus the previous item's (for the first: minus the range's lower bound's).
    pub clock_delta: u64,
    /// The event id.
    pub id: EventId,
}

/// Why bytes did not decode as a [`ReconMsg`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconDecodeError {
    /// Longer than the limit the caller set.
    #[error("reconciliation message is {len} bytes, over the limit of {limit}; drop it")]
    TooLarge {
        /// The message length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a postcard `ReconMsg`.
    #[error("reconciliation message is malformed ({0}); drop it")]
    Malformed(String),
    /// Bytes after the message.
    #[error("reconciliation message has {0} trailing bytes; drop it")]
    Trailing(usize),
}

impl ReconMsg {
    /// The wire form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        // Invariant: serializing plain structs and vectors into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// The length of [`ReconMsg::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            ReconMsg::Open { ranges, .. } => 1 + 16 + ranges_len(ranges),
            ReconMsg::Reply { round, ranges } => {
                1 + varint_len(u64::from(*round)) + ranges_len(ranges)
            }
        }
    }

    /// Decodes the wire form, refusing more than `limit` bytes, malformed input and trailing
    /// bytes. The content is checked when a [`super::Session`] handles the message.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<ReconMsg, ReconDecodeError> {
        if bytes.len() > limit {
            return Err(ReconDecodeError::TooLarge {
                len: bytes.len(),
                limit,
            });
        }
        let (msg, rest) = postcard::take_from_bytes::<ReconMsg>(bytes)
            .map_err(|e| ReconDecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ReconDecodeError::Trailing(rest.len()));
        }
        Ok(msg)
    }

    /// The ranges of the message.
    pub fn ranges(&self) -> &[WireRange] {
        match self {
            ReconMsg::Open { ranges, .. } | ReconMsg::Reply { ranges, .. } => ranges,
        }
    }

    /// Which of the receiver's sessions with the sender this message belongs to: the one in
    /// which the receiver is the initiator (odd rounds), or the responder (`Open`, even rounds).
    pub fn addressee(&self) -> super::Role {
        match self {
            ReconMsg::Reply { round, .. } if round % 2 == 1 => super::Role::Initiator,
            _ => super::Role::Responder,
        }
    }
}

/// Bytes of a postcard varint.
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn ranges_len(ranges: &[WireRange]) -> usize {
    varint_len(ranges.len() as u64) + ranges.iter().map(WireRange::encoded_len).sum::<usize>()
}

impl WireRange {
    /// Its postcard length.
    pub fn encoded_len(&self) -> usize {
        let bound = match &self.upper {
            WireBound::End => 1,
            WireBound::At {
                clock_delta,
                id_prefix,
            } => {
                1 + varint_len(*clock_delta) + varint_len(id_prefix.len() as u64) + id_prefix.len()
            }
        };
        let payload = match &self.payload {
            Payload::Skip => 1,
            Payload::Fingerprint(_) => 1 + 16,
            Payload::Ids(items) => {
                1 + varint_len(items.len() as u64)
                    + items
                        .iter()
                        .map(|i| varint_len(i.clock_delta) + 32)
                        .sum::<usize>()
            }
        };
        bound + payload
    }
}

/// A range after decoding: absolute bounds, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) lo: Bound,
    pub(crate) hi: Bound,
    pub(crate) payload: RangePayload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangePayload {
    Skip,
    Fingerprint(Fingerprint),
    Ids(Vec<ReconKey>),
}

/// What is wrong with a decoded message's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedMsg {
    /// More ranges than the configuration allows.
    #[error("{got} ranges, over the limit of {limit}")]
    TooManyRanges {
        /// Ranges in the message.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// An id prefix longer than an id.
    #[error("an id prefix of {0} bytes (at most 32)")]
    LongPrefix(usize),
    /// A bound not above the previous one, or a range after `End`.
    #[error("range bounds do not increase")]
    BoundsNotIncreasing,
    /// A clock delta that overflows.
    #[error("a clock delta overflows")]
    ClockOverflow,
    /// An id list longer than the configuration allows.
    #[error("an id list of {got} ids, over the limit of {limit}")]
    LongIdList {
        /// Ids in the list.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// An id list not strictly increasing, or with an item outside its range.
    #[error("an id list is unsorted or strays outside its range")]
    IdsOutOfRange,
}

/// Turns wire ranges into absolute, checked ranges.
pub(crate) fn resolve(
    ranges: Vec<WireRange>,
    max_ranges: usize,
    max_ids: usize,
) -> Result<Vec<Range>, MalformedMsg> {
    if ranges.len() > max_ranges {
        return Err(MalformedMsg::TooManyRanges {
            got: ranges.len(),
            limit: max_ranges,
        });
    }
    let mut out = Vec::with_capacity(ranges.len());
    let mut lo = Bound::MIN;
    let mut clock = 0u64;
    for range in ranges {
        if lo == Bound::End {
            return Err(MalformedMsg::BoundsNotIncreasing);
        }
        let hi = match range.upper {
            WireBound::End => Bound::End,
            WireBound::At {
                clock_delta,
                id_prefix,
            } => {
                if id_prefix.len() > 32 {
                    return Err(MalformedMsg::LongPrefix(id_prefix.len()));
                }
                clock = clock
                    .checked_add(clock_delta)
                    .ok_or(MalformedMsg::ClockOverflow)?;
                let mut id = [0u8; 32];
                id[..id_prefix.len()].copy_from_slice(&id_prefix);
                Bound::At(ReconKey::new(clock, EventId(id)))
            }
        };
        if hi <= lo {
            return Err(MalformedMsg::BoundsNotIncreasing);
        }
        let payload = match range.payload {
            Payload::Skip => RangePayload::Skip,
            Payload::Fingerprint(fp) => RangePayload::Fingerprint(fp),
            Payload::Ids(items) => RangePayload::Ids(resolve_ids(items, &lo, &hi, max_ids)?),
        };
        out.push(Range { lo, hi, payload });
        lo = hi;
    }
    Ok(out)
}

/// The fingerprint ranges of a list of ranges we sent: the questions the peer may answer.
pub(crate) fn questions(ranges: &[Range]) -> Vec<(Bound, Bound)> {
    ranges
        .iter()
        .filter(|r| matches!(r.payload, RangePayload::Fingerprint(_)))
        .map(|r| (r.lo, r.hi))
        .collect()
}

fn resolve_ids(
    items: Vec<WireItem>,
    lo: &Bound,
    hi: &Bound,
    max_ids: usize,
) -> Result<Vec<ReconKey>, MalformedMsg> {
    if items.len() > max_ids {
        return Err(MalformedMsg::LongIdList {
            got: items.len(),
            limit: max_ids,
        });
    }
    let mut clock = match lo {
        Bound::At(k) => k.clock,
        Bound::End => return Err(MalformedMsg::IdsOutOfRange),
    };
    let mut keys: Vec<ReconKey> = Vec::with_capacity(items.len());
    for item in items {
        clock = clock
            .checked_add(item.clock_delta)
            .ok_or(MalformedMsg::ClockOverflow)?;
        let key = ReconKey::new(clock, item.id);
        let in_order = keys.last().is_none_or(|prev| *prev < key);
        if !in_order || !lo.is_at_or_below(&key) || !hi.is_above(&key) {
            return Err(MalformedMsg::IdsOutOfRange);
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Builds the ranges of an outgoing message: merges neighbouring skips, drops the trailing
/// skip, delta-encodes bounds, and counts the bytes.
#[derive(Debug)]
pub(crate) struct Writer {
    ranges: Vec<WireRange>,
    /// Upper bound of a pending skip that has not been written yet.
    pending_skip: Option<Bound>,
    /// The clock of the last bound written.
    clock: u64,
    /// Encoded bytes of `ranges`.
    bytes: usize,
    /// Fingerprint ranges written: questions the peer must answer.
    pub(crate) fingerprints: usize,
    /// Whether any non-skip range was written.
    pub(crate) wrote: bool,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer {
            ranges: Vec::new(),
            pending_skip: None,
            clock: 0,
            bytes: 0,
            fingerprints: 0,
            wrote: false,
        }
    }

    /// Bytes written so far (ranges only; the message adds a few).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes + 8
    }

    /// Ranges written so far, counting a pending skip.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len() + usize::from(self.pending_skip.is_some())
    }

    /// A point to roll back to.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            ranges: self.ranges.len(),
            pending_skip: self.pending_skip,
            clock: self.clock,
            bytes: self.bytes,
            fingerprints: self.fingerprints,
            wrote: self.wrote,
        }
    }

    /// Forgets everything written since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.ranges.truncate(mark.ranges);
        self.pending_skip = mark.pending_skip;
        self.clock = mark.clock;
        self.bytes = mark.bytes;
        self.fingerprints = mark.fingerprints;
        self.wrote = mark.wrote;
    }

    /// The range up to `hi` needs nothing.
    pub(crate) fn skip(&mut self, hi: Bound) {
        self.pending_skip = Some(hi);
    }

    /// Writes the range `[lo, hi)` with a payload; `lo` must be where the previous range
    /// (written or skipped) ended.
    pub(crate) fn push(&mut self, lo: Bound, hi: Bound, payload: RangePayload) {
        if payload == RangePayload::Skip {
            self.pending_skip = Some(hi);
            return;
        }
        if let Some(skip_hi) = self.pending_skip.take() {
            self.write(skip_hi, Payload::Skip);
        }
        let payload = match payload {
            RangePayload::Skip => Payload::Skip,
            RangePayload::Fingerprint(fp) => {
                self.fingerprints += 1;
                Payload::Fingerprint(fp)
            }
            RangePayload::Ids(keys) => {
                let mut clock = match lo {
                    Bound::At(k) => k.clock,
                    Bound::End => 0,
                };
                let items = keys
                    .into_iter()
                    .map(|k| {
                        let delta = k.clock.saturating_sub(clock);
                        clock = k.clock;
                        WireItem {
                            clock_delta: delta,
                            id: k.id,
                        }
                    })
                    .collect();
                Payload::Ids(items)
            }
        };
        self.wrote = true;
        self.write(hi, payload);
    }

    fn write(&mut self, hi: Bound, payload: Payload) {
        let upper = match hi {
            Bound::End => WireBound::End,
            Bound::At(k) => {
                let delta = k.clock.saturating_sub(self.clock);
                self.clock = k.clock;
                WireBound::At {
                    clock_delta: delta,
                    id_prefix: k.id.0[..prefix_len(&k.id)].to_vec(),
                }
            }
        };
        let range = WireRange { upper, payload };
        self.bytes += range.encoded_len();
        self.ranges.push(range);
    }

    /// The ranges (the trailing skip is implicit).
    pub(crate) fn finish(self) -> Vec<WireRange> {
        self.ranges
    }
}

/// A state of a [`Writer`] to roll back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    ranges: usize,
    pending_skip: Option<Bound>,
    clock: u64,
    bytes: usize,
    fingerprints: usize,
    /// Whether anything but skips had been written at the mark.
    pub(crate) wrote: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReconMsg {
        ReconMsg::Reply {
            round: 300,
            ranges: vec![
                WireRange {
                    upper: WireBound::At {
                        clock_delta: 70_000,
                        id_prefix: vec![1, 2],
                    },
                    payload: Payload::Skip,
                },
                WireRange {
                    upper: WireBound::At {
                        clock_delta: 1,
                        id_prefix: vec![],
                    },
                    payload: Payload::Fingerprint(Fingerprint([9; 16])),
                },
                WireRange {
                    upper: WireBound::End,
                    payload: Payload::Ids(vec![
                        WireItem {
                            clock_delta: 3,
                            id: EventId([5; 32]),
                        },
                        WireItem {
                            clock_delta: 200,
                            id: EventId([6; 32]),
                        },
                    ]),
                },
            ],
        }
    }

    #[test]
    fn encoded_len_matches_postcard() {
        let msg = sample();
        assert_eq!(msg.encoded_len(), msg.encode().len());
        let open = ReconMsg::Open {
            nonce: [3; 16],
            ranges: msg.ranges().to_vec(),
        };
        assert_eq!(open.encoded_len(), open.encode().len());
        for v in [0u64, 127, 128, 16_383, 16_384, u64::MAX] {
            assert_eq!(varint_len(v), postcard::to_allocvec(&v).unwrap().len());
        }
    }

    #[test]
    fn decode_round_trip_and_limits() {
        let msg = sample();
        let bytes = msg.encode();
        assert_eq!(ReconMsg::decode(&bytes, 1 << 20), Ok(msg));
        assert!(matches!(
            ReconMsg::decode(&bytes, 10),
            Err(ReconDecodeError::TooLarge { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ReconMsg::decode(&long, 1 << 20),
            Err(ReconDecodeError::Trailing(1))
        );
        assert!(matches!(
            ReconMsg::decode(&bytes[..bytes.len() - 1], 1 << 20),
            Err(ReconDecodeError::Malformed(_))
        ));
    }

    #[test]
    fn resolve_checks_order_and_lists() {
        let ranges = sample().ranges().to_vec();
        let resolved = resolve(ranges.clone(), 10, 10).unwrap();
        assert_eq!(resolved.len(), 3);
        assert_eq!(resolved[2].hi, Bound::End);
        assert!(matches!(
            resolve(ranges.clone(), 2, 10),
            Err(MalformedMsg::TooManyRanges { .. })
        ));
        assert!(matches!(
            resolve(ranges.clone(), 10, 1),
            Err(MalformedMsg::LongIdList { .. })
        ));
        // A zero delta with an empty prefix goes back below the previous bound.
        let mut bad = ranges.clone();
        bad[1].upper = WireBound::At {
            clock_delta: 0,
            id_prefix: vec![],
        };
        assert_eq!(resolve(bad, 10, 10), Err(MalformedMsg::BoundsNotIncreasing));
        let mut bad = ranges.clone();
        bad.push(bad[0].clone());
        assert_eq!(resolve(bad, 10, 10), Err(MalformedMsg::BoundsNotIncreasing));
        let mut bad = ranges.clone();
        bad[0].upper = WireBound::At {
            clock_delta: 1,
            id_prefix: vec![0; 33],
        };
        assert_eq!(resolve(bad, 10, 10), Err(MalformedMsg::LongPrefix(33)));
        let mut bad = ranges;
        if let Payload::Ids(items) = &mut bad[2].payload {
            items[1].clock_delta = 0;
            items[1].id = EventId([4; 32]);
        }
        assert_eq!(resolve(bad, 10, 10), Err(MalformedMsg::IdsOutOfRange));
    }

    #[test]
    fn writer_merges_skips_and_counts_bytes() {
        let k = |c: u64| Bound::At(ReconKey::new(c, EventId([0; 32])));
        let mut w = Writer::new();
        w.skip(k(5));
        w.skip(k(9));
        w.push(k(9), k(12), RangePayload::Fingerprint(Fingerprint([1; 16])));
        w.push(k(12), k(20), RangePayload::Skip);
        w.push(k(20), Bound::End, RangePayload::Skip);
        let bytes = w.bytes;
        assert_eq!(w.fingerprints, 1);
        let ranges = w.finish();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(
            bytes,
            ranges.iter().map(WireRange::encoded_len).sum::<usize>()
        );
        let resolved = resolve(ranges, 10, 10).unwrap();
        assert_eq!(resolved[0].hi, k(9));
        assert_eq!(resolved[1].hi, k(12));
    }
}
