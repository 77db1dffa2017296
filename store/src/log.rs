//! The writer side of a chain's redo log: batched appends, segment rotation, the sync policy.
//!
//! # When is an append durable?
//! An append is durable once [`Log::durable_frames`] exceeds its frame number. Under
//! [`SyncPolicy::Always`] that is true when [`Log::append`] returns `Ok`. Under
//! [`SyncPolicy::Batch`] it becomes true after a later successful [`Log::sync`]; the caller
//! schedules that with [`Log::sync_deadline_ms`] / [`Log::needs_sync`]. **An event must not be
//! acknowledged to a writer, nor published to peers, before it is durable.** [`SyncPolicy::Never`]
//! never syncs on its own and is for tests and benchmarks only.
//!
//! # Failure
//! A failed write or fsync *poisons* the log: its data is not durable, and the log refuses
//! further appends and syncs until it is reopened, because after a failed fsync the kernel may
//! have dropped the dirty pages and a retried fsync can succeed without writing them (PostgreSQL's
//! "fsyncgate"). Reopening re-reads what is really on disk.

use std::sync::Arc;

use ate_protocol::ChainId;

use crate::backend::{Backend, SegmentFile};
use crate::error::{AppendError, OptionsError, SyncError};
use crate::format::{
    FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, encode_frame, segment_header, segment_name,
};

/// The hard upper bound on [`Options::max_payload_bytes`] (64 MiB).
pub const MAX_PAYLOAD_HARD_LIMIT: u32 = 64 << 20;

/// When appended frames are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fdatasync before `append` returns (and sync the directory when a segment is created).
    /// The default: loses no acknowledged write.
    Always,
    /// `append` only writes; the caller calls [`Log::sync`] at most `max_delay_ms` after the
    /// oldest unsynced append, and acknowledges frames only once they are durable.
    Batch {
        /// The longest an appended frame may wait for its sync.
        max_delay_ms: u64,
    },
    /// Never sync (tests and benchmarks). Rotation still syncs finished segments.
    Never,
}

/// Configuration of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Rotate to a new segment when the next batch would pass this size (default 64 MiB). A
    /// single frame larger than this gets a segment of its own.
    pub segment_size_bytes: u64,
    /// The largest payload accepted on append and on read (default 1 MiB + 64 KiB). Lowering it
    /// below the size of stored frames makes them read as corrupt.
    pub max_payload_bytes: u32,
    /// The durability policy.
    pub sync: SyncPolicy,
    /// On open, cut the log at a corrupt frame in the middle (dropping everything after it)
    /// instead of refusing to open. The node's `--repair`.
    pub repair: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size_bytes: 64 << 20,
            max_payload_bytes: (1 << 20) + (64 << 10),
            sync: SyncPolicy::Always,
            repair: false,
        }
    }
}

impl Options {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let min = SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 1;
        if self.segment_size_bytes < min {
            return Err(OptionsError::SegmentTooSmall {
                got: self.segment_size_bytes,
                min,
            });
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > MAX_PAYLOAD_HARD_LIMIT {
            return Err(OptionsError::PayloadLimit {
                got: self.max_payload_bytes,
                max: MAX_PAYLOAD_HARD_LIMIT,
            });
        }
        Ok(())
    }
}

/// A byte position in the log: a segment number and an offset in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The segment number (file `{segment:08}.log`).
    pub segment: u32,
    /// The byte offset in that segment.
    pub offset: u64,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an append is acknowledged only once durable"]
pub struct Appended {
    /// The frame number of the batch's first frame (frames are numbered from 0 in log order).
    pub first_frame: u64,
    /// Frames in the batch.
    pub frames: u64,
    /// Whether the whole batch is durable already (always true under `SyncPolicy::Always`).
    pub durable: bool,
}

/// A consistent point to back up to: everything before it is completely written and verified
/// on open or written by this process. Taking it is cheap; copying can then run while appends
/// continue, since appends never modify bytes before the point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPoint {
    /// The chain.
    pub chain: ChainId,
    /// The first segment of the log.
    pub first_segment: u32,
    /// The end of the last complete frame.
    pub end: Position,
    /// Frames before `end`.
    pub frames: u64,
}

/// An open redo log of one chain. See the module docs for the durability contract.
#[derive(Debug)]
pub struct Log {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) chain: ChainId,
    pub(crate) dir: String,
    pub(crate) options: Options,
    pub(crate) first_segment: u32,
    pub(crate) active: Box<dyn SegmentFile>,
    pub(crate) active_index: u32,
    /// Bytes of complete frames (and the header) in the active segment.
    pub(crate) active_len: u64,
    /// Frames completely written.
    pub(crate) frames: u64,
    pub(crate) durable_frames: u64,
    pub(crate) unsynced_since_ms: Option<u64>,
    pub(crate) poisoned: Option<String>,
    pub(crate) buf: Vec<u8>,
}

impl Log {
    /// Appends a batch of payloads (event envelopes), written with one write call per segment
    /// touched. `now_ms` is the caller's clock, used only to schedule `Batch` syncs.
    ///
    /// On `Ok`, the frames are written, and durable if [`Appended::durable`]. On `Err`, none of
    /// the batch may be acknowledged; write and sync failures poison the log (see module docs).
    /// Invalid payloads (empty, too large) are refused before anything is written.
    pub fn append(&mut self, now_ms: u64, payloads: &[&[u8]]) -> Result<Appended, AppendError> {
        if let Some(reason) = &self.poisoned {
            return Err(AppendError::Poisoned {
                reason: reason.clone(),
            });
        }
        for (index, p) in payloads.iter().enumerate() {
            if p.is_empty() {
                return Err(AppendError::EmptyPayload { index });
            }
            if p.len() > self.options.max_payload_bytes as usize {
                return Err(AppendError::TooLarge {
                    index,
                    len: p.len(),
                    limit: self.options.max_payload_bytes,
                });
            }
        }
        let first_frame = self.frames;
        self.buf.clear();
        let mut buf_frames = 0;
        for p in payloads {
            let frame_len = FRAME_HEADER_LEN + p.len() as u64;
            let used = self.active_len + self.buf.len() as u64;
            if used + frame_len > self.options.segment_size_bytes && used > SEGMENT_HEADER_LEN {
                self.flush(buf_frames)?;
                buf_frames = 0;
                self.rotate()?;
            }
            encode_frame(p, &mut self.buf);
            buf_frames += 1;
        }
        self.flush(buf_frames)?;
        match self.options.sync {
            SyncPolicy::Always => self
                .sync_active()
                .map_err(|(segment, source)| AppendError::Sync { segment, source })?,
            SyncPolicy::Batch { .. } if self.frames > self.durable_frames => {
                self.unsynced_since_ms.get_or_insert(now_ms);
            }
            SyncPolicy::Batch { .. } | SyncPolicy::Never => {}
        }
        Ok(Appended {
            first_frame,
            frames: payloads.len() as u64,
            durable: self.durable_frames >= self.frames,
        })
    }

    /// Replaces the whole log with `payloads` (for compaction: the same events, some without
    /// their bodies), crash-safely. The new frames go durably into fresh segments after the
    /// current ones; only then are the old segments removed, oldest first. A crash before
    /// the removals finish leaves old and new frames together — every event at least once, so
    /// a replay still rebuilds the state — and never less than one complete copy. Afterwards
    /// the log's frames are `payloads`, numbered from 0. Returns the old segments removed.
    pub fn rewrite(&mut self, payloads: &[&[u8]]) -> Result<u32, AppendError> {
        if payloads.is_empty() {
            return Err(AppendError::EmptyPayload { index: 0 });
        }
        self.sync_active()
            .map_err(|(segment, source)| AppendError::Sync { segment, source })?;
        let (old_first, old_last) = (self.first_segment, self.active_index);
        self.rotate()?;
        let before = self.frames;
        let policy = self.options.sync;
        // The new copy must be durable before anything old goes, whatever the policy.
        self.options.sync = SyncPolicy::Always;
        let appended = self.append(0, payloads);
        self.options.sync = policy;
        let _durable = appended?;
        self.first_segment = old_last + 1;
        self.frames -= before;
        self.durable_frames = self.frames;
        for index in old_first..=old_last {
            let name = segment_name(index);
            self.backend
                .remove(&self.dir, &name)
                .map_err(|source| AppendError::Remove {
                    segment: name,
                    source,
                })?;
        }
        Ok(old_last - old_first + 1)
    }

    /// Makes every appended frame durable; returns [`Log::durable_frames`]. After an error the
    /// unsynced frames are not durable, must not be acknowledged, and the log is poisoned.
    pub fn sync(&mut self) -> Result<u64, SyncError> {
        if let Some(reason) = &self.poisoned {
            return Err(SyncError::Poisoned {
                reason: reason.clone(),
            });
        }
        self.sync_active()
            .map_err(|(segment, source)| SyncError::Sync { segment, source })?;
        Ok(self.durable_frames)
    }

    /// Frames known durable: frame numbers below this may be acknowledged.
    pub fn durable_frames(&self) -> u64 {
        self.durable_frames
    }

    /// Frames in the log (durable or not).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Under `Batch`, when the next sync is due (the oldest unsynced append plus the delay);
    /// `None` when nothing waits or under the other policies.
    pub fn sync_deadline_ms(&self) -> Option<u64> {
        match self.options.sync {
            SyncPolicy::Batch { max_delay_ms } => self
                .unsynced_since_ms
                .map(|t| t.saturating_add(max_delay_ms)),
            SyncPolicy::Always | SyncPolicy::Never => None,
        }
    }

    /// Whether a `Batch` sync is due at `now_ms`.
    pub fn needs_sync(&self, now_ms: u64) -> bool {
        self.sync_deadline_ms().is_some_and(|d| now_ms >= d)
    }

    /// The reason the log refuses appends, if an earlier write or sync failed.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// The chain this log belongs to.
    pub fn chain(&self) -> ChainId {
        self.chain
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The backend the log is stored in.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The end of the last completely written frame.
    pub fn end(&self) -> Position {
        Position {
            segment: self.active_index,
            offset: self.active_len,
        }
    }

    /// A consistent point for [`crate::backup`]: every completely written frame. (Under `Batch`
    /// this may include frames not yet durable; they are valid events either way.)
    pub fn backup_point(&self) -> BackupPoint {
        BackupPoint {
            chain: self.chain,
            first_segment: self.first_segment,
            end: self.end(),
            frames: self.frames,
        }
    }

    fn poison(&mut self, what: &str, segment: &str, e: &std::io::Error) {
        self.poisoned = Some(format!("{what} of segment {segment} failed: {e}"));
    }

    fn flush(&mut self, buf_frames: u64) -> Result<(), AppendError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.active.write_all(&self.buf) {
            let segment = segment_name(self.active_index);
            self.poison("write", &segment, &source);
            return Err(AppendError::Write { segment, source });
        }
        self.active_len += self.buf.len() as u64;
        self.frames += buf_frames;
        self.buf.clear();
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), (String, std::io::Error)> {
        if self.durable_frames == self.frames {
            return Ok(());
        }
        if let Err(e) = self.active.sync_data() {
            let segment = segment_name(self.active_index);
            self.poison("fsync", &segment, &e);
            return Err((segment, e));
        }
        self.durable_frames = self.frames;
        self.unsynced_since_ms = None;
        Ok(())
    }

    /// Finishes the active segment (durably) and starts the next one.
    fn rotate(&mut self) -> Result<(), AppendError> {
        self.sync_active()
            .map_err(|(segment, source)| AppendError::Sync { segment, source })?;
        let next = self.active_index.checked_add(1).ok_or_else(|| {
            let source = std::io::Error::other("segment numbers exhausted");
            AppendError::Rotate {
                segment: segment_name(self.active_index),
                source,
            }
        })?;
        let name = segment_name(next);
        match create_segment(&*self.backend, &self.dir, &self.chain, next) {
            Ok(file) => {
                self.active = file;
                self.active_index = next;
                self.active_len = SEGMENT_HEADER_LEN;
                Ok(())
            }
            Err(source) => {
                self.poison("creation", &name, &source);
                Err(AppendError::Rotate {
                    segment: name,
                    source,
                })
            }
        }
    }
}

/// Creates segment `index` with its header, durably (file data and directory entry), so that
/// only the newest segment can ever be torn.
pub(crate) fn create_segment(
    backend: &dyn Backend,
    dir: &str,
    chain: &ChainId,
    index: u32,
) -> std::io::Result<Box<dyn SegmentFile>> {
    let mut file = backend.create(dir, &segment_name(index))?;
    file.write_all(&segment_header(chain, index))?;
    file.sync_data()?;
    backend.sync_dir(dir)?;
    Ok(file)
}
