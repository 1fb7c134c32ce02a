//! The two halves of a client connection, plain TCP or TLS, as the
//! connection handler needs them.
//!
//! A plain socket can do two things a TLS stream cannot: wait until it is
//! readable without holding a buffer (so an idle connection costs next to no
//! memory), and be reset with a zero linger (so a client that stopped reading
//! loses what the kernel still holds for it). TLS halves fall back to a plain
//! buffered read and an ordinary close.

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes a read may take at once: room for a few hundred small requests, so
/// a busy client's pipeline comes in with few reads.
const READ_CHUNK: usize = 16 * 1024;

/// The reading half of a connection.
pub trait ConnReader: AsyncRead + Unpin + Send {
    /// Reads what is available into `buf`, growing it only once data is
    /// there when the stream allows that. 0 means the peer closed.
    fn read_some(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send {
        async move {
            buf.reserve(READ_CHUNK);
            self.read_buf(buf).await
        }
    }

    /// Reads what is available now into `buf` without waiting: None when
    /// nothing is (or the stream cannot tell without waiting).
    fn try_read_some(&mut self, _buf: &mut BytesMut) -> Option<io::Result<usize>> {
        None
    }
}

/// The writing half of a connection.
pub trait ConnWriter: AsyncWrite + Unpin + Send + 'static {
    /// Makes the close that follows a reset, where the stream can.
    fn reset(&mut self) {}
}

impl ConnReader for OwnedReadHalf {
    fn try_read_some(&mut self, buf: &mut BytesMut) -> Option<io::Result<usize>> {
        buf.reserve(READ_CHUNK);
        match self.try_read_buf(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
            read => Some(read),
        }
    }

    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            buf.reserve(READ_CHUNK);
            match self.try_read_buf(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => return read,
            }
        }
    }
}

impl ConnWriter for OwnedWriteHalf {
    fn reset(&mut self) {
        let _ = self.as_ref().set_zero_linger();
    }
}

impl<T: AsyncRead + AsyncWrite + Send> ConnReader for ReadHalf<T> {}

impl<T: AsyncRead + AsyncWrite + Send + 'static> ConnWriter for WriteHalf<T> {}
