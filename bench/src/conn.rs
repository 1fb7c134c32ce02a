//! A minimal pipelined ZooKeeper connection built straight on the protocol
//! crate: requests are encoded into one write buffer and flushed together,
//! replies are split from one read buffer, and notifications (xid -1) and
//! ping replies (xid -2) are told apart from replies by the caller.
//!
//! There is no reconnect and no background task: the load generator owns the
//! connection and drives it, which keeps the per-request cost to an encode, a
//! share of one `write` and a share of one `read`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use canopy_protocol::{
    xid, ConnectRequest, ConnectResponse, ErrorCode, FrameCodec, Jute, OpCode, ReplyHeader,
    Request, Response, WatcherEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Decoder;

/// Replies can be large (getChildren of a wide parent), so accept far more
/// than ZooKeeper's default `jute.maxbuffer`.
const MAX_FRAME: usize = 64 << 20;

/// One session on one TCP connection.
pub struct Conn {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    next_xid: i32,
    io_timeout: Duration,
    pub session_id: i64,
    /// The session's password, needed to resume it on a new connection.
    pub passwd: Bytes,
    /// The negotiated session timeout in milliseconds.
    pub timeout_ms: i32,
    /// Notifications that arrived while [`Conn::call`] waited for a reply.
    pub events: VecDeque<WatcherEvent>,
}

/// One frame from the server, split into its header and body.
pub struct Reply {
    pub header: ReplyHeader,
    pub body: BytesMut,
}

impl Reply {
    pub fn is_notification(&self) -> bool {
        self.header.xid == xid::NOTIFICATION
    }

    pub fn is_ping(&self) -> bool {
        self.header.xid == xid::PING
    }

    /// The notification's event; errors if the body is not one.
    pub fn event(&self) -> Result<WatcherEvent> {
        WatcherEvent::from_bytes(&self.body).map_err(|e| anyhow!("bad notification: {e:?}"))
    }

    /// Decodes a successful reply to a request of opcode `op`.
    pub fn decode(&self, op: OpCode) -> Result<Response> {
        if self.header.err != 0 {
            return Ok(Response::Empty);
        }
        Response::decode(op, &self.body).map_err(|e| anyhow!("bad {} reply: {e:?}", op.name()))
    }
}

/// A stable name for an error code (the Java enum's, e.g. `NodeExists`),
/// as used in the JSON line.
pub fn error_name(code: i32) -> String {
    match ErrorCode::from_i32(code) {
        Some(e) => format!("{e:?}"),
        None => format!("ERROR{code}"),
    }
}

impl Conn {
    /// Connects and opens a new session asking for `session_timeout_ms`.
    pub async fn connect(
        addr: &str,
        session_timeout_ms: u32,
        io_timeout: Duration,
    ) -> Result<Conn> {
        Conn::open(
            addr,
            session_timeout_ms,
            io_timeout,
            0,
            Bytes::from_static(&[0; 16]),
        )
        .await
    }

    /// Connects and resumes an existing session (as a client does after
    /// losing its connection). Fails if the server says the session is gone.
    pub async fn resume(
        addr: &str,
        session_timeout_ms: u32,
        io_timeout: Duration,
        session_id: i64,
        passwd: Bytes,
    ) -> Result<Conn> {
        Conn::open(addr, session_timeout_ms, io_timeout, session_id, passwd).await
    }

    async fn open(
        addr: &str,
        session_timeout_ms: u32,
        io_timeout: Duration,
        session_id: i64,
        passwd: Bytes,
    ) -> Result<Conn> {
        let stream = timeout(io_timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            codec: FrameCodec::new(MAX_FRAME),
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: Vec::with_capacity(64 * 1024),
            next_xid: 1,
            io_timeout,
            session_id: 0,
            passwd: Bytes::new(),
            timeout_ms: 0,
            events: VecDeque::new(),
        };
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: i32::try_from(session_timeout_ms).unwrap_or(i32::MAX),
            session_id,
            passwd,
            read_only: Some(false),
        };
        conn.push_raw(|out| request.encode(out));
        conn.flush().await?;
        let frame = conn.next_frame_wait().await?;
        let response = ConnectResponse::from_bytes(&frame)
            .map_err(|e| anyhow!("bad connect response from {addr}: {e:?}"))?;
        if response.timeout <= 0 || response.session_id == 0 {
            if session_id != 0 {
                bail!("{addr}: session 0x{session_id:x} has expired");
            }
            bail!("{addr} refused the session");
        }
        conn.session_id = response.session_id;
        conn.passwd = response.passwd;
        conn.timeout_ms = response.timeout;
        Ok(conn)
    }

    /// Appends a length-prefixed frame whose content `write` produces.
    fn push_raw(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.wbuf.len();
        self.wbuf.put_i32(0);
        write(&mut self.wbuf);
        let len = (self.wbuf.len() - start - 4) as i32;
        self.wbuf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Queues a request (not yet sent) and returns its xid.
    pub fn push(&mut self, request: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        self.push_raw(|out| request.encode_frame(xid, out));
        xid
    }

    /// Queues a ping (xid -2).
    pub fn push_ping(&mut self) {
        self.push_raw(|out| Request::Ping.encode_frame(xid::PING, out));
    }

    pub fn has_unsent(&self) -> bool {
        !self.wbuf.is_empty()
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        timeout(self.io_timeout, self.stream.write_all(&self.wbuf))
            .await
            .context("write timed out")?
            .context("write failed")?;
        self.wbuf.clear();
        Ok(())
    }

    /// The next complete frame already read, if any.
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>> {
        self.codec
            .decode(&mut self.rbuf)
            .map_err(|e| anyhow!("bad frame: {e}"))
    }

    /// The next complete reply already read, if any.
    pub fn next_reply(&mut self) -> Result<Option<Reply>> {
        let Some(mut frame) = self.next_frame()? else {
            return Ok(None);
        };
        let (rest, header) =
            ReplyHeader::decode(&frame).map_err(|_| anyhow!("truncated reply header"))?;
        let consumed = frame.len() - rest.len();
        let body = frame.split_off(consumed);
        Ok(Some(Reply { header, body }))
    }

    /// Reads whatever the socket has (waiting at most `wait`); returns false
    /// if nothing came in that time.
    pub async fn read_some(&mut self, wait: Duration) -> Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        match timeout(wait, self.stream.read_buf(&mut self.rbuf)).await {
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(e).context("read failed"),
            Ok(Ok(0)) => bail!("server closed the connection"),
            Ok(Ok(_)) => Ok(true),
        }
    }

    /// Reads until a frame is complete, within the I/O timeout.
    async fn next_frame_wait(&mut self) -> Result<BytesMut> {
        let deadline = tokio::time::Instant::now() + self.io_timeout;
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.read_some(left).await? {
                bail!("no answer from the server within {:?}", self.io_timeout);
            }
        }
    }

    /// Reads until a reply is complete, within the I/O timeout.
    pub async fn next_reply_wait(&mut self) -> Result<Reply> {
        let deadline = tokio::time::Instant::now() + self.io_timeout;
        loop {
            if let Some(reply) = self.next_reply()? {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.read_some(left).await? {
                bail!("no answer from the server within {:?}", self.io_timeout);
            }
        }
    }

    /// Sends one request and waits for its reply, keeping notifications that
    /// arrive meanwhile in [`Conn::events`]. Returns the error code and body.
    pub async fn call(&mut self, request: &Request) -> Result<(i32, Response)> {
        let xid = self.push(request);
        self.flush().await?;
        loop {
            let reply = self.next_reply_wait().await?;
            if reply.is_notification() {
                self.events.push_back(reply.event()?);
            } else if reply.header.xid == xid {
                let response = reply.decode(request.op_code())?;
                return Ok((reply.header.err, response));
            } else if !reply.is_ping() {
                bail!(
                    "reply with xid {} while waiting for {xid}",
                    reply.header.xid
                );
            }
        }
    }

    /// Like [`Conn::call`] but any error code is a failure.
    pub async fn call_ok(&mut self, request: &Request) -> Result<Response> {
        let (err, response) = self.call(request).await?;
        if err != 0 {
            bail!("{} failed: {}", request.op_code().name(), error_name(err));
        }
        Ok(response)
    }

    /// Closes the session politely (its ephemerals go at once).
    pub async fn close(mut self) -> Result<()> {
        self.call(&Request::CloseSession).await.map(|_| ())
    }

    /// Drops the TCP connection without closing the session, as a crashed
    /// client would: the session lives on until it expires.
    pub fn cut(self) {
        drop(self.stream);
    }
}
