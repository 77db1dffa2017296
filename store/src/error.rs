//! Typed errors, one enum per operation, and the superset [`Error`] for callers that want one.
//!
//! Messages say what was wrong and what to do about it; they name the segment file and byte
//! offset so an operator can look at the bytes (`ate log dump`).

use std::io;

use thiserror::Error;

/// Why a segment's 64-byte header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// The file is shorter than a segment header.
    #[error("file is {len} bytes, shorter than the {need}-byte segment header")]
    TooShort {
        /// The file's length.
        len: u64,
        /// The header's length.
        need: u64,
    },
    /// The first 8 bytes are not `ATELOG1\0`.
    #[error("wrong magic (not an ate log segment)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("format version {0} is not supported by this build (expected 1)")]
    BadVersion(u16),
    /// The header's own checksum failed.
    #[error("header checksum mismatch")]
    BadChecksum,
    /// The segment belongs to another chain.
    #[error("segment belongs to chain {found}, not this chain")]
    OtherChain {
        /// The chain named in the header.
        found: String,
    },
    /// The header names a different segment number than the file name.
    #[error("header says segment {found}, file name says {expected}")]
    WrongIndex {
        /// The number in the header.
        found: u32,
        /// The number in the file name.
        expected: u32,
    },
}

/// Why a frame failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameProblem {
    /// The frame runs past the end of the file (a torn write, or a corrupt length).
    #[error("incomplete frame: needs {need} bytes, {have} remain in the file")]
    Truncated {
        /// Bytes the frame needs (header + declared payload).
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// A zero length prefix (zero-filled space, never written by this log).
    #[error("zero length prefix (zero-filled or never-written space)")]
    ZeroLength,
    /// A length prefix above the configured payload limit.
    #[error("length prefix {len} exceeds the payload limit of {limit} bytes")]
    TooLong {
        /// The declared length.
        len: u32,
        /// The limit in force.
        limit: u32,
    },
    /// The payload does not match its CRC-32C.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes on disk.
        computed: u32,
    },
}

/// Invalid [`crate::Options`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The segment size cannot hold a header and one small frame.
    #[error("segment_size_bytes {got} is too small: use at least {min}")]
    SegmentTooSmall {
        /// The configured size.
        got: u64,
        /// The minimum.
        min: u64,
    },
    /// The payload limit is zero or above the hard limit.
    #[error("max_payload_bytes {got} must be between 1 and {max}")]
    PayloadLimit {
        /// The configured limit.
        got: u32,
        /// The hard maximum.
        max: u32,
    },
}

/// Errors from [`crate::Log::open`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The options are invalid.
    #[error("invalid log options: {0}")]
    Options(#[from] OptionsError),
    /// The backend failed.
    #[error("cannot {op} {path}: {source}; check the data directory's permissions and disk")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The chain directory or file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A segment file is not a segment of this chain and format.
    #[error(
        "{path} is not a segment of this chain's log: {problem}; move the file out of the \
         directory if it does not belong there"
    )]
    BadSegment {
        /// `dir/name` of the file.
        path: String,
        /// What was wrong.
        problem: HeaderProblem,
    },
    /// A corrupt frame with data after it: refusing to guess which bytes are valid.
    #[error(
        "corrupt frame at segment {segment} offset {offset}: {problem}; run with --repair to cut \
         the log there ({frames_after}{plus} later frames, {bytes_after} bytes would be dropped)",
        plus = if *frames_after_exact { "" } else { "+" }
    )]
    Corrupt {
        /// The segment file name.
        segment: String,
        /// Byte offset of the bad frame in that file.
        offset: u64,
        /// What was wrong.
        problem: FrameProblem,
        /// Valid-looking frames after the bad one (a lower bound unless `frames_after_exact`).
        frames_after: u64,
        /// Whether `frames_after` is exact.
        frames_after_exact: bool,
        /// Bytes from the bad frame to the end of the log.
        bytes_after: u64,
    },
    /// A segment number is missing between two present segments.
    #[error(
        "segment {missing} is missing from {dir} but {later} later segment(s) exist; run with \
         --repair to drop the later segments, or restore the file from a backup"
    )]
    MissingSegment {
        /// The chain directory.
        dir: String,
        /// The missing segment's file name.
        missing: String,
        /// How many segments follow the gap.
        later: usize,
    },
}

/// Errors from [`crate::Log::append`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// An empty payload (the format reserves length 0 for zero-filled space).
    #[error("payload {index} of the batch is empty; the log stores only non-empty envelopes")]
    EmptyPayload {
        /// Index in the batch.
        index: usize,
    },
    /// A payload above the configured limit.
    #[error("payload {index} of the batch is {len} bytes, above the {limit}-byte limit")]
    TooLarge {
        /// Index in the batch.
        index: usize,
        /// Its length.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// An earlier write or sync failed; nothing more is accepted until the log is reopened.
    #[error(
        "the log refuses appends after an earlier failure ({reason}); reopen it (restart the \
         node) so recovery re-reads what is really on disk"
    )]
    Poisoned {
        /// The earlier failure.
        reason: String,
    },
    /// Writing failed (disk full, I/O error); the batch is not durable and must not be
    /// acknowledged.
    #[error("cannot write to segment {segment}: {source}; the batch was not stored")]
    Write {
        /// The segment file name.
        segment: String,
        /// The underlying error.
        source: io::Error,
    },
    /// fsync failed; the batch is not durable and must not be acknowledged.
    #[error("fsync of segment {segment} failed: {source}; the batch is not durable")]
    Sync {
        /// The segment file name.
        segment: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Creating the next segment failed.
    #[error("cannot create segment {segment}: {source}; the batch was not stored")]
    Rotate {
        /// The new segment's file name.
        segment: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A rewrite stored the new copy durably but could not remove an old segment; the log
    /// holds both copies (every event twice), which replays to the same state.
    #[error("cannot remove old segment {segment} after a rewrite: {source}")]
    Remove {
        /// The old segment's file name.
        segment: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Errors from [`crate::Log::sync`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// An earlier write or sync failed; reopen the log.
    #[error("the log refuses to sync after an earlier failure ({reason}); reopen it")]
    Poisoned {
        /// The earlier failure.
        reason: String,
    },
    /// fsync failed: the unsynced frames are not durable and must not be acknowledged.
    #[error("fsync of segment {segment} failed: {source}; unsynced frames are not durable")]
    Sync {
        /// The segment file name.
        segment: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Errors from [`crate::dump`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DumpError {
    /// The backend failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A segment's header is wrong; the segment is skipped.
    #[error("{path} is not a segment of this chain's log: {problem}")]
    BadSegment {
        /// `dir/name`.
        path: String,
        /// What was wrong.
        problem: HeaderProblem,
    },
    /// A frame whose length cannot be trusted; the rest of that segment is skipped.
    #[error(
        "unreadable frame at segment {segment} offset {offset}: {problem}; rest of segment skipped"
    )]
    Unreadable {
        /// The segment file name.
        segment: String,
        /// Byte offset.
        offset: u64,
        /// What was wrong.
        problem: FrameProblem,
    },
}

/// Errors from [`crate::backup`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading the log failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing the backup failed.
    #[error("cannot write the backup: {0}; check the destination's free space")]
    Write(#[source] io::Error),
    /// A segment's header is wrong.
    #[error("{path} is not a segment of this chain's log: {problem}")]
    BadSegment {
        /// `dir/name`.
        path: String,
        /// What was wrong.
        problem: HeaderProblem,
    },
    /// A corrupt frame inside the range being backed up.
    #[error(
        "corrupt frame at segment {segment} offset {offset}: {problem}; the log is damaged, \
         restart the node (recovery checks every frame) before backing up"
    )]
    Corrupt {
        /// The segment file name.
        segment: String,
        /// Byte offset.
        offset: u64,
        /// What was wrong.
        problem: FrameProblem,
    },
    /// The log changed under the backup (it was repaired or rewritten meanwhile).
    #[error("the log holds {found} frames up to the backup point, expected {expected}; retry")]
    FrameCountChanged {
        /// Frames the backup point promised.
        expected: u64,
        /// Frames found.
        found: u64,
    },
}

/// Errors from [`crate::restore`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// Reading the backup failed.
    #[error("cannot read the backup: {0}")]
    Read(#[source] io::Error),
    /// The backup is not a valid ate backup; nothing was written.
    #[error("the backup is invalid: {0}; nothing was restored, use another copy of the backup")]
    Invalid(String),
    /// The chain already has a log in this data directory.
    #[error("{dir} already holds a log; restore into an empty data directory or move it away")]
    AlreadyExists {
        /// The chain directory.
        dir: String,
    },
    /// Creating the restored log failed (partially written segments were removed).
    #[error("cannot create the restored log: {0}")]
    Open(#[from] OpenError),
    /// Writing the restored log failed (partially written segments were removed).
    #[error("cannot write the restored log: {0}")]
    Append(#[from] AppendError),
    /// Syncing the restored log failed (partially written segments were removed).
    #[error("cannot sync the restored log: {0}")]
    Sync(#[from] SyncError),
}

/// Any error of this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`OpenError`].
    #[error(transparent)]
    Open(#[from] OpenError),
    /// See [`AppendError`].
    #[error(transparent)]
    Append(#[from] AppendError),
    /// See [`SyncError`].
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// See [`DumpError`].
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// See [`BackupError`].
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// See [`RestoreError`].
    #[error(transparent)]
    Restore(#[from] RestoreError),
}
