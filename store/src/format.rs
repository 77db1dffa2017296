//! The on-disk format: segment names, the segment header, frames, and a bounded reader.
//!
//! ```text
//! segment  = header(64) frame*
//! header   = "ATELOG1\0" version:u16 flags:u16 index:u32 chain:[u8;32] reserved:[u8;12] crc:u32
//! frame    = len:u32 crc32c(payload):u32 payload[len]       (all integers little-endian)
//! ```
//!
//! A length of 0 is never written: zero-filled space (a file extended but never written) must
//! not parse as an endless run of empty frames, since CRC-32C of nothing is 0.

use std::io;

use ate_protocol::ChainId;

use crate::backend::Backend;
use crate::error::{FrameProblem, HeaderProblem};

/// The magic at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ATELOG1\0";
/// The segment format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_LEN: u64 = 64;
/// Bytes in a frame header (length + checksum).
pub const FRAME_HEADER_LEN: u64 = 8;
/// How much a reader fetches at a time beyond the frame it needs.
const READ_CHUNK: usize = 1 << 20;

/// The file name of segment `index`: `00000003.log`.
pub fn segment_name(index: u32) -> String {
    format!("{index:08}.log")
}

/// The index of a segment file name, or `None` for other files.
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() < 8 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The 64-byte header of segment `index` of `chain`.
pub(crate) fn segment_header(chain: &ChainId, index: u32) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&index.to_le_bytes());
    h[16..48].copy_from_slice(&chain.0);
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        b.copy_from_slice(src);
    }
    u16::from_le_bytes(b)
}

/// Checks a segment header against the expected chain and index.
pub(crate) fn check_segment_header(
    h: &[u8],
    chain: &ChainId,
    index: u32,
) -> Result<(), HeaderProblem> {
    if h.len() < SEGMENT_HEADER_LEN as usize {
        return Err(HeaderProblem::TooShort {
            len: h.len() as u64,
            need: SEGMENT_HEADER_LEN,
        });
    }
    if h.get(..8) != Some(&SEGMENT_MAGIC[..]) {
        return Err(HeaderProblem::BadMagic);
    }
    let version = le_u16(h, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::BadVersion(version));
    }
    if h.get(..60).map(crc32c::crc32c) != Some(le_u32(h, 60)) {
        return Err(HeaderProblem::BadChecksum);
    }
    let mut found = [0u8; 32];
    if let Some(src) = h.get(16..48) {
        found.copy_from_slice(src);
    }
    if found != chain.0 {
        return Err(HeaderProblem::OtherChain {
            found: ChainId(found).to_string(),
        });
    }
    let found_index = le_u32(h, 12);
    if found_index != index {
        return Err(HeaderProblem::WrongIndex {
            found: found_index,
            expected: index,
        });
    }
    Ok(())
}

/// Appends one frame for `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    // Callers check the payload against the limit (≤ u32::MAX) before encoding.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Checks a frame header before anything is allocated for its payload.
pub(crate) fn check_frame_len(len: u32, max_payload: u32) -> Result<(), FrameProblem> {
    if len == 0 {
        return Err(FrameProblem::ZeroLength);
    }
    if len > max_payload {
        return Err(FrameProblem::TooLong {
            len,
            limit: max_payload,
        });
    }
    Ok(())
}

/// What [`SegmentReader::frame_at`] found.
#[derive(Debug)]
pub(crate) enum FrameAt<'b> {
    /// The clean end of the readable range.
    End,
    /// A verified frame.
    Valid(&'b [u8]),
    /// A bad frame; `payload` is set when the frame was complete but failed its checksum (its
    /// length is then plausible and a dump can step over it).
    Bad {
        problem: FrameProblem,
        payload: Option<&'b [u8]>,
    },
}

/// The outcome of looking for a valid frame after a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resync {
    /// Nothing valid follows: the bad bytes are a tail.
    Nothing,
    /// A valid frame starts at this offset.
    Found(u64),
    /// The search gave up (work budget): assume something might follow.
    GaveUp,
}

/// Reads one segment through a bounded window; every allocation is at most one chunk plus one
/// maximal frame, whatever the bytes on disk say.
#[derive(Debug)]
pub(crate) struct SegmentReader<'a> {
    backend: &'a dyn Backend,
    dir: String,
    name: String,
    /// Readable length: the file's length, or less (a backup point).
    len: u64,
    max_payload: u32,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> SegmentReader<'a> {
    /// Opens a reader over `dir/name`, reading at most `limit` bytes (if given).
    pub(crate) fn open(
        backend: &'a dyn Backend,
        dir: &str,
        name: &str,
        limit: Option<u64>,
        max_payload: u32,
    ) -> io::Result<Self> {
        let file_len = backend.file_len(dir, name)?;
        Ok(SegmentReader {
            backend,
            dir: dir.to_owned(),
            name: name.to_owned(),
            len: limit.map_or(file_len, |l| l.min(file_len)),
            max_payload,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    /// The readable length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// `n` bytes at `off`, or `None` if they run past the readable length. `n` must be at most
    /// one maximal frame (callers check lengths from disk against the limit first).
    pub(crate) fn bytes(&mut self, off: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = off.checked_add(n as u64) else {
            return Ok(None);
        };
        if end > self.len {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if off < self.buf_start || end > buf_end {
            // The window covers a chunk plus one maximal frame, so a scan that advances a byte
            // at a time refills once per chunk, not once per position.
            let window = READ_CHUNK as u64 + FRAME_HEADER_LEN + u64::from(self.max_payload);
            let want = window.max(n as u64).min(self.len - off);
            self.buf.resize(usize::try_from(want).unwrap_or(n), 0);
            let mut done = 0;
            while done < self.buf.len() {
                let Some(rest) = self.buf.get_mut(done..) else {
                    break;
                };
                let got = self
                    .backend
                    .read_at(&self.dir, &self.name, off + done as u64, rest)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}/{} shrank while being read", self.dir, self.name),
                    ));
                }
                done += got;
            }
            self.buf_start = off;
        }
        let start = usize::try_from(off - self.buf_start).unwrap_or(usize::MAX);
        Ok(self.buf.get(start..start.saturating_add(n)))
    }

    /// Reads and verifies the frame at `off`.
    pub(crate) fn frame_at(&mut self, off: u64) -> io::Result<FrameAt<'_>> {
        if off >= self.len {
            return Ok(FrameAt::End);
        }
        let have = self.len - off;
        let Some(head) = self.bytes(off, FRAME_HEADER_LEN as usize)? else {
            let problem = FrameProblem::Truncated {
                need: FRAME_HEADER_LEN,
                have,
            };
            return Ok(FrameAt::Bad {
                problem,
                payload: None,
            });
        };
        let (len, stored) = (le_u32(head, 0), le_u32(head, 4));
        if let Err(problem) = check_frame_len(len, self.max_payload) {
            return Ok(FrameAt::Bad {
                problem,
                payload: None,
            });
        }
        let need = FRAME_HEADER_LEN + u64::from(len);
        let max_payload = self.max_payload;
        let Some(payload) = self.bytes(off + FRAME_HEADER_LEN, len as usize)? else {
            let problem = FrameProblem::Truncated { need, have };
            return Ok(FrameAt::Bad {
                problem,
                payload: None,
            });
        };
        debug_assert!(payload.len() <= max_payload as usize);
        let computed = crc32c::crc32c(payload);
        if computed != stored {
            let problem = FrameProblem::Checksum { stored, computed };
            return Ok(FrameAt::Bad {
                problem,
                payload: Some(payload),
            });
        }
        Ok(FrameAt::Valid(payload))
    }

    /// Looks for any valid frame starting after `bad` (at every byte offset, since the bad
    /// frame's length cannot be trusted). `budget` bounds the bytes checksummed, so hostile
    /// bytes cannot make this quadratic; running out answers [`Resync::GaveUp`].
    pub(crate) fn resync_after(&mut self, bad: u64, budget: &mut u64) -> io::Result<Resync> {
        let mut p = bad + 1;
        while p + FRAME_HEADER_LEN < self.len {
            let Some(head) = self.bytes(p, FRAME_HEADER_LEN as usize)? else {
                break;
            };
            let (len, stored) = (le_u32(head, 0), le_u32(head, 4));
            let fits = p + FRAME_HEADER_LEN + u64::from(len) <= self.len;
            if check_frame_len(len, self.max_payload).is_ok() && fits {
                if *budget < u64::from(len) {
                    return Ok(Resync::GaveUp);
                }
                *budget -= u64::from(len);
                let payload = self.bytes(p + FRAME_HEADER_LEN, len as usize)?;
                if payload.is_some_and(|payload| crc32c::crc32c(payload) == stored) {
                    return Ok(Resync::Found(p));
                }
            }
            p += 1;
        }
        Ok(Resync::Nothing)
    }

    /// Counts valid frames from `off` until the end or the first bad frame.
    pub(crate) fn count_valid_from(&mut self, mut off: u64) -> io::Result<(u64, bool)> {
        let mut count = 0;
        loop {
            match self.frame_at(off)? {
                FrameAt::End => return Ok((count, true)),
                FrameAt::Valid(p) => {
                    count += 1;
                    off += FRAME_HEADER_LEN + p.len() as u64;
                }
                FrameAt::Bad { .. } => return Ok((count, false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_other_files_are_ignored() {
        assert_eq!(segment_name(3), "00000003.log");
        assert_eq!(parse_segment_name("00000003.log"), Some(3));
        assert_eq!(parse_segment_name("123456789.log"), Some(123_456_789));
        for other in [
            "3.log",
            "0000000a.log",
            "00000003.tmp",
            "backup",
            "-0000001.log",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn segment_header_checks_each_field() {
        let chain = ChainId([5; 32]);
        let h = segment_header(&chain, 7);
        assert_eq!(check_segment_header(&h, &chain, 7), Ok(()));
        assert_eq!(
            check_segment_header(&h, &chain, 8),
            Err(HeaderProblem::WrongIndex {
                found: 7,
                expected: 8
            })
        );
        assert!(matches!(
            check_segment_header(&h, &ChainId([6; 32]), 7),
            Err(HeaderProblem::OtherChain { .. })
        ));
        let mut bad = h;
        bad[20] ^= 1;
        assert_eq!(
            check_segment_header(&bad, &chain, 7),
            Err(HeaderProblem::BadChecksum)
        );
        assert!(matches!(
            check_segment_header(&h[..10], &chain, 7),
            Err(HeaderProblem::TooShort { len: 10, .. })
        ));
    }

    #[test]
    fn frame_lengths_are_checked_against_the_limit() {
        assert_eq!(check_frame_len(0, 10), Err(FrameProblem::ZeroLength));
        assert_eq!(check_frame_len(10, 10), Ok(()));
        assert_eq!(
            check_frame_len(u32::MAX, 10),
            Err(FrameProblem::TooLong {
                len: u32::MAX,
                limit: 10
            })
        );
        let mut out = Vec::new();
        encode_frame(b"abc", &mut out);
        assert_eq!(out.len(), 11);
        assert_eq!(le_u32(&out, 0), 3);
        assert_eq!(le_u32(&out, 4), crc32c::crc32c(b"abc"));
    }
}
