//! Single-file backups of a chain's log, and restoring them.
//!
//! ```text
//! backup  = header(56) frame{frames} trailer(20)
//! header  = "ATEBAK1\0" version:u16 reserved:u16 chain:[u8;32] frames:u64 crc32c(header[..52]):u32
//! frame   = len:u32 crc32c(payload):u32 payload             (as in segments)
//! trailer = frames:u64 crc32c(all frame bytes):u32 "ATEBEND\0"
//! ```
//!
//! A backup copies up to a [`BackupPoint`] taken from the live log. Appends only add bytes after
//! the point, so the copy is consistent while the node keeps writing; every frame is verified
//! on the way out. A restore reads the whole backup once to verify it (header, every frame, the
//! trailer's count and checksum) before writing anything, then reads it again to write the log;
//! if that second pass fails (the file changed, the disk filled) the segments it wrote are
//! removed, so nothing is ever half-restored.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use ate_protocol::ChainId;

use crate::Progress;
use crate::backend::Backend;
use crate::error::{BackupError, RestoreError};
use crate::format::{
    FRAME_HEADER_LEN, FrameAt, SEGMENT_HEADER_LEN, SegmentReader, check_frame_len,
    check_segment_header, encode_frame, parse_segment_name, segment_name,
};
use crate::log::{BackupPoint, Log, Options, SyncPolicy};

const BACKUP_MAGIC: [u8; 8] = *b"ATEBAK1\0";
const BACKUP_END: [u8; 8] = *b"ATEBEND\0";
const BACKUP_VERSION: u16 = 1;
const HEADER_LEN: usize = 56;
const TRAILER_LEN: usize = 20;
/// Output is written and restored frames are appended in chunks of about this size.
const CHUNK_BYTES: usize = 4 << 20;

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// The chain.
    pub chain: ChainId,
    /// Frames copied.
    pub frames: u64,
    /// Bytes written to the backup.
    pub bytes: u64,
}

impl Log {
    /// Backs up every completely written frame to `out` (see [`backup`]).
    pub fn backup(
        &self,
        out: &mut dyn Write,
        progress: &mut dyn Progress,
    ) -> Result<BackupSummary, BackupError> {
        let point = self.backup_point();
        backup(
            &**self.backend(),
            &point,
            self.options().max_payload_bytes,
            out,
            progress,
        )
    }
}

fn backup_header(chain: &ChainId, frames: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&BACKUP_MAGIC);
    h[8..10].copy_from_slice(&BACKUP_VERSION.to_le_bytes());
    h[12..44].copy_from_slice(&chain.0);
    h[44..52].copy_from_slice(&frames.to_le_bytes());
    let crc = crc32c::crc32c(&h[..52]);
    h[52..56].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Copies the log up to `point` into `out` as one self-checking file. Safe to run while the
/// log keeps appending (take the point under the same lock as appends, then release it).
pub fn backup(
    backend: &dyn Backend,
    point: &BackupPoint,
    max_payload_bytes: u32,
    out: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<BackupSummary, BackupError> {
    let dir = point.chain.to_string();
    let mut total = 0;
    for index in point.first_segment..=point.end.segment {
        total += if index == point.end.segment {
            point.end.offset
        } else {
            let name = segment_name(index);
            let path = format!("{dir}/{name}");
            backend
                .file_len(&dir, &name)
                .map_err(|source| BackupError::Read { path, source })?
        };
    }
    progress.progress(0, total);
    let header = backup_header(&point.chain, point.frames);
    out.write_all(&header).map_err(BackupError::Write)?;
    let mut copy = Copy {
        out,
        buf: Vec::with_capacity(CHUNK_BYTES),
        crc: 0,
        frames: 0,
        bytes: HEADER_LEN as u64,
        done: 0,
    };
    for index in point.first_segment..=point.end.segment {
        let limit = (index == point.end.segment).then_some(point.end.offset);
        copy.segment(backend, point, &dir, index, limit, max_payload_bytes)?;
        progress.progress(copy.done, total);
    }
    copy.flush()?;
    if copy.frames != point.frames {
        return Err(BackupError::FrameCountChanged {
            expected: point.frames,
            found: copy.frames,
        });
    }
    let mut trailer = [0u8; TRAILER_LEN];
    trailer[..8].copy_from_slice(&copy.frames.to_le_bytes());
    trailer[8..12].copy_from_slice(&copy.crc.to_le_bytes());
    trailer[12..].copy_from_slice(&BACKUP_END);
    copy.out.write_all(&trailer).map_err(BackupError::Write)?;
    copy.out.flush().map_err(BackupError::Write)?;
    Ok(BackupSummary {
        chain: point.chain,
        frames: copy.frames,
        bytes: copy.bytes + TRAILER_LEN as u64,
    })
}

/// The state of one backup copy.
struct Copy<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    crc: u32,
    frames: u64,
    bytes: u64,
    done: u64,
}

impl Copy<'_> {
    fn flush(&mut self) -> Result<(), BackupError> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.out.write_all(&self.buf).map_err(BackupError::Write)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn segment(
        &mut self,
        backend: &dyn Backend,
        point: &BackupPoint,
        dir: &str,
        index: u32,
        limit: Option<u64>,
        max_payload_bytes: u32,
    ) -> Result<(), BackupError> {
        let name = segment_name(index);
        let path = format!("{dir}/{name}");
        let read = |source| BackupError::Read {
            path: path.clone(),
            source,
        };
        let mut reader =
            SegmentReader::open(backend, dir, &name, limit, max_payload_bytes).map_err(read)?;
        let header = reader
            .bytes(0, SEGMENT_HEADER_LEN as usize)
            .map_err(read)?
            .unwrap_or_default();
        check_segment_header(header, &point.chain, index).map_err(|problem| {
            BackupError::BadSegment {
                path: path.clone(),
                problem,
            }
        })?;
        let mut off = SEGMENT_HEADER_LEN;
        loop {
            match reader.frame_at(off).map_err(read)? {
                FrameAt::End => break,
                FrameAt::Valid(payload) => {
                    encode_frame(payload, &mut self.buf);
                    off += FRAME_HEADER_LEN + payload.len() as u64;
                    self.frames += 1;
                }
                FrameAt::Bad { problem, .. } => {
                    return Err(BackupError::Corrupt {
                        segment: name,
                        offset: off,
                        problem,
                    });
                }
            }
            if self.buf.len() >= CHUNK_BYTES {
                self.flush()?;
            }
        }
        self.done += reader.len();
        Ok(())
    }
}

fn invalid(msg: String) -> RestoreError {
    RestoreError::Invalid(msg)
}

/// Reads `n` bytes, turning a premature end into an "invalid backup" error naming `what`.
fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<(), RestoreError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid(format!("the file ends inside {what} (truncated copy?)"))
        } else {
            RestoreError::Read(e)
        }
    })
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if let Some(src) = b.get(..8) {
        a.copy_from_slice(src);
    }
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    if let Some(src) = b.get(..4) {
        a.copy_from_slice(src);
    }
    u32::from_le_bytes(a)
}

fn read_header(r: &mut dyn Read) -> Result<(ChainId, u64), RestoreError> {
    let mut h = [0u8; HEADER_LEN];
    read_exact(r, &mut h, "the header")?;
    if h[..8] != BACKUP_MAGIC {
        return Err(invalid("wrong magic (not an ate backup)".to_owned()));
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != BACKUP_VERSION {
        return Err(invalid(format!("unsupported backup version {version}")));
    }
    if crc32c::crc32c(&h[..52]) != le_u32(&h[52..]) {
        return Err(invalid("header checksum mismatch".to_owned()));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&h[12..44]);
    Ok((ChainId(chain), le_u64(&h[44..])))
}

/// Reads and verifies a whole backup, passing each payload to `on_frame`.
fn read_backup(
    r: &mut dyn Read,
    max_payload_bytes: u32,
    on_frame: &mut dyn FnMut(&[u8]) -> Result<(), RestoreError>,
) -> Result<ChainId, RestoreError> {
    let (chain, frames) = read_header(r)?;
    let mut crc = 0;
    let mut payload = Vec::new();
    // `frames` is untrusted: the loop allocates nothing per frame beyond the checked length,
    // and a false count fails at the end of the file.
    for i in 0..frames {
        let mut head = [0u8; FRAME_HEADER_LEN as usize];
        read_exact(r, &mut head, &format!("frame {i}"))?;
        let (len, stored) = (le_u32(&head), le_u32(&head[4..]));
        check_frame_len(len, max_payload_bytes).map_err(|p| invalid(format!("frame {i}: {p}")))?;
        payload.resize(len as usize, 0);
        read_exact(r, &mut payload, &format!("frame {i}"))?;
        let computed = crc32c::crc32c(&payload);
        if computed != stored {
            return Err(invalid(format!(
                "frame {i}: checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, &head), &payload);
        on_frame(&payload)?;
    }
    let mut t = [0u8; TRAILER_LEN];
    read_exact(r, &mut t, "the trailer")?;
    if t[12..] != BACKUP_END || le_u64(&t) != frames {
        return Err(invalid(
            "bad trailer (frame count or end marker)".to_owned(),
        ));
    }
    if le_u32(&t[8..]) != crc {
        return Err(invalid("checksum over all frames mismatch".to_owned()));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(RestoreError::Read)? != 0 {
        return Err(invalid("unexpected bytes after the trailer".to_owned()));
    }
    Ok(chain)
}

/// Restores a backup into `backend` and returns its chain. The backup is verified completely
/// before anything is written; the chain must not already have a log there. The restored log
/// is synced before this returns. `options` gives the limits and segment size of the new log.
pub fn restore<R: Read + Seek>(
    reader: &mut R,
    backend: Arc<dyn Backend>,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<ChainId, RestoreError> {
    let total = reader.seek(SeekFrom::End(0)).map_err(RestoreError::Read)?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(RestoreError::Read)?;
    progress.progress(0, total * 2);
    let max = options.max_payload_bytes;
    let chain = read_backup(&mut BufReader::new(&mut *reader), max, &mut |_| Ok(()))?;
    progress.progress(total, total * 2);
    let dir = chain.to_string();
    let existing = backend.list(&dir).map_err(RestoreError::Read)?;
    if existing.iter().any(|n| parse_segment_name(n).is_some()) {
        return Err(RestoreError::AlreadyExists { dir });
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(RestoreError::Read)?;
    let result = write_restored(reader, Arc::clone(&backend), chain, options);
    if result.is_err() {
        // Best effort: leave no half-restored log behind. The primary error is what matters.
        for name in backend.list(&dir).unwrap_or_default() {
            if parse_segment_name(&name).is_some() {
                let _ = backend.remove(&dir, &name);
            }
        }
    }
    result?;
    progress.progress(total * 2, total * 2);
    Ok(chain)
}

/// The second pass of a restore: re-verify while appending to a fresh log, then sync.
fn write_restored<R: Read>(
    reader: &mut R,
    backend: Arc<dyn Backend>,
    chain: ChainId,
    options: &Options,
) -> Result<(), RestoreError> {
    let opts = Options {
        sync: SyncPolicy::Never,
        repair: false,
        ..options.clone()
    };
    let (mut log, _) = Log::open(backend, chain, &opts, &mut |_| {}, &mut crate::NoProgress)?;
    let mut data = Vec::with_capacity(CHUNK_BYTES);
    let mut ends = Vec::new();
    let chain_again = read_backup(
        &mut BufReader::new(reader),
        options.max_payload_bytes,
        &mut |payload| {
            data.extend_from_slice(payload);
            ends.push(data.len());
            if data.len() >= CHUNK_BYTES {
                flush_batch(&mut log, &mut data, &mut ends)?;
            }
            Ok(())
        },
    )?;
    if chain_again != chain {
        return Err(invalid("the file changed during the restore".to_owned()));
    }
    flush_batch(&mut log, &mut data, &mut ends)?;
    log.sync()?;
    Ok(())
}

/// Appends the payloads packed in `data` (ending at each of `ends`) as one batch.
fn flush_batch(
    log: &mut Log,
    data: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), crate::error::AppendError> {
    let mut start = 0;
    let slices: Vec<&[u8]> = ends
        .iter()
        .map(|&end| {
            let s = data.get(start..end).unwrap_or_default();
            start = end;
            s
        })
        .collect();
    let appended = log.append(0, &slices).map(|_| ());
    data.clear();
    ends.clear();
    appended
}
