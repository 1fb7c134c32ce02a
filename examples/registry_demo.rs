//! Canopy as a Dubbo-style service registry, end to end.
//!
//! Run with `cargo run --example registry_demo`.
//!
//! Dubbo keeps its registry in ZooKeeper as a tree of folders:
//!
//! ```text
//! /dubbo/<interface>/providers/<url-encoded provider URL>    (ephemeral)
//! ```
//!
//! A provider registers by creating an *ephemeral* node named after its URL; a
//! consumer lists the `providers` folder and *watches* it for changes. This
//! demo plays both roles over plain TCP against a Canopy server embedded in the
//! same process, using only `canopy-protocol` to encode and decode ZooKeeper's
//! wire format: no ZooKeeper client library is involved.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use canopy::config::Config;
use canopy::server::Server;
use canopy_protocol::{
    xid, Acl, ConnectRequest, ConnectResponse, CreateMode, CreateRequest, DecodeError, ErrorCode,
    EventType, FrameCodec, GetChildrenRequest, Jute, ReplyHeader, Request, Response, WatcherEvent,
};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The folder Dubbo lists to find the providers of the demo service.
const PROVIDERS: &str = "/dubbo/org.apache.dubbo.demo.DemoService/providers";
/// How long any single network wait may take before the demo gives up.
const WAIT: Duration = Duration::from_secs(5);
/// Requested session timeout: far longer than the demo, so we need no pings.
const SESSION_TIMEOUT_MS: i32 = 30_000;

/// Runs `work`, failing with a clear message if it takes longer than [`WAIT`].
async fn within<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(WAIT, work)
        .await
        .map_err(|_| format!("timed out waiting for {what}"))?
}

/// One ZooKeeper session over one TCP connection: a deliberately tiny client.
/// Every frame is a 4-byte length plus content; [`FrameCodec`] handles the
/// length, `canopy-protocol` the content.
struct Session {
    name: &'static str,
    conn: Framed<TcpStream, FrameCodec>,
    next_xid: i32,
    /// Watch notifications that arrived while we were waiting for a reply.
    events: VecDeque<WatcherEvent>,
}

impl Session {
    async fn connect(name: &'static str, addr: SocketAddr) -> Result<Session> {
        let stream = within("TCP connect", async { Ok(TcpStream::connect(addr).await?) }).await?;
        let mut session = Session {
            name,
            conn: Framed::new(stream, FrameCodec::default()),
            next_xid: 1,
            events: VecDeque::new(),
        };
        // The handshake is the one frame without a request header: session id
        // 0 and a zero password ask for a new session.
        let hello = ConnectRequest {
            timeout: SESSION_TIMEOUT_MS,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
            ..Default::default()
        };
        session.conn.send(hello.to_bytes()).await?;
        let frame = within("the handshake", session.read_frame()).await?;
        let answer = ConnectResponse::from_bytes(&frame)?;
        if answer.session_id == 0 {
            return Err(format!("[{name}] the server refused the session").into());
        }
        println!(
            "[{name}] session 0x{:x} established (timeout {} ms)",
            answer.session_id, answer.timeout
        );
        Ok(session)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let frame = self
            .conn
            .next()
            .await
            .ok_or("server closed the connection")??;
        Ok(frame.freeze())
    }

    /// Reads a reply header and returns it with the body that follows it.
    async fn read_reply(&mut self) -> Result<(ReplyHeader, Bytes)> {
        let frame = self.read_frame().await?;
        let (body, header) = ReplyHeader::decode(&frame).map_err(|_| DecodeError::Malformed)?;
        let body = frame.slice(frame.len() - body.len()..);
        Ok((header, body))
    }

    /// Sends one request and waits for its reply. The outer `Result` is for
    /// transport trouble, the inner one for ZooKeeper's answer (e.g. NodeExists).
    async fn call(&mut self, request: Request) -> Result<std::result::Result<Response, ErrorCode>> {
        let my_xid = self.next_xid;
        self.next_xid += 1;
        let op = request.op_code();
        let mut frame = Vec::new();
        request.encode_frame(my_xid, &mut frame);
        self.conn.send(Bytes::from(frame)).await?;
        within(&format!("the reply to {op:?}"), async {
            loop {
                let (header, body) = self.read_reply().await?;
                // Notifications (xid -1) can arrive at any time: keep them for later.
                if header.xid == xid::NOTIFICATION {
                    self.events.push_back(WatcherEvent::from_bytes(&body)?);
                    continue;
                }
                if header.xid != my_xid {
                    return Err(
                        format!("reply for xid {} while waiting for {my_xid}", header.xid).into(),
                    );
                }
                if header.err != 0 {
                    let code = ErrorCode::from_i32(header.err)
                        .ok_or_else(|| format!("unknown error code {}", header.err))?;
                    return Ok(Err(code));
                }
                return Ok(Ok(Response::decode(op, &body)?));
            }
        })
        .await
    }

    /// The next watch notification, queued or still to come.
    async fn next_event(&mut self) -> Result<WatcherEvent> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        within("a watch notification", async {
            let (header, body) = self.read_reply().await?;
            if header.xid != xid::NOTIFICATION {
                return Err(format!(
                    "unexpected reply xid {} instead of a notification",
                    header.xid
                )
                .into());
            }
            Ok(WatcherEvent::from_bytes(&body)?)
        })
        .await
    }

    async fn create(
        &mut self,
        path: &str,
        mode: CreateMode,
    ) -> Result<std::result::Result<(), ErrorCode>> {
        let request = CreateRequest {
            path: path.to_string(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: mode as i32,
        };
        Ok(self.call(Request::Create(request)).await?.map(|_| ()))
    }

    /// Ends the session (closeSession, opcode -11). The server deletes the
    /// session's ephemeral nodes at once, without waiting for a timeout.
    async fn close(mut self) -> Result<()> {
        self.call(Request::CloseSession)
            .await?
            .map_err(|code| format!("[{}] closeSession failed: {code}", self.name))?;
        println!("[{}] session closed", self.name);
        Ok(())
    }
}

/// Registers a provider the way Dubbo does: persistent folders, ephemeral leaf.
async fn register(provider: &mut Session, url: &str) -> Result<()> {
    // The folders are shared by every provider and outlive them: whoever comes
    // first creates them, the others get NodeExists, which is fine.
    let mut folder = String::new();
    for part in PROVIDERS.split('/').skip(1) {
        folder = format!("{folder}/{part}");
        match provider.create(&folder, CreateMode::Persistent).await? {
            Ok(()) | Err(ErrorCode::NodeExists) => {}
            Err(code) => return Err(format!("creating {folder}: {code}").into()),
        }
    }
    // The leaf is ephemeral: it lives exactly as long as the provider's
    // session, so a crashed or stopped provider disappears from the registry.
    let leaf = format!("{PROVIDERS}/{}", url_encode(url));
    provider
        .create(&leaf, CreateMode::Ephemeral)
        .await?
        .map_err(|code| format!("registering {leaf}: {code}"))?;
    println!("[{}] registered {url}", provider.name);
    Ok(())
}

/// Lists the providers and leaves a watch on the list. Watches are one-shot:
/// once one fires, the consumer must read again with watch=true (as Dubbo
/// does) or later changes go unnoticed. Reading again also catches changes
/// made between the notification and the new watch.
async fn discover(consumer: &mut Session, expected: &[&str]) -> Result<()> {
    let request = GetChildrenRequest {
        path: PROVIDERS.to_string(),
        watch: true,
    };
    let children = match consumer.call(Request::GetChildren(request)).await? {
        Ok(Response::GetChildren(reply)) => reply.children,
        Ok(other) => return Err(format!("unexpected getChildren reply {other:?}").into()),
        Err(code) => return Err(format!("getChildren {PROVIDERS}: {code}").into()),
    };
    let mut urls = children
        .iter()
        .map(|child| url_decode(child))
        .collect::<Result<Vec<_>>>()?;
    urls.sort();
    println!("[consumer] {} provider(s), watch armed:", urls.len());
    for url in &urls {
        println!("[consumer]   {url}");
    }
    let mut expected: Vec<String> = expected.iter().map(|url| url.to_string()).collect();
    expected.sort();
    if urls != expected {
        return Err(format!("expected providers {expected:?}, found {urls:?}").into());
    }
    Ok(())
}

/// Waits for the watch on the providers folder to fire, then re-reads it.
async fn on_change(consumer: &mut Session, expected: &[&str]) -> Result<()> {
    let event = consumer.next_event().await?;
    if EventType::from_i32(event.event_type) != Some(EventType::NodeChildrenChanged)
        || event.path != PROVIDERS
    {
        return Err(format!("unexpected notification {event:?}").into());
    }
    println!(
        "[consumer] watch fired: NodeChildrenChanged on {}",
        event.path
    );
    discover(consumer, expected).await
}

/// Percent-encodes like Java's `URLEncoder`, which Dubbo uses for node names:
/// `/` must not appear in a node name, so `dubbo://` becomes `dubbo%3A%2F%2F`.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The reverse of [`url_encode`].
fn url_decode(text: &str) -> Result<String> {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        rest = tail;
        match first {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                bytes.push(byte.ok_or_else(|| format!("bad escape in {text:?}"))?);
                rest = &rest[2..];
            }
            other => bytes.push(other),
        }
    }
    Ok(String::from_utf8(bytes)?)
}

async fn run(data_dir: std::path::PathBuf) -> Result<()> {
    // 1. An embedded server on a free port. Sessions may ask for up to 60 s.
    let config = Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        data_dir,
        max_session_timeout_ms: 60_000,
        // No admin HTTP server for the demo.
        admin_port: 0,
        ..Config::default()
    };
    let server = Server::start(config).await?;
    println!("Canopy listening on {}", server.local_addr);

    // 2. The first provider registers itself.
    let url_a = "dubbo://127.0.0.1:20880/org.apache.dubbo.demo.DemoService?application=demo-provider&version=1.0.0";
    let url_b = "dubbo://127.0.0.1:20881/org.apache.dubbo.demo.DemoService?application=demo-provider&version=1.0.0";
    let mut provider_a = Session::connect("provider-1", server.local_addr).await?;
    register(&mut provider_a, url_a).await?;
    println!("[provider-1] node name: {}", url_encode(url_a));

    // 3. The consumer discovers it and watches for changes.
    let mut consumer = Session::connect("consumer", server.local_addr).await?;
    discover(&mut consumer, &[url_a]).await?;

    // 4. A second provider comes up while the consumer watches.
    let mut provider_b = Session::connect("provider-2", server.local_addr).await?;
    register(&mut provider_b, url_b).await?;
    on_change(&mut consumer, &[url_a, url_b]).await?;

    // 5. Providers go away: closing a session removes its ephemeral node, and
    //    the consumer's (re-armed) watch tells it so.
    provider_a.close().await?;
    on_change(&mut consumer, &[url_b]).await?;
    provider_b.close().await?;
    on_change(&mut consumer, &[]).await?;
    println!("[consumer] no providers left");

    consumer.close().await?;
    server.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let data_dir =
        std::env::temp_dir().join(format!("canopy-registry-demo-{}", std::process::id()));
    let outcome = run(data_dir.clone()).await;
    // Best effort: the folder may not exist if the server never started.
    let _ = std::fs::remove_dir_all(&data_dir);
    match outcome {
        Ok(()) => {
            println!("registry demo finished successfully");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("registry demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}
