//! One TCP connection to one server: the handshake, a frame reader, and a
//! writer task.
//!
//! Writes go through their own task so the session never blocks on a full
//! socket while the server is itself blocked writing replies we are not
//! reading; the writer also coalesces everything queued into one `write`,
//! which is what makes pipelining cheap.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use canopy_protocol::{build_frame, ConnectRequest, ConnectResponse, FrameCodec, Jute};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

/// Why a connection attempt failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// TCP connect, the handshake write or read failed or took too long.
    Io(String),
    /// The server refused to (re-)attach the session: it has expired.
    Expired,
}

/// An established connection with an attached session.
pub(crate) struct Connection {
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: mpsc::UnboundedSender<Bytes>,
    writer_task: JoinHandle<()>,
    pub(crate) peer: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.writer_task.abort();
    }
}

/// Largest amount of queued frames the writer coalesces into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

impl Connection {
    /// Connects to `host:port` and performs the session handshake, all
    /// within `timeout`.
    pub(crate) async fn open(
        host: &str,
        port: u16,
        request: &ConnectRequest,
        timeout: Duration,
    ) -> Result<(Connection, ConnectResponse), ConnectError> {
        let peer = format!("{host}:{port}");
        let attempt = async {
            let mut stream = TcpStream::connect((host, port))
                .await
                .map_err(|e| ConnectError::Io(format!("connect {peer}: {e}")))?;
            stream
                .set_nodelay(true)
                .map_err(|e| ConnectError::Io(e.to_string()))?;
            let frame = build_frame(|out| request.encode(out));
            stream
                .write_all(&frame)
                .await
                .map_err(|e| ConnectError::Io(format!("handshake with {peer}: {e}")))?;
            let (read, write) = stream.into_split();
            let mut reader = FramedRead::new(read, FrameCodec::default());
            let answer = match reader.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    return Err(ConnectError::Io(format!("handshake with {peer}: {e}")))
                }
                None => {
                    return Err(ConnectError::Io(format!(
                        "{peer} closed the connection during the handshake"
                    )))
                }
            };
            let response = ConnectResponse::from_bytes(&answer)
                .map_err(|e| ConnectError::Io(format!("bad ConnectResponse from {peer}: {e}")))?;
            if response.timeout <= 0 || response.session_id == 0 {
                return Err(ConnectError::Expired);
            }
            let (writer, queue) = mpsc::unbounded_channel();
            let writer_task = tokio::spawn(write_loop(write, queue));
            Ok((
                Connection {
                    reader,
                    writer,
                    writer_task,
                    peer: peer.clone(),
                },
                response,
            ))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Io(format!("{peer}: handshake timed out"))),
        }
    }

    /// Queues a complete frame (length prefix included). False if the writer
    /// has stopped, i.e. the connection is broken.
    pub(crate) fn send(&self, frame: Bytes) -> bool {
        self.writer.send(frame).is_ok()
    }

    /// The next frame from the server; `None` on EOF, an error on a broken
    /// or misframed stream.
    pub(crate) async fn recv(&mut self) -> Option<Result<BytesMut, String>> {
        self.reader
            .next()
            .await
            .map(|frame| frame.map_err(|e| e.to_string()))
    }

    /// True while the writer task is alive.
    pub(crate) fn writable(&self) -> bool {
        !self.writer_task.is_finished()
    }
}

async fn write_loop(
    mut socket: tokio::net::tcp::OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES);
    while let Some(frame) = queue.recv().await {
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if let Err(e) = socket.write_all(&batch).await {
            tracing::debug!("write failed: {e}");
            return;
        }
    }
    let _ = socket.shutdown().await;
}
