//! The `/ate/sync/1` request-response protocol: postcard messages, length-prefixed and
//! size-limited.
//!
//! A replica's `Output::Send { to, msg }` becomes a request to `to`. The receiver feeds the
//! message to its replica and answers with whatever the replica wants to send back to the
//! requester in the same breath (for example the events a `GetEvents` asked for); other
//! outputs travel as requests of their own. So the request-response pattern of libp2p carries
//! the replica's plain message passing without the replica knowing.

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;

mod frame;

pub use frame::{MAX_FRAME_BYTES, SyncRequest, SyncResponse};
use frame::{decode, encode, read_frame, write_frame};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ate/sync/1");

/// Length-prefixed postcard codec with a size limit on every frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCodec;

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
