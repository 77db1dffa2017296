//! Opening a log: verify every frame, replay the valid ones, cut a torn tail, refuse (or with
//! `repair`, cut) corruption in the middle.
//!
//! The rule that keeps this safe is that only the newest segment can be torn: segments are
//! created durably and finished durably before the next one starts (see `Log::rotate`), so a bad
//! frame anywhere else is damage, not a crash. In the newest segment, a bad frame is a *torn
//! tail* only if no valid frame starts anywhere after it; its length field may itself be the
//! damaged part, so the search tries every byte offset (bounded by a work budget, beyond which
//! recovery assumes the worst and asks for `repair` rather than drop data).

use std::sync::Arc;

use ate_protocol::ChainId;

use crate::Progress;
use crate::backend::Backend;
use crate::error::{FrameProblem, OpenError};
use crate::format::{
    FRAME_HEADER_LEN, FrameAt, Resync, SEGMENT_HEADER_LEN, SegmentReader, check_segment_header,
    parse_segment_name, segment_name,
};
use crate::log::{Log, Options, create_segment};

/// Bytes the torn-tail search may checksum before giving up.
const RESYNC_BUDGET_BYTES: u64 = 64 << 20;
/// Report progress every this many bytes.
const PROGRESS_STEP_BYTES: u64 = 1 << 20;

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a recovery report should be logged"]
pub struct Recovery {
    /// Segments in the log after recovery.
    pub segments: u32,
    /// Valid frames replayed.
    pub frames: u64,
    /// Payload bytes replayed.
    pub payload_bytes: u64,
    /// Whether the log was created by this open (no segment existed).
    pub created: bool,
    /// A torn or corrupt tail that was cut.
    pub torn_tail: Option<TornTail>,
    /// A newest segment shorter than its header (a crash while creating it), removed.
    pub removed_partial_segment: Option<String>,
    /// What `Options::repair` cut, if it had to.
    pub repaired: Option<Repaired>,
}

/// A torn tail cut on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file name.
    pub segment: String,
    /// Where the segment was cut.
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// What was wrong with the first removed frame.
    pub problem: FrameProblem,
}

/// A cut made by `Options::repair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The segment cut.
    pub segment: String,
    /// Where it was cut.
    pub offset: u64,
    /// The bad frame (`None` when the cut was at a missing segment).
    pub problem: Option<FrameProblem>,
    /// Valid-looking frames dropped (a lower bound unless `frames_dropped_exact`).
    pub frames_dropped: u64,
    /// Whether `frames_dropped` is exact.
    pub frames_dropped_exact: bool,
    /// Bytes dropped.
    pub bytes_dropped: u64,
    /// Later segment files removed.
    pub segments_removed: Vec<String>,
}

fn io_err(op: &'static str, path: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |source| OpenError::Io { op, path, source }
}

/// State shared by the steps of one open.
struct Opening<'a> {
    backend: &'a dyn Backend,
    dir: String,
    options: &'a Options,
    chain: ChainId,
    rec: Recovery,
    done_bytes: u64,
    reported_bytes: u64,
    total_bytes: u64,
}

impl Log {
    /// Opens (creating if absent) the log of `chain`, verifying every frame and passing each
    /// valid payload, in order, to `replay`. Memory use is bounded by one read window (about
    /// 2 MiB) whatever the log's size.
    ///
    /// If this returns an error, payloads already passed to `replay` must be discarded: the
    /// chain must not be served from a log that did not open.
    pub fn open(
        backend: Arc<dyn Backend>,
        chain: ChainId,
        options: &Options,
        replay: &mut dyn FnMut(&[u8]),
        progress: &mut dyn Progress,
    ) -> Result<(Log, Recovery), OpenError> {
        options.validate()?;
        let dir = chain.to_string();
        backend
            .create_dir(&dir)
            .map_err(io_err("create directory", dir.clone()))?;
        let mut o = Opening {
            backend: &*backend,
            dir,
            options,
            chain,
            rec: Recovery::default(),
            done_bytes: 0,
            reported_bytes: 0,
            total_bytes: 0,
        };
        let mut indices = o.list_segments()?;
        o.check_gap(&mut indices)?;
        o.drop_partial_last(&mut indices)?;
        if indices.is_empty() {
            o.rec.created = true;
            indices.push(0);
            create_segment(o.backend, &o.dir, &chain, 0)
                .map_err(io_err("create first segment in", o.dir.clone()))?;
        }
        for &i in &indices {
            o.total_bytes += o.len(i)?;
        }
        progress.progress(0, o.total_bytes);
        let (end_index, end_offset) = o.scan_all(&mut indices, replay, progress)?;
        progress.progress(o.total_bytes, o.total_bytes);
        let (dir, mut rec) = (o.dir, o.rec);
        let name = segment_name(end_index);
        let mut active = backend
            .open_append(&dir, &name)
            .map_err(io_err("open for appending", format!("{dir}/{name}")))?;
        // Frames written without a sync before a clean stop are readable but maybe not durable;
        // sync once so everything replayed counts as durable.
        active
            .sync_data()
            .map_err(io_err("sync", format!("{dir}/{name}")))?;
        rec.segments = u32::try_from(indices.len()).unwrap_or(u32::MAX);
        let log = Log {
            first_segment: indices.first().copied().unwrap_or(end_index),
            chain,
            dir,
            options: options.clone(),
            active,
            active_index: end_index,
            active_len: end_offset,
            frames: rec.frames,
            durable_frames: rec.frames,
            unsynced_since_ms: None,
            poisoned: None,
            buf: Vec::new(),
            backend,
        };
        Ok((log, rec))
    }
}

impl Opening<'_> {
    fn path(&self, index: u32) -> String {
        format!("{}/{}", self.dir, segment_name(index))
    }

    fn len(&self, index: u32) -> Result<u64, OpenError> {
        self.backend
            .file_len(&self.dir, &segment_name(index))
            .map_err(io_err("read the length of", self.path(index)))
    }

    fn list_segments(&self) -> Result<Vec<u32>, OpenError> {
        let names = self
            .backend
            .list(&self.dir)
            .map_err(io_err("list", self.dir.clone()))?;
        let mut indices: Vec<u32> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        indices.sort_unstable();
        indices.dedup();
        Ok(indices)
    }

    fn remove(&self, index: u32) -> Result<(), OpenError> {
        self.backend
            .remove(&self.dir, &segment_name(index))
            .map_err(io_err("remove", self.path(index)))
    }

    fn truncate(&self, index: u32, len: u64) -> Result<(), OpenError> {
        self.backend
            .truncate(&self.dir, &segment_name(index), len)
            .map_err(io_err("truncate", self.path(index)))
    }

    /// A missing segment number between two present ones: refuse, or drop what follows.
    fn check_gap(&mut self, indices: &mut Vec<u32>) -> Result<(), OpenError> {
        let Some(at) = indices
            .windows(2)
            .position(|w| w[0].checked_add(1) != Some(w[1]))
        else {
            return Ok(());
        };
        let keep = at + 1;
        let before = indices.get(at).copied().unwrap_or_default();
        let missing = segment_name(before.saturating_add(1));
        let later: Vec<u32> = indices.get(keep..).unwrap_or_default().to_vec();
        if !self.options.repair {
            return Err(OpenError::MissingSegment {
                dir: self.dir.clone(),
                missing,
                later: later.len(),
            });
        }
        let (frames, exact, bytes) = self.count_segments(&later)?;
        for &i in &later {
            self.remove(i)?;
        }
        self.rec.repaired = Some(Repaired {
            segment: segment_name(before),
            offset: self.len(before)?,
            problem: None,
            frames_dropped: frames,
            frames_dropped_exact: exact,
            bytes_dropped: bytes,
            segments_removed: later.iter().map(|&i| segment_name(i)).collect(),
        });
        indices.truncate(keep);
        Ok(())
    }

    /// A newest segment shorter than its header was being created at a crash: remove it.
    fn drop_partial_last(&mut self, indices: &mut Vec<u32>) -> Result<(), OpenError> {
        let Some(&last) = indices.last() else {
            return Ok(());
        };
        if self.len(last)? >= SEGMENT_HEADER_LEN {
            return Ok(());
        }
        self.remove(last)?;
        self.rec.removed_partial_segment = Some(segment_name(last));
        indices.pop();
        Ok(())
    }

    /// Counts valid-looking frames and bytes in whole segments (for reports of what a cut drops).
    fn count_segments(&self, indices: &[u32]) -> Result<(u64, bool, u64), OpenError> {
        let (mut frames, mut exact, mut bytes) = (0, true, 0);
        for &i in indices {
            let mut reader = self.reader(i)?;
            bytes += reader.len();
            let (n, clean) = reader
                .count_valid_from(SEGMENT_HEADER_LEN)
                .map_err(io_err("read", self.path(i)))?;
            frames += n;
            exact &= clean;
        }
        Ok((frames, exact, bytes))
    }

    fn reader(&self, index: u32) -> Result<SegmentReader<'_>, OpenError> {
        let name = segment_name(index);
        SegmentReader::open(
            self.backend,
            &self.dir,
            &name,
            None,
            self.options.max_payload_bytes,
        )
        .map_err(io_err("open", self.path(index)))
    }

    /// Scans every segment; returns the end of the last valid frame. `indices` loses any
    /// segments a repair removed.
    fn scan_all(
        &mut self,
        indices: &mut Vec<u32>,
        replay: &mut dyn FnMut(&[u8]),
        progress: &mut dyn Progress,
    ) -> Result<(u32, u64), OpenError> {
        let list = indices.clone();
        for (pos, &index) in list.iter().enumerate() {
            let later = list.get(pos + 1..).unwrap_or_default();
            let (end, cut) = self.scan_segment(index, later, replay, progress)?;
            if cut {
                indices.truncate(pos + 1);
                return Ok((index, end));
            }
            if later.is_empty() {
                return Ok((index, end));
            }
        }
        // `indices` is never empty here: `open` creates segment 0 when none exists.
        Ok((
            indices.last().copied().unwrap_or_default(),
            SEGMENT_HEADER_LEN,
        ))
    }

    /// Scans one segment. Returns the end of its last valid frame and whether the log was cut
    /// there (a torn tail or a repair), which ends the scan.
    fn scan_segment(
        &mut self,
        index: u32,
        later: &[u32],
        replay: &mut dyn FnMut(&[u8]),
        progress: &mut dyn Progress,
    ) -> Result<(u64, bool), OpenError> {
        let backend = self.backend;
        let mut reader = SegmentReader::open(
            backend,
            &self.dir,
            &segment_name(index),
            None,
            self.options.max_payload_bytes,
        )
        .map_err(io_err("open", self.path(index)))?;
        let read_err = |path: String| io_err("read", path);
        let header = reader
            .bytes(0, SEGMENT_HEADER_LEN as usize)
            .map_err(read_err(self.path(index)))?
            .unwrap_or_default();
        check_segment_header(header, &self.chain, index).map_err(|problem| {
            OpenError::BadSegment {
                path: self.path(index),
                problem,
            }
        })?;
        let mut off = SEGMENT_HEADER_LEN;
        self.done_bytes += SEGMENT_HEADER_LEN;
        let bad = loop {
            match reader.frame_at(off).map_err(read_err(self.path(index)))? {
                FrameAt::End => break None,
                FrameAt::Bad { problem, .. } => break Some(problem),
                FrameAt::Valid(payload) => {
                    replay(payload);
                    let step = FRAME_HEADER_LEN + payload.len() as u64;
                    self.rec.frames += 1;
                    self.rec.payload_bytes += payload.len() as u64;
                    off += step;
                    self.done_bytes += step;
                    if self.done_bytes - self.reported_bytes >= PROGRESS_STEP_BYTES {
                        self.reported_bytes = self.done_bytes;
                        progress.progress(self.done_bytes, self.total_bytes);
                    }
                }
            }
        };
        match bad {
            None => Ok((off, false)),
            Some(problem) => self.on_bad_frame(&mut reader, index, off, problem, later),
        }
    }

    /// Decides between a torn tail (cut) and corruption in the middle (refuse, or repair).
    fn on_bad_frame(
        &mut self,
        reader: &mut SegmentReader<'_>,
        index: u32,
        off: u64,
        problem: FrameProblem,
        later: &[u32],
    ) -> Result<(u64, bool), OpenError> {
        let segment = segment_name(index);
        let read_err = io_err("read", self.path(index));
        let mut budget = RESYNC_BUDGET_BYTES;
        let resync = reader.resync_after(off, &mut budget).map_err(read_err)?;
        let rest = reader.len() - off;
        if later.is_empty() && resync == Resync::Nothing {
            self.truncate(index, off)?;
            self.rec.torn_tail = Some(TornTail {
                segment,
                offset: off,
                bytes_cut: rest,
                problem,
            });
            return Ok((off, true));
        }
        let (mut frames, mut exact) = match resync {
            Resync::Found(p) => reader
                .count_valid_from(p)
                .map_err(io_err("read", self.path(index)))?,
            Resync::Nothing => (0, true),
            Resync::GaveUp => (0, false),
        };
        let (later_frames, later_exact, later_bytes) = self.count_segments(later)?;
        frames += later_frames;
        exact &= later_exact;
        if !self.options.repair {
            return Err(OpenError::Corrupt {
                segment,
                offset: off,
                problem,
                frames_after: frames,
                frames_after_exact: exact,
                bytes_after: rest + later_bytes,
            });
        }
        // Later segments go first (newest first) and the cut last: a crash part-way through
        // leaves the corrupt frame in place, so the next open still refuses instead of
        // splicing later segments onto the cut.
        for &i in later.iter().rev() {
            self.remove(i)?;
        }
        self.truncate(index, off)?;
        self.rec.repaired = Some(Repaired {
            segment,
            offset: off,
            problem: Some(problem),
            frames_dropped: frames,
            frames_dropped_exact: exact,
            bytes_dropped: rest + later_bytes,
            segments_removed: later.iter().map(|&i| segment_name(i)).collect(),
        });
        Ok((off, true))
    }
}
