//! The frames of `/ate/sync/1`: postcard messages, length-prefixed and size-limited. Pure
//! (futures' IO traits, `ate_protocol`, serde and postcard only), so the fuzz target
//! `sync_frame` includes this file by path without pulling in libp2p.

use std::io;

use ate_protocol::ChainId;
use ate_protocol::replica::{MAX_SYNC_MSG_BYTES, SyncMsg};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

/// Largest request or response on the wire.
pub const MAX_FRAME_BYTES: usize = MAX_SYNC_MSG_BYTES + 1024;

/// A sync request: one message for one chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The chain the message is about.
    pub chain: ChainId,
    /// The message.
    pub msg: SyncMsg,
}

/// A sync response: the messages the receiver's replica sent straight back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Messages for the requester (possibly none).
    pub msgs: Vec<SyncMsg>,
    /// Set when the receiver does not follow the chain.
    pub unknown_chain: bool,
}

pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync frame of {len} bytes is over the limit of {MAX_FRAME_BYTES}"),
        ));
    }
    // Memory grows with the bytes that actually arrive, not with what the header claims: a
    // peer that sends only headers on many streams cannot make the node reserve 8 MiB each.
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("sync frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

pub(crate) async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> io::Result<()> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "sync frame over the limit",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

pub(crate) fn decode<M: for<'a> Deserialize<'a>>(bytes: &[u8]) -> io::Result<M> {
    let (msg, rest) = postcard::take_from_bytes::<M>(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed sync frame: {e}"),
        )
    })?;
    if !rest.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "trailing bytes in sync frame",
        ));
    }
    Ok(msg)
}

pub(crate) fn encode<M: Serialize>(msg: &M) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(msg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_garbage() {
        let req = SyncRequest {
            chain: ChainId([1; 32]),
            msg: SyncMsg::GetEvents { ids: vec![] },
        };
        let bytes = encode(&req).unwrap();
        let back: SyncRequest = decode(&bytes).unwrap();
        assert_eq!(back.chain, req.chain);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<SyncRequest>(&trailing).is_err());
        assert!(decode::<SyncRequest>(&[0xff; 7]).is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let mut io = futures::io::Cursor::new(vec![0xff, 0xff, 0xff, 0x7f]);
        let err = futures::executor::block_on(read_frame(&mut io)).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
    }

    #[test]
    fn a_frame_shorter_than_its_header_says_is_an_error() {
        // The header claims 1 MiB; 3 bytes follow.
        let mut bytes = (1u32 << 20).to_le_bytes().to_vec();
        bytes.extend([1, 2, 3]);
        let mut io = futures::io::Cursor::new(bytes);
        let err = futures::executor::block_on(read_frame(&mut io)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("after 3 of 1048576"), "{err}");
        // A whole frame reads back.
        let mut framed = Vec::new();
        futures::executor::block_on(write_frame(&mut framed, b"abc")).unwrap();
        let mut io = futures::io::Cursor::new(framed);
        assert_eq!(
            futures::executor::block_on(read_frame(&mut io)).unwrap(),
            b"abc"
        );
    }
}
