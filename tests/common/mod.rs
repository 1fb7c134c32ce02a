//! Shared helpers for the raw-wire integration tests: an in-process Canopy
//! server on a free port with a temporary data folder, and a tiny client that
//! speaks the ZooKeeper wire format byte by byte through `canopy-protocol`.
//!
//! Every read is bounded by a timeout, so a misbehaving server fails a test
//! instead of hanging it.

#![allow(dead_code)]

pub mod http;
pub mod process;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use canopy::config::Config;
use canopy::server::Server;
use canopy_protocol::{
    xid, Acl, ConnectRequest, ConnectResponse, CreateRequest, DeleteRequest, ExistsRequest,
    GetChildrenRequest, GetDataRequest, Jute, OpCode, ReplyHeader, Request, Response,
    SetDataRequest, WatcherEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait may take before the test fails. Generous: these
/// bounds catch hangs, they do not measure speed.
pub const WAIT: Duration = Duration::from_secs(10);

/// The tick used by test servers: small, so timeouts are quick.
pub const TICK_MS: u64 = 100;

/// A running server and the temporary folder it keeps its data in.
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// Settings for a test server: 127.0.0.1, a free port, a temporary data
/// folder, a 100 ms tick and session timeouts clamped into [200 ms, 2 s]
/// and a 2 s handshake timeout.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        tick_time_ms: TICK_MS,
        min_session_timeout_ms: 2 * TICK_MS as i32,
        max_session_timeout_ms: 20 * TICK_MS as i32,
        // No admin server unless a test asks for one (never the default 8080).
        admin_port: 0,
        handshake_timeout_ms: 2000,
        ..Config::default()
    }
}

pub async fn start_server() -> TestServer {
    start_server_with(|_| {}).await
}

/// Starts a server with the test settings, adjusted by `tweak`.
pub async fn start_server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let server = Server::start(config).await.expect("server starts");
    let addr = server.local_addr;
    TestServer {
        server,
        addr,
        _dir: dir,
    }
}

/// A connect request for a new session (3.4+ style, with the readOnly flag).
pub fn new_session_request(timeout_ms: i32) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: timeout_ms,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    }
}

/// A connect request re-attaching to an existing session.
pub fn reattach_request(session_id: i64, passwd: Bytes, timeout_ms: i32) -> ConnectRequest {
    ConnectRequest {
        session_id,
        passwd,
        ..new_session_request(timeout_ms)
    }
}

/// Prefixes `content` with its 4-byte big-endian length.
pub fn with_length(content: &[u8]) -> Vec<u8> {
    let mut out = (content.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(content);
    out
}

/// A full request frame (length prefix included).
pub fn request_frame(xid: i32, request: &Request) -> Vec<u8> {
    let mut content = Vec::new();
    request.encode_frame(xid, &mut content);
    with_length(&content)
}

/// Sends a four-letter word on a fresh connection and returns the answer.
pub async fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(word.as_bytes()).await.expect("send word");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("4lw answer in time")
        .expect("read 4lw answer");
    String::from_utf8(answer).expect("4lw answer is text")
}

/// A decoded reply: its header and, when `err` is 0, its body.
#[derive(Debug)]
pub struct Reply {
    pub header: ReplyHeader,
    pub body: Option<Response>,
}

impl Reply {
    pub fn err(&self) -> i32 {
        self.header.err
    }
    pub fn zxid(&self) -> i64 {
        self.header.zxid
    }
}

/// One raw connection to a server.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    next_xid: i32,
    /// Set once a handshake has attached a session.
    pub session_id: i64,
    pub passwd: Bytes,
    pub timeout_ms: i32,
    /// Notifications (xid -1) read while waiting for a reply, in arrival order.
    pub notifications: VecDeque<(ReplyHeader, WatcherEvent)>,
}

impl RawClient {
    /// Opens a TCP connection without sending anything.
    pub async fn open(addr: SocketAddr) -> RawClient {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: BytesMut::new(),
            next_xid: 1,
            session_id: 0,
            passwd: Bytes::new(),
            timeout_ms: 0,
            notifications: VecDeque::new(),
        }
    }

    /// Wraps a stream opened elsewhere (e.g. with socket options set).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient {
            stream,
            buf: BytesMut::new(),
            next_xid: 1,
            session_id: 0,
            passwd: Bytes::new(),
            timeout_ms: 0,
            notifications: VecDeque::new(),
        }
    }

    /// Opens a connection and starts a new session.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        Self::connect_with_timeout(addr, 10_000).await
    }

    /// Opens a connection and starts a new session asking for `timeout_ms`.
    pub async fn connect_with_timeout(addr: SocketAddr, timeout_ms: i32) -> RawClient {
        let mut client = RawClient::open(addr).await;
        let response = client
            .handshake(&new_session_request(timeout_ms))
            .await
            .expect("server answers the handshake");
        assert_ne!(response.session_id, 0, "new session refused: {response:?}");
        client
    }

    /// Sends a connect request and reads the answer, remembering the session
    /// if one was granted. `None` if the server closed without answering.
    pub async fn handshake(&mut self, request: &ConnectRequest) -> Option<ConnectResponse> {
        self.send_raw(&with_length(&request.to_bytes())).await;
        let frame = self.read_frame().await?;
        let response = ConnectResponse::from_bytes(&frame).expect("well-formed ConnectResponse");
        if response.session_id != 0 {
            self.session_id = response.session_id;
            self.passwd = response.passwd.clone();
            self.timeout_ms = response.timeout;
        }
        Some(response)
    }

    /// Writes bytes as they are. Write errors are ignored: the server may
    /// already have closed, which the following read shows.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(WAIT, self.stream.write_all(bytes)).await;
    }

    /// Sends a request with the next xid and returns that xid.
    pub async fn send(&mut self, request: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_with_xid(xid, request).await;
        xid
    }

    pub async fn send_with_xid(&mut self, xid: i32, request: &Request) {
        self.send_raw(&request_frame(xid, request)).await;
    }

    /// Reads one frame (without its length prefix); `None` on EOF or a read
    /// error. Panics if nothing arrives within [`WAIT`].
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        self.read_frame_within(WAIT)
            .await
            .expect("a frame or EOF within the bound")
    }

    /// Like [`RawClient::read_frame`], but `Err(())` if nothing happened
    /// within `bound`.
    pub async fn read_frame_within(&mut self, bound: Duration) -> Result<Option<Bytes>, ()> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes(self.buf[..4].try_into().unwrap());
                assert!(len >= 0, "server sent a negative frame length");
                let len = len as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads the frame as a reply header plus raw body; `None` on EOF.
    pub async fn read_header(&mut self) -> Option<(ReplyHeader, Bytes)> {
        let frame = self.read_frame().await?;
        let (rest, header) = ReplyHeader::decode(&frame).expect("well-formed ReplyHeader");
        let body = frame.slice(frame.len() - rest.len()..);
        Some((header, body))
    }

    /// Reads frames until the reply with `xid`, queueing notifications met on
    /// the way. Panics on EOF or on a reply to another xid.
    pub async fn read_reply(&mut self, xid: i32, op: OpCode) -> Reply {
        loop {
            let (header, body) = self
                .read_header()
                .await
                .unwrap_or_else(|| panic!("connection closed before the reply to xid {xid}"));
            if header.xid == xid::NOTIFICATION {
                let event = WatcherEvent::from_bytes(&body).expect("well-formed WatcherEvent");
                self.notifications.push_back((header, event));
                continue;
            }
            if header.xid == xid::PING && xid != xid::PING {
                // The reply to an earlier ping.
                continue;
            }
            assert_eq!(header.xid, xid, "reply to an unexpected xid: {header:?}");
            let body = if header.err == 0 {
                Some(Response::decode(op, &body).expect("well-formed reply body"))
            } else {
                assert!(body.is_empty(), "an error reply has no body");
                None
            };
            return Reply { header, body };
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn call(&mut self, request: Request) -> Reply {
        let op = request.op_code();
        let xid = match request {
            Request::Ping => {
                self.send_with_xid(xid::PING, &request).await;
                xid::PING
            }
            _ => self.send(&request).await,
        };
        self.read_reply(xid, op).await
    }

    /// The next notification: one already queued, or the next frame, which
    /// must be one. Replies to pings met on the way are skipped.
    pub async fn next_notification(&mut self) -> (ReplyHeader, WatcherEvent) {
        if let Some(note) = self.notifications.pop_front() {
            return note;
        }
        loop {
            let (header, body) = self
                .read_header()
                .await
                .expect("connection closed while waiting for a notification");
            if header.xid == xid::PING {
                continue;
            }
            assert_eq!(header.xid, xid::NOTIFICATION, "expected a notification");
            let event = WatcherEvent::from_bytes(&body).expect("well-formed WatcherEvent");
            return (header, event);
        }
    }

    /// Asserts that the server closes this connection within [`WAIT`],
    /// returning the frames it sent before closing.
    pub async fn expect_closed(&mut self) -> Vec<Bytes> {
        let mut frames = Vec::new();
        loop {
            match self.read_frame_within(WAIT).await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return frames,
                Err(()) => panic!("server did not close the connection within {WAIT:?}"),
            }
        }
    }

    // Shorthands for the common requests.

    pub async fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        self.call(Request::Create(CreateRequest {
            path: path.to_string(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: Acl::open_unsafe(),
            flags,
        }))
        .await
    }

    pub async fn get_data(&mut self, path: &str, watch: bool) -> Reply {
        self.call(Request::GetData(GetDataRequest {
            path: path.to_string(),
            watch,
        }))
        .await
    }

    pub async fn set_data(&mut self, path: &str, data: &[u8]) -> Reply {
        self.call(Request::SetData(SetDataRequest {
            path: path.to_string(),
            data: Some(Bytes::copy_from_slice(data)),
            version: -1,
        }))
        .await
    }

    pub async fn delete(&mut self, path: &str) -> Reply {
        self.call(Request::Delete(DeleteRequest {
            path: path.to_string(),
            version: -1,
        }))
        .await
    }

    pub async fn exists(&mut self, path: &str) -> Reply {
        self.call(Request::Exists(ExistsRequest {
            path: path.to_string(),
            watch: false,
        }))
        .await
    }

    pub async fn get_children(&mut self, path: &str, watch: bool) -> Reply {
        self.call(Request::GetChildren(GetChildrenRequest {
            path: path.to_string(),
            watch,
        }))
        .await
    }

    pub async fn ping(&mut self) -> Reply {
        self.call(Request::Ping).await
    }
}

/// The data of a successful getData reply.
pub fn data_of(reply: &Reply) -> Bytes {
    match &reply.body {
        Some(Response::GetData(r)) => r.data.clone().unwrap_or_default(),
        other => panic!("not a getData reply: {other:?} ({:?})", reply.header),
    }
}

/// The children of a successful getChildren reply, sorted.
pub fn children_of(reply: &Reply) -> Vec<String> {
    match &reply.body {
        Some(Response::GetChildren(r)) => {
            let mut children = r.children.clone();
            children.sort();
            children
        }
        other => panic!("not a getChildren reply: {other:?} ({:?})", reply.header),
    }
}
