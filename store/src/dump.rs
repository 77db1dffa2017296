//! `ate log dump`: every frame of a chain's log, good or bad, read-only.
//!
//! Unlike [`crate::Log::open`], a dump never cuts anything: it shows frames that fail their
//! checksum (with `crc_ok: false`) and steps over them when their length is plausible, and
//! reports an unreadable frame (implausible length, incomplete) before moving to the next
//! segment. The node decodes each payload with the protocol crate to print id, author, kind,
//! clock and validity.

use std::collections::VecDeque;

use ate_protocol::ChainId;

use crate::backend::Backend;
use crate::error::DumpError;
use crate::format::{
    FRAME_HEADER_LEN, FrameAt, SEGMENT_HEADER_LEN, SegmentReader, check_segment_header,
    parse_segment_name, segment_name,
};

/// One frame as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFrame {
    /// The segment file name.
    pub segment: String,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// The payload length.
    pub len: u32,
    /// Whether the payload matches its checksum.
    pub crc_ok: bool,
    /// The payload (an event envelope, if `crc_ok`).
    pub payload: Vec<u8>,
}

/// The chains that have a log directory in `backend`, sorted.
pub fn chains(backend: &dyn Backend) -> Result<Vec<ChainId>, DumpError> {
    let dirs = backend.list_dirs().map_err(|source| DumpError::Io {
        path: "the data directory".to_owned(),
        source,
    })?;
    Ok(dirs.iter().filter_map(|d| d.parse().ok()).collect())
}

/// Iterates over every frame of `chain`'s log. `max_payload_bytes` bounds what is read per frame
/// (use the node's `Options::max_payload_bytes`).
pub fn dump<'a>(
    backend: &'a dyn Backend,
    chain: &ChainId,
    max_payload_bytes: u32,
) -> Result<Dump<'a>, DumpError> {
    let dir = chain.to_string();
    let names = backend.list(&dir).map_err(|source| DumpError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut segments: Vec<u32> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    segments.sort_unstable();
    Ok(Dump {
        backend,
        chain: *chain,
        dir,
        max_payload_bytes,
        segments: segments.into(),
        current: None,
    })
}

/// The iterator returned by [`dump`]. After an error item, iteration continues with the next
/// segment.
#[derive(Debug)]
pub struct Dump<'a> {
    backend: &'a dyn Backend,
    chain: ChainId,
    dir: String,
    max_payload_bytes: u32,
    segments: VecDeque<u32>,
    current: Option<(u32, SegmentReader<'a>, u64)>,
}

impl Dump<'_> {
    /// Opens the next segment and checks its header; `Ok(false)` when none is left.
    fn open_next(&mut self) -> Result<bool, DumpError> {
        let Some(index) = self.segments.pop_front() else {
            return Ok(false);
        };
        let name = segment_name(index);
        let path = format!("{}/{name}", self.dir);
        let io = |source| DumpError::Io {
            path: path.clone(),
            source,
        };
        let mut reader =
            SegmentReader::open(self.backend, &self.dir, &name, None, self.max_payload_bytes)
                .map_err(io)?;
        let header = reader
            .bytes(0, SEGMENT_HEADER_LEN as usize)
            .map_err(io)?
            .unwrap_or_default();
        check_segment_header(header, &self.chain, index).map_err(|problem| {
            DumpError::BadSegment {
                path: path.clone(),
                problem,
            }
        })?;
        self.current = Some((index, reader, SEGMENT_HEADER_LEN));
        Ok(true)
    }
}

impl Iterator for Dump<'_> {
    type Item = Result<DumpFrame, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((index, reader, off)) = self.current.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            };
            let segment = segment_name(*index);
            let offset = *off;
            let (payload, crc_ok) = match reader.frame_at(offset) {
                Err(source) => {
                    let path = format!("{}/{segment}", self.dir);
                    self.current = None;
                    return Some(Err(DumpError::Io { path, source }));
                }
                Ok(FrameAt::End) => {
                    self.current = None;
                    continue;
                }
                Ok(FrameAt::Valid(p)) => (p.to_vec(), true),
                Ok(FrameAt::Bad {
                    payload: Some(p), ..
                }) => (p.to_vec(), false),
                Ok(FrameAt::Bad {
                    problem,
                    payload: None,
                }) => {
                    self.current = None;
                    return Some(Err(DumpError::Unreadable {
                        segment,
                        offset,
                        problem,
                    }));
                }
            };
            *off += FRAME_HEADER_LEN + payload.len() as u64;
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            return Some(Ok(DumpFrame {
                segment,
                offset,
                len,
                crc_ok,
                payload,
            }));
        }
    }
}
