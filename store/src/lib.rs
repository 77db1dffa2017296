//! # ate-store — the redo log of a chain
//!
//! Each chain has an append-only log of framed event envelopes (DESIGN §7) in segment files
//! `DIR/<chain id>/00000000.log, 00000001.log, …`. A frame is `len ‖ crc32c(payload) ‖ payload`;
//! payloads are opaque bytes here (the node stores `header, sig, body?` envelopes).
//!
//! * [`Log::open`] verifies every frame and replays the valid payloads in order through a
//!   callback (bounded memory), cuts a torn tail, and refuses corruption in the middle unless
//!   [`Options::repair`] is set. The [`Recovery`] report says what it found and did.
//! * [`Log::append`] writes a batch; [`SyncPolicy`] decides when it is durable. **An event is
//!   acknowledged to a writer, and published, only once durable** (see [`Log`]).
//! * [`dump`], [`backup`] / [`Log::backup`] and [`restore`] are what `ate log dump`,
//!   `ate backup` and `ate restore` call; [`Progress`] lets the CLI draw progress bars.
//! * Storage goes through the [`Backend`] trait: [`FsBackend`] for real, [`MemBackend`] for
//!   fast tests, [`FaultBackend`] to inject crashes, torn and short writes, bit flips and fsync
//!   failures (the approach of redb's crash-consistency tests).
//!
//! ## Error policy
//! Every operation has its own `thiserror` enum ([`OpenError`], [`AppendError`], …) and
//! [`Error`] is their union. Nothing here panics on bytes from disk: every length read from disk
//! is checked against [`Options::max_payload_bytes`] before anything is allocated for it, and
//! searches over damaged bytes have work budgets.
//!
//! ## Limits of the crash model
//! Recovery assumes a crash loses a *suffix* of unsynced writes (possibly mid-frame). A device
//! that persists later unsynced pages but not earlier ones leaves valid frames after a hole; that
//! is indistinguishable from corruption and makes the log refuse to open until `--repair`, which
//! cuts at the hole. Only unsynced (never acknowledged) frames are behind such a hole.
#![deny(missing_docs)]

mod backend;
mod backup;
mod dump;
mod error;
mod fault;
mod format;
mod log;
mod mem;
mod recover;

pub use backend::{Backend, FsBackend, SegmentFile};
pub use backup::{BackupSummary, backup, restore};
pub use dump::{Dump, DumpFrame, chains, dump};
pub use error::{
    AppendError, BackupError, DumpError, Error, FrameProblem, HeaderProblem, OpenError,
    OptionsError, RestoreError, SyncError,
};
pub use fault::FaultBackend;
pub use format::{
    FORMAT_VERSION, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, parse_segment_name,
    segment_name,
};
pub use log::{Appended, BackupPoint, Log, MAX_PAYLOAD_HARD_LIMIT, Options, Position, SyncPolicy};
pub use mem::MemBackend;
pub use recover::{Recovery, Repaired, TornTail};

/// Receives progress of long operations (open/replay, backup, restore) as bytes done out of a
/// total, so the CLI can draw a progress bar. Called at most about once per MiB.
pub trait Progress {
    /// `done_bytes` of `total_bytes` are processed.
    fn progress(&mut self, done_bytes: u64, total_bytes: u64);
}

impl<F: FnMut(u64, u64)> Progress for F {
    fn progress(&mut self, done_bytes: u64, total_bytes: u64) {
        self(done_bytes, total_bytes);
    }
}

/// A [`Progress`] that ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn progress(&mut self, _done_bytes: u64, _total_bytes: u64) {}
}

#[cfg(test)]
mod tests {
    /// The node moves a log into a blocking task and shares the backend with backups.
    #[test]
    fn log_and_backends_can_cross_threads() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<crate::Log>();
        send_sync::<crate::FsBackend>();
        send_sync::<crate::MemBackend>();
        send_sync::<crate::FaultBackend>();
    }
}
