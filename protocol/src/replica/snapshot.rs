//! Snapshots (DESIGN §7): the whole state of a replica in one byte string, so a restart loads
//! it instead of re-verifying every event of the redo log.
//!
//! A snapshot is our own file, written by this code and guarded by a format version and a
//! blake3 checksum, so restoring trusts its content: no signature is checked again and the
//! chain of trust is not re-run (it is still decoded defensively — every link is range-checked,
//! so even a snapshot with a forged checksum cannot make the replica panic). Any mismatch is a
//! [`SnapshotError`], and the caller falls back to replaying the log.
//!
//! It covers the first [`SnapshotInfo::events`] stored events in acceptance order (genesis
//! included), which is the order of `Output::Persist`: a redo log of every persisted event
//! holds the covered events as its first `events - 1` frames. Restore, then feed the frames
//! after those as `Input::Replay`, and the state and view digest are those of replaying the
//! whole log. Pending events, remembered-invalid ids and the authority cache are not kept.
//!
//! Format (integers little-endian):
//! ```text
//! magic "ATESNAP\0" ‖ format_version u32 ‖ flags u32 (0) ‖ chain id [32] ‖ events u64
//!   ‖ last event id [32] ‖ content_len u64 ‖ checksum [32] ‖ content
//! checksum = blake3::derive_key("ate v1 snapshot", the 96 bytes before it ‖ content)
//! content  = DAG ‖ trust ‖ view ‖ stats ‖ equivocations
//! DAG      = n u64 ‖ ids [n×32] ‖ signatures [n×64] ‖ event fields [n×51]
//!            ‖ parent slots (u64 count, u32s) ‖ bodies (u64 length, bytes in slot order;
//!              a compacted put's stub in place of its body) ‖ authors ‖ admin sets ‖ heads
//! ```
//! Bulk arrays are raw blocks, so writing and reading them are copies; see `dag/snapshot.rs`,
//! `trust/snapshot.rs` and `view/snapshot.rs` for the sections.

use super::*;
use crate::codec::{Corrupt, Dec, Enc};

/// The snapshot format this code writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"ATESNAP\0";
/// Bytes before the content: magic, version, flags, chain, events, last, length, checksum.
const HEADER_BYTES: usize = 8 + 4 + 4 + 32 + 8 + 32 + 8 + 32;
const CHECKSUM_AT: usize = HEADER_BYTES - 32;

/// What a snapshot's header says (read without checking the checksum; see
/// [`SnapshotInfo::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The snapshot format version.
    pub format_version: u32,
    /// The chain.
    pub chain: ChainId,
    /// Stored events covered, genesis included: the first `events` events in acceptance
    /// order, i.e. the first `events - 1` `Output::Persist` frames of the redo log.
    pub events: u64,
    /// The id of the last covered event (the `events - 1`th persisted one), so the caller can
    /// check its log lines up before replaying the tail.
    pub last: EventId,
    /// Bytes of content after the header.
    pub content_bytes: u64,
}

/// Why a snapshot cannot be restored. Whatever the variant, the remedy is the same: ignore the
/// snapshot and replay the redo log (then write a new snapshot).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start with the snapshot magic.
    #[error("not an ate snapshot (bad magic); replay the redo log instead")]
    NotASnapshot,
    /// Written by another version of the format.
    #[error(
        "snapshot format {found} is not the supported {SNAPSHOT_FORMAT_VERSION}; replay the redo log instead"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
    /// Shorter (or longer) than its header says.
    #[error("snapshot is {got} bytes where its header says {want}; replay the redo log instead")]
    Truncated {
        /// Bytes given.
        got: u64,
        /// Bytes the header announces.
        want: u64,
    },
    /// The checksum does not match: the file is damaged.
    #[error("snapshot checksum mismatch (damaged file); replay the redo log instead")]
    Checksum,
    /// The snapshot is of another chain than the genesis given.
    #[error("snapshot is of chain {snapshot}, not {genesis}; use the right file or replay the log")]
    WrongChain {
        /// The chain in the snapshot.
        snapshot: ChainId,
        /// The chain of the genesis given.
        genesis: ChainId,
    },
    /// The genesis given is not valid.
    #[error("{0}")]
    Genesis(#[from] GenesisError),
    /// The checksum matched but the content is inconsistent (a bug, or a forged file).
    #[error("snapshot content is inconsistent ({0}); replay the redo log instead")]
    Corrupt(&'static str),
}

impl From<Corrupt> for SnapshotError {
    fn from(c: Corrupt) -> Self {
        SnapshotError::Corrupt(c.0)
    }
}

fn checksum(header: &[u8], content: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("ate v1 snapshot");
    h.update(header);
    h.update(content);
    *h.finalize().as_bytes()
}

impl SnapshotInfo {
    /// Reads a snapshot's header: cheap, and does *not* verify the checksum (restoring does).
    pub fn read(bytes: &[u8]) -> Result<SnapshotInfo, SnapshotError> {
        let mut d = Dec::new(bytes);
        let header_error = |_| SnapshotError::Truncated {
            got: bytes.len() as u64,
            want: HEADER_BYTES as u64,
        };
        if d.take(8).map_err(header_error)? != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let format_version = d.u32().map_err(header_error)?;
        if format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: format_version,
            });
        }
        let _flags = d.u32().map_err(header_error)?;
        let chain = ChainId(d.array().map_err(header_error)?);
        let events = d.u64().map_err(header_error)?;
        let last = d.id().map_err(header_error)?;
        let content_bytes = d.u64().map_err(header_error)?;
        let _sum: [u8; 32] = d.array().map_err(header_error)?;
        let want = content_bytes.saturating_add(HEADER_BYTES as u64);
        if bytes.len() as u64 != want {
            return Err(SnapshotError::Truncated {
                got: bytes.len() as u64,
                want,
            });
        }
        Ok(SnapshotInfo {
            format_version,
            chain,
            events,
            last,
            content_bytes,
        })
    }
}

impl Replica {
    /// The whole state as a snapshot (see the module doc for the format and what it covers).
    /// Write it to a file next to the redo log; [`Replica::restore`] reads it back.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.raw(MAGIC);
        e.u32(SNAPSHOT_FORMAT_VERSION);
        e.u32(0);
        e.raw(&self.chain.0);
        e.len(self.dag.len());
        e.id(&self.dag.id(self.dag.len() as Slot - 1));
        e.u64(0); // content length, patched below
        e.raw(&[0; 32]); // checksum, patched below
        self.dag.encode(&mut e);
        self.trust.encode(&mut e);
        self.view.encode(&mut e);
        self.encode_counters(&mut e);
        let mut bytes = e.buf;
        let content_len = (bytes.len() - HEADER_BYTES) as u64;
        bytes[CHECKSUM_AT - 8..CHECKSUM_AT].copy_from_slice(&content_len.to_le_bytes());
        let sum = checksum(&bytes[..CHECKSUM_AT], &bytes[HEADER_BYTES..]);
        bytes[CHECKSUM_AT..HEADER_BYTES].copy_from_slice(&sum);
        bytes
    }

    /// Rebuilds a replica from its genesis and a snapshot written by [`Replica::snapshot`],
    /// without re-verifying signatures or re-running the chain of trust (the checksum and
    /// the format version vouch for the content). Any mismatch is an error, never a panic:
    /// then replay the redo log instead. On success, replay the log frames after the first
    /// `replica.len() - 1` (see [`SnapshotInfo::events`]).
    pub fn restore(
        genesis: &[u8],
        snapshot: &[u8],
        config: Config,
        checker: std::sync::Arc<dyn SignatureCheck>,
    ) -> Result<Replica, SnapshotError> {
        let info = SnapshotInfo::read(snapshot)?;
        let content = &snapshot[HEADER_BYTES..];
        let stored: [u8; 32] = snapshot[CHECKSUM_AT..HEADER_BYTES]
            .try_into()
            .map_err(|_| SnapshotError::Corrupt("header"))?;
        if checksum(&snapshot[..CHECKSUM_AT], content) != stored {
            return Err(SnapshotError::Checksum);
        }
        let r = Self::restore_content(genesis, &info, content, config, checker)?;
        Ok(r)
    }

    /// Restores from snapshot *content* without checking a checksum. Exposed for the fuzz
    /// target, which cannot forge blake3 checksums and must still reach the decoder; use
    /// [`Replica::restore`].
    #[doc(hidden)]
    pub fn restore_unchecked(
        genesis: &[u8],
        chain: ChainId,
        content: &[u8],
        config: Config,
    ) -> Result<Replica, SnapshotError> {
        let info = SnapshotInfo {
            format_version: SNAPSHOT_FORMAT_VERSION,
            chain,
            events: 0,
            last: EventId::default(),
            content_bytes: content.len() as u64,
        };
        let checker = std::sync::Arc::new(Ed25519Batch);
        Self::restore_content(genesis, &info, content, config, checker)
    }

    fn restore_content(
        genesis: &[u8],
        info: &SnapshotInfo,
        content: &[u8],
        config: Config,
        checker: std::sync::Arc<dyn SignatureCheck>,
    ) -> Result<Replica, SnapshotError> {
        let mut r = Replica::with_checker(genesis, config, checker)?;
        if info.chain != r.chain {
            return Err(SnapshotError::WrongChain {
                snapshot: info.chain,
                genesis: r.chain,
            });
        }
        let mut d = Dec::new(content);
        let dag = Dag::decode(&mut d, r.config.hash_seed)?;
        // The snapshot's genesis must be this genesis, byte for byte.
        if dag.id(0) != r.dag.id(0) || dag.body_bytes(0) != r.dag.body_bytes(0) {
            return Err(SnapshotError::Corrupt(
                "its genesis differs from the one given",
            ));
        }
        if info.events != 0
            && (info.events != dag.len() as u64 || info.last != dag.id(dag.len() as Slot - 1))
        {
            return Err(SnapshotError::Corrupt("header and content disagree"));
        }
        let mut trust = Trust::decode(
            &mut d,
            r.trust.roots.clone(),
            r.trust.next.clone(),
            dag.admin_sets.len(),
            dag.len(),
        )?;
        let view = View::decode(&mut d, dag.len())?;
        check_cross_links(&dag, &trust, &view)?;
        let _ = trust.recompute_global(&dag.admin_sets);
        r.decode_counters(&mut d)?;
        if d.remaining() != 0 {
            return Err(SnapshotError::Corrupt("bytes left after the content"));
        }
        r.dag = dag;
        r.trust = trust;
        r.view = view;
        Ok(r)
    }

    fn encode_counters(&self, e: &mut Enc) {
        let s = &self.stats;
        for v in [s.accepted, s.duplicates, s.pending_dropped, s.equivocations] {
            e.u64(v);
        }
        e.len(s.rejected.len());
        for (label, n) in &s.rejected {
            e.str(label);
            e.u64(*n);
        }
        e.len(self.equivocations.len());
        for q in &self.equivocations {
            e.raw(&q.author.0);
            e.u64(q.seq);
            e.id(&q.events[0]);
            e.id(&q.events[1]);
        }
    }

    fn decode_counters(&mut self, d: &mut Dec<'_>) -> Result<(), Corrupt> {
        let mut stats = Stats {
            accepted: d.u64()?,
            duplicates: d.u64()?,
            pending_dropped: d.u64()?,
            equivocations: d.u64()?,
            ..Stats::default()
        };
        let n = d.count(8 + 8)?;
        for _ in 0..n {
            let label = d.str()?;
            let count = d.u64()?;
            // Labels are static strings; one this version does not know is dropped.
            if let Some(&l) = Reason::LABELS.iter().find(|&&l| l == label) {
                stats.rejected.insert(l, count);
            }
        }
        let n = d.count(32 + 8 + 64)?;
        if n > MAX_EQUIVOCATIONS_KEPT {
            return Err(Corrupt("too many equivocations"));
        }
        let mut equivocations = Vec::with_capacity(n);
        for _ in 0..n {
            equivocations.push(Equivocation {
                author: PublicKey(d.array()?),
                seq: d.u64()?,
                events: [d.id()?, d.id()?],
            });
        }
        self.stats = stats;
        self.equivocations = equivocations;
        Ok(())
    }
}

/// Checks the links between the DAG, the trust state and the view that the rest of the crate
/// indexes by: admin ordinals (in slot order, matching ids), record indices of puts, and the
/// ordinals inside admin sets.
fn check_cross_links(dag: &Dag, trust: &Trust, view: &View) -> Result<(), Corrupt> {
    let mut ordinal = 0usize;
    for (s, m) in dag.meta.iter().enumerate() {
        match m.kind {
            BodyKind::Put => {
                if (m.aux as usize) >= view.records.len() {
                    return Err(Corrupt("a put's record is out of range"));
                }
            }
            _ => {
                let a = trust
                    .admins
                    .get(ordinal)
                    .ok_or(Corrupt("admin events missing"))?;
                if m.aux as usize != ordinal || a.id != dag.ids[s] {
                    return Err(Corrupt("admin ordinals do not match the events"));
                }
                ordinal += 1;
            }
        }
    }
    if ordinal != trust.admins.len() {
        return Err(Corrupt("more admin events than events"));
    }
    if !dag.admin_sets.all_below(ordinal as u32) {
        return Err(Corrupt("an admin set names an unknown admin event"));
    }
    Ok(())
}
