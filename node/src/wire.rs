//! The `/ate/sync/1` request-response protocol: postcard messages, length-prefixed and
//! size-limited.
//!
//! A replica's `Output::Send { to, msg }` becomes a request to `to`. The receiver feeds the
//! message to its replica and answers with whatever the replica wants to send back to the
//! requester in the same breath (for example the events a `GetEvents` asked for); other
//! outputs travel as requests of their own. So the request-response pattern of libp2p carries
//! the replica's plain message passing without the replica knowing.

use std::io;

use ate_protocol::ChainId;
use ate_protocol::replica::{MAX_SYNC_MSG_BYTES, SyncMsg};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ate/sync/1");

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

/// Length-prefixed postcard codec with a size limit on every frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync frame of {len} bytes is over the limit of {MAX_FRAME_BYTES}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
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

fn decode<M: for<'a> Deserialize<'a>>(bytes: &[u8]) -> io::Result<M> {
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

fn encode<M: Serialize>(msg: &M) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(msg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&req)?).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&res)?).await
    }
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
}
