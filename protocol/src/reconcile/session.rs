//! [`Session`]: one reconciliation with one peer, as a sans-IO state machine.
//!
//! The messages carry all the protocol state (each covers the whole order), so a session only
//! remembers its key, its round counter, its limits, and the ranges it asked about in its last
//! message (to refuse answers to questions it never asked).

use std::fmt;

use super::fingerprint::{ItemSum, RangeSummary, SessionKey};
use super::index::ReconIndex;
use super::key::{Bound, ReconKey, separator};
use super::wire::{
    MalformedMsg, Payload, Range, RangePayload, ReconMsg, WireRange, Writer, questions, resolve,
};
use crate::ids::EventId;

/// Room kept in every message for the range that defers the rest to the next round.
const REMAINDER_RESERVE_BYTES: usize = 128;
/// Worst-case encoded bytes of one fingerprint range (bound with a full prefix + payload).
const MAX_FINGERPRINT_RANGE_BYTES: usize = 1 + 10 + 1 + 32 + 1 + 16;
/// Worst-case encoded bytes of one id-list item.
const MAX_ITEM_BYTES: usize = 10 + 32;

/// Limits and knobs of reconciliation. Both peers should use the same values (a peer with a
/// larger `list_threshold` than our `max_ids_per_range` is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconConfig {
    /// A range that differs is split into this many parts of equal item count (the branching
    /// factor: rounds shrink as its log, bytes per round grow with it).
    pub split_factor: usize,
    /// A differing range with at most this many of our items is answered with the items
    /// themselves instead of a split.
    pub list_threshold: usize,
    /// Our messages stay within this many encoded bytes; the rest of a round is deferred.
    pub max_msg_bytes: usize,
    /// A peer message with more ranges is refused (and ours stay within it).
    pub max_ranges_per_msg: usize,
    /// A peer id list longer than this is refused.
    pub max_ids_per_range: usize,
    /// A session ends with an error after receiving this many messages.
    pub max_rounds: u32,
    /// A session ends with an error after receiving this many ranges in total.
    pub max_ranges_per_session: u64,
    /// A session waiting longer than this for the peer's next message has expired.
    pub idle_timeout_ms: u64,
    /// A session older than this has expired.
    pub max_session_ms: u64,
}

impl Default for ReconConfig {
    fn default() -> Self {
        ReconConfig {
            split_factor: 16,
            list_threshold: 32,
            max_msg_bytes: 256 << 10,
            max_ranges_per_msg: 16_384,
            max_ids_per_range: 1024,
            max_rounds: 512,
            max_ranges_per_session: 1 << 22,
            idle_timeout_ms: 30_000,
            max_session_ms: 600_000,
        }
    }
}

/// Why a [`ReconConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `split_factor` outside 2..=1024.
    #[error("split_factor is {0}; use 2..=1024 (16 is a good default)")]
    SplitFactor(usize),
    /// `list_threshold` is 0 or over `max_ids_per_range`.
    #[error(
        "list_threshold is {threshold}; use 1..={max_ids} (max_ids_per_range), e.g. 2 × split_factor"
    )]
    ListThreshold {
        /// The threshold.
        threshold: usize,
        /// `max_ids_per_range`.
        max_ids: usize,
    },
    /// `max_msg_bytes` cannot hold one full split and one full list.
    #[error("max_msg_bytes is {got}; it must be at least {need} for one split and one id list")]
    MessageTooSmall {
        /// The configured value.
        got: usize,
        /// The minimum for this split factor and threshold.
        need: usize,
    },
    /// `max_ranges_per_msg` cannot hold one split.
    #[error("max_ranges_per_msg is {got}; it must be at least split_factor + 3 = {need}")]
    TooFewRanges {
        /// The configured value.
        got: usize,
        /// The minimum.
        need: usize,
    },
    /// A round, range or time limit is zero.
    #[error("max_rounds, max_ranges_per_session and the timeouts must be positive")]
    ZeroLimit,
}

impl ReconConfig {
    /// Checks that the limits fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=1024).contains(&self.split_factor) {
            return Err(ConfigError::SplitFactor(self.split_factor));
        }
        if self.list_threshold == 0 || self.list_threshold > self.max_ids_per_range {
            return Err(ConfigError::ListThreshold {
                threshold: self.list_threshold,
                max_ids: self.max_ids_per_range,
            });
        }
        let need = self.min_msg_bytes();
        if self.max_msg_bytes < need {
            return Err(ConfigError::MessageTooSmall {
                got: self.max_msg_bytes,
                need,
            });
        }
        if self.max_ranges_per_msg < self.split_factor + 3 {
            return Err(ConfigError::TooFewRanges {
                got: self.max_ranges_per_msg,
                need: self.split_factor + 3,
            });
        }
        if self.max_rounds == 0
            || self.max_ranges_per_session == 0
            || self.idle_timeout_ms == 0
            || self.max_session_ms == 0
        {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }

    fn min_msg_bytes(&self) -> usize {
        (self.split_factor + 2) * MAX_FINGERPRINT_RANGE_BYTES
            + self.list_threshold * MAX_ITEM_BYTES
            + 2 * REMAINDER_RESERVE_BYTES
    }

    fn split_factor(&self) -> usize {
        self.split_factor.clamp(2, 1024)
    }

    fn list_threshold(&self) -> usize {
        self.list_threshold.max(1)
    }
}

/// Which end of a session we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the `Open`.
    Initiator,
    /// The peer sent the `Open`.
    Responder,
}

/// The outcome of handling one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Step {
    /// Send this to the peer (present whenever the peer's message compared fingerprints,
    /// even if empty: an empty reply tells the peer that everything it asked about matched).
    pub reply: Option<ReconMsg>,
    /// Ids we hold and the peer lacks: send it these events. In `(clock, id)` order, so
    /// dependencies come first.
    pub peer_lacks: Vec<EventId>,
    /// Ids the peer holds and we lack: request these events. In `(clock, id)` order.
    pub we_lack: Vec<EventId>,
    /// The session is over: no message will come and none is owed (after sending `reply`).
    pub done: bool,
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Messages received.
    pub rounds: u32,
    /// Encoded bytes sent (our `Open` and replies).
    pub bytes_sent: u64,
    /// Encoded bytes received.
    pub bytes_received: u64,
    /// Ranges received.
    pub ranges_received: u64,
    /// Ids reported in [`Step::we_lack`].
    pub we_lack: u64,
    /// Ids reported in [`Step::peer_lacks`].
    pub peer_lacks: u64,
}

/// Why a session refused a message. Every error ends the session: drop it, and start a new
/// one later (a fresh session costs one round trip when the sets already agree).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconError {
    /// The message's ranges are malformed.
    #[error("malformed reconciliation message: {0}; drop the session")]
    Malformed(#[from] MalformedMsg),
    /// `Session::respond` needs an `Open`.
    #[error("a session can only be opened by an Open message; route replies to their session")]
    ExpectedOpen,
    /// An `Open` for a running session.
    #[error("an Open for a running session; start a responder session with Session::respond")]
    UnexpectedOpen,
    /// A round number other than the next one.
    #[error("expected round {expected}, got {got} (stale or reordered); drop the session")]
    WrongRound {
        /// The round we wait for.
        expected: u32,
        /// The round received.
        got: u32,
    },
    /// A message after the session ended.
    #[error("the session has ended; start a new one")]
    Finished,
    /// The peer answered about a range we did not ask about.
    #[error("the peer answered about a range we did not ask about; drop the session")]
    Unasked,
    /// The peer deferred work it should have done this round.
    #[error("the peer deferred a range it had to answer; drop the session")]
    NoProgress,
    /// Too many rounds.
    #[error("the session exceeded {limit} rounds; drop it (a new one resumes where it stopped)")]
    TooManyRounds {
        /// `max_rounds`.
        limit: u32,
    },
    /// Too many ranges.
    #[error("the session exceeded {limit} ranges; drop it")]
    TooManyRanges {
        /// `max_ranges_per_session`.
        limit: u64,
    },
    /// The session timed out.
    #[error("the session expired; start a new one")]
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's message of `next_round`.
    Waiting,
    Done,
    Failed,
}

/// One reconciliation with one peer (see the module documentation for the flow).
pub struct Session {
    role: Role,
    key: SessionKey,
    cfg: ReconConfig,
    state: State,
    next_round: u32,
    /// The ranges of our last message, encoded (at most `max_msg_bytes`): the peer may only
    /// answer about the fingerprint ranges among them.
    asked: Vec<u8>,
    started_ms: u64,
    last_ms: u64,
    stats: SessionStats,
    /// Every id this session has named (in `we_lack` or `peer_lacks`). A deferral fingerprints
    /// everything from its start to the end of the key space, so ranges settled in earlier
    /// rounds come back into play and their differences would be found again; they are named
    /// once. Grows with the difference, which the caller holds anyway.
    named: std::collections::BTreeSet<EventId>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("next_round", &self.next_round)
            .field("asked_bytes", &self.asked.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// What processing a message produced.
struct Outcome {
    writer: Writer,
    we_lack: Vec<EventId>,
    peer_lacks: Vec<EventId>,
    /// The message compared fingerprints, so it needs a reply.
    needs_reply: bool,
    /// The budget for new work is spent: remaining questions are handed back unsplit.
    deferring: bool,
}

impl Session {
    /// Starts a session with a peer: returns it and the `Open` message to send. `nonce` must
    /// be fresh and unpredictable (the caller draws it from its RNG): it keys the session's
    /// fingerprints. `cfg` should have passed [`ReconConfig::validate`].
    pub fn initiate(
        index: &ReconIndex,
        cfg: &ReconConfig,
        nonce: [u8; 16],
        now_ms: u64,
    ) -> (Session, ReconMsg) {
        let mut session = Session::new(Role::Initiator, cfg, &nonce, now_ms);
        let mut writer = Writer::new();
        let total = index.total();
        let payload = if total.count as usize <= cfg.list_threshold() {
            RangePayload::Ids(index.iter().collect())
        } else {
            RangePayload::Fingerprint(total.fingerprint(&session.key))
        };
        writer.push(Bound::MIN, Bound::End, payload);
        let asks = writer.fingerprints > 0;
        let ranges = writer.finish();
        session.after_send(&ranges, asks);
        let msg = ReconMsg::Open { nonce, ranges };
        session.stats.bytes_sent += msg.encoded_len() as u64;
        (session, msg)
    }

    /// Accepts a peer's `Open`: returns the responder session and the first step.
    pub fn respond(
        index: &ReconIndex,
        cfg: &ReconConfig,
        msg: ReconMsg,
        now_ms: u64,
    ) -> Result<(Session, Step), ReconError> {
        let bytes = msg.encoded_len() as u64;
        let ReconMsg::Open { nonce, ranges } = msg else {
            return Err(ReconError::ExpectedOpen);
        };
        let mut session = Session::new(Role::Responder, cfg, &nonce, now_ms);
        let step = session.receive(index, 0, bytes, ranges, false)?;
        Ok((session, step))
    }

    /// Handles the peer's next message. Any error ends the session.
    pub fn handle(
        &mut self,
        index: &ReconIndex,
        msg: ReconMsg,
        now_ms: u64,
    ) -> Result<Step, ReconError> {
        if self.state != State::Waiting {
            return Err(ReconError::Finished);
        }
        if self.is_expired(now_ms) {
            return self.fail(ReconError::Expired);
        }
        let bytes = msg.encoded_len() as u64;
        let (round, ranges) = match msg {
            ReconMsg::Open { .. } => return self.fail(ReconError::UnexpectedOpen),
            ReconMsg::Reply { round, ranges } => (round, ranges),
        };
        if round != self.next_round {
            return self.fail(ReconError::WrongRound {
                expected: self.next_round,
                got: round,
            });
        }
        self.last_ms = now_ms;
        self.receive(index, round, bytes, ranges, true)
    }

    /// Which end of the session we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the session has ended (successfully or not).
    pub fn is_done(&self) -> bool {
        self.state != State::Waiting
    }

    /// The time after which the session is expired (if it is still waiting).
    pub fn deadline_ms(&self) -> u64 {
        self.last_ms
            .saturating_add(self.cfg.idle_timeout_ms)
            .min(self.started_ms.saturating_add(self.cfg.max_session_ms))
    }

    /// Whether the session has waited too long or lived too long.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms > self.deadline_ms()
    }

    /// The session's counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Heap bytes the session holds: its last message's ranges (bounded by `max_msg_bytes`)
    /// and the ids it has named (the difference found so far; at most what `max_rounds`
    /// messages can list), at ~48 bytes each in the set.
    pub fn heap_bytes(&self) -> usize {
        self.asked.capacity() + self.named.len() * 48
    }

    fn new(role: Role, cfg: &ReconConfig, nonce: &[u8; 16], now_ms: u64) -> Session {
        Session {
            role,
            key: SessionKey::from_nonce(nonce),
            cfg: cfg.clone(),
            state: State::Waiting,
            next_round: 0,
            asked: Vec::new(),
            started_ms: now_ms,
            last_ms: now_ms,
            stats: SessionStats::default(),
            named: std::collections::BTreeSet::new(),
        }
    }

    fn fail<T>(&mut self, err: ReconError) -> Result<T, ReconError> {
        self.state = State::Failed;
        self.asked = Vec::new();
        Err(err)
    }

    /// After we sent `ranges`: wait for the answer if they asked anything, else we are done
    /// (the peer owes no reply to a message without fingerprints).
    fn after_send(&mut self, ranges: &[WireRange], asks: bool) {
        if asks {
            self.state = State::Waiting;
            self.next_round += 1;
            // Only the bounds of our questions matter later: id lists become skips (bounds
            // are deltas from the previous bound, so they stay valid).
            let bounds: Vec<WireRange> = ranges
                .iter()
                .map(|r| WireRange {
                    upper: r.upper.clone(),
                    payload: match &r.payload {
                        Payload::Ids(_) => Payload::Skip,
                        other => other.clone(),
                    },
                })
                .collect();
            // Invariant: plain vectors always serialize.
            self.asked = postcard::to_allocvec(&bounds).unwrap_or_default();
        } else {
            self.state = State::Done;
            self.asked = Vec::new();
        }
    }

    /// The fingerprint ranges of our last message.
    fn questions(&self) -> Vec<(Bound, Bound)> {
        postcard::from_bytes::<Vec<WireRange>>(&self.asked)
            .ok()
            .and_then(|ranges| resolve(ranges, usize::MAX, usize::MAX).ok())
            .map(|ranges| questions(&ranges))
            .unwrap_or_default()
    }

    fn receive(
        &mut self,
        index: &ReconIndex,
        round: u32,
        bytes: u64,
        ranges: Vec<WireRange>,
        check: bool,
    ) -> Result<Step, ReconError> {
        self.stats.rounds += 1;
        self.stats.bytes_received += bytes;
        if self.stats.rounds > self.cfg.max_rounds {
            let limit = self.cfg.max_rounds;
            return self.fail(ReconError::TooManyRounds { limit });
        }
        self.stats.ranges_received += ranges.len() as u64;
        if self.stats.ranges_received > self.cfg.max_ranges_per_session {
            let limit = self.cfg.max_ranges_per_session;
            return self.fail(ReconError::TooManyRanges { limit });
        }
        let ranges = match resolve(
            ranges,
            self.cfg.max_ranges_per_msg,
            self.cfg.max_ids_per_range,
        ) {
            Ok(r) => r,
            Err(e) => return self.fail(e.into()),
        };
        if check && let Err(e) = check_asked(&ranges, &self.questions()) {
            return self.fail(e);
        }
        let mut outcome = self.process(index, ranges);
        outcome.we_lack.retain(|id| self.named.insert(*id));
        outcome.peer_lacks.retain(|id| self.named.insert(*id));
        self.stats.we_lack += outcome.we_lack.len() as u64;
        self.stats.peer_lacks += outcome.peer_lacks.len() as u64;
        let mut step = Step {
            reply: None,
            peer_lacks: outcome.peer_lacks,
            we_lack: outcome.we_lack,
            done: false,
        };
        if outcome.needs_reply {
            let asks = outcome.writer.fingerprints > 0;
            let ranges = outcome.writer.finish();
            self.next_round = round + 1;
            self.after_send(&ranges, asks);
            let reply = ReconMsg::Reply {
                round: round + 1,
                ranges,
            };
            self.stats.bytes_sent += reply.encoded_len() as u64;
            step.reply = Some(reply);
        } else {
            self.state = State::Done;
            self.asked = Vec::new();
        }
        step.done = self.state == State::Done;
        Ok(step)
    }

    /// Answers each range of the peer's message, in order. Once three quarters of the message
    /// budget are spent, differing ranges are handed back with our fingerprint, unsplit (the
    /// peer splits them next round, so no work is lost); once the budget is spent, one
    /// fingerprint defers everything from there on.
    fn process(&self, index: &ReconIndex, ranges: Vec<Range>) -> Outcome {
        let mut out = Outcome {
            writer: Writer::new(),
            we_lack: Vec::new(),
            peer_lacks: Vec::new(),
            needs_reply: false,
            deferring: false,
        };
        // Neighbouring ranges share a bound: keep the last prefix computed.
        let mut cached: Option<(Bound, usize, ItemSum)> = None;
        let mut prefix = |b: &Bound| match cached {
            Some((cb, r, s)) if cb == *b => (r, s),
            _ => {
                let (r, s) = index.prefix(b);
                cached = Some((*b, r, s));
                (r, s)
            }
        };
        for range in ranges {
            let (lo, hi) = (range.lo, range.hi);
            let fp = match range.payload {
                RangePayload::Skip => {
                    out.writer.skip(hi);
                    continue;
                }
                RangePayload::Ids(theirs) => {
                    diff(index, &lo, &hi, &theirs, &mut out);
                    out.writer.skip(hi);
                    continue;
                }
                RangePayload::Fingerprint(fp) => fp,
            };
            out.needs_reply = true;
            let (r0, s0) = prefix(&lo);
            let (r1, s1) = prefix(&hi);
            let mine = RangeSummary {
                count: (r1 - r0) as u64,
                sum: s1.minus(&s0),
            };
            if mine.fingerprint(&self.key) == fp {
                out.writer.skip(hi);
            } else if !self.answer(index, &mut out, (lo, r0, s0), (hi, r1, s1), mine) {
                // Out of room: one fingerprint over everything from `lo` defers the rest.
                let rest = RangeSummary {
                    count: (index.len() - r0) as u64,
                    sum: index.total().sum.minus(&s0),
                };
                let fp = rest.fingerprint(&self.key);
                out.writer
                    .push(lo, Bound::End, RangePayload::Fingerprint(fp));
                break;
            }
        }
        out
    }

    /// Answers a differing range: lists or splits it while the budget for new work lasts,
    /// else hands it back unsplit. `false` when not even that fits.
    fn answer(
        &self,
        index: &ReconIndex,
        out: &mut Outcome,
        (lo, r0, s0): (Bound, usize, ItemSum),
        (hi, r1, s1): (Bound, usize, ItemSum),
        mine: RangeSummary,
    ) -> bool {
        let w = &mut out.writer;
        if !out.deferring {
            let mark = w.mark();
            if r1 - r0 <= self.cfg.list_threshold() {
                w.push(
                    lo,
                    hi,
                    RangePayload::Ids(index.iter_ranks(r0, r1).collect()),
                );
            } else {
                self.split(index, (lo, r0, s0), (hi, r1, s1), w);
            }
            // The first answer always goes out, so every message makes progress.
            let fits = w.bytes() <= self.cfg.max_msg_bytes / 4 * 3
                && w.len() + 2 <= self.cfg.max_ranges_per_msg / 4 * 3;
            if !mark.wrote || fits {
                return true;
            }
            w.rollback(mark);
            out.deferring = true;
        }
        let mark = w.mark();
        w.push(
            lo,
            hi,
            RangePayload::Fingerprint(mine.fingerprint(&self.key)),
        );
        if w.bytes() + REMAINDER_RESERVE_BYTES <= self.cfg.max_msg_bytes
            && w.len() + 2 <= self.cfg.max_ranges_per_msg
        {
            return true;
        }
        w.rollback(mark);
        false
    }
    /// Splits `[lo, hi)` (our ranks `r0..r1`, prefix sums `s0`, `s1`) into parts of equal
    /// count, each sent as a fingerprint, bounded by the shortest separators.
    fn split(
        &self,
        index: &ReconIndex,
        (lo, r0, s0): (Bound, usize, ItemSum),
        (hi, r1, s1): (Bound, usize, ItemSum),
        w: &mut Writer,
    ) {
        let m = r1 - r0;
        let parts = self.cfg.split_factor().min(m);
        let (mut part_lo, mut part_rank, mut part_sum) = (lo, r0, s0);
        for i in 1..=parts {
            let rank = r0 + m * i / parts;
            let cut = if i == parts {
                None
            } else {
                index.split_at(rank)
            };
            // `split_at` answers for every rank strictly inside `r0..r1` (0 < rank < len);
            // the last part, or a failed lookup, runs to `hi`.
            let (part_hi, rank, sum) = match cut {
                Some((sum, prev, next)) => (separator(&prev, &next), rank, sum),
                None => (hi, r1, s1),
            };
            let summary = RangeSummary {
                count: (rank - part_rank) as u64,
                sum: sum.minus(&part_sum),
            };
            w.push(
                part_lo,
                part_hi,
                RangePayload::Fingerprint(summary.fingerprint(&self.key)),
            );
            if part_hi == hi {
                break;
            }
            (part_lo, part_rank, part_sum) = (part_hi, rank, sum);
        }
    }
}

/// Every range the peer says something about must lie inside a range we asked about, except
/// a final deferral (a fingerprint up to `End`), which must start after our first question.
fn check_asked(ranges: &[Range], asked: &[(Bound, Bound)]) -> Result<(), ReconError> {
    let last = ranges.len().saturating_sub(1);
    for (i, r) in ranges.iter().enumerate() {
        if r.payload == RangePayload::Skip {
            continue;
        }
        let at = asked.partition_point(|(lo, _)| *lo <= r.lo);
        let inside = at
            .checked_sub(1)
            .and_then(|j| asked.get(j))
            .is_some_and(|(_, hi)| r.hi <= *hi);
        if inside {
            continue;
        }
        let deferral =
            i == last && r.hi == Bound::End && matches!(r.payload, RangePayload::Fingerprint(_));
        if !deferral {
            return Err(ReconError::Unasked);
        }
        if asked.first().is_none_or(|(_, first_hi)| r.lo < *first_hi) {
            return Err(ReconError::NoProgress);
        }
    }
    Ok(())
}

/// Compares the peer's complete list for `[lo, hi)` with ours.
fn diff(index: &ReconIndex, lo: &Bound, hi: &Bound, theirs: &[ReconKey], out: &mut Outcome) {
    let mut theirs = theirs.iter().peekable();
    for mine in index.range(lo, hi) {
        while let Some(t) = theirs.next_if(|t| **t < mine) {
            out.we_lack.push(t.id);
        }
        if theirs.next_if(|t| **t == mine).is_none() {
            out.peer_lacks.push(mine.id);
        }
    }
    out.we_lack.extend(theirs.map(|t| t.id));
}
