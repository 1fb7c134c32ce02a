//! Bad input gets a clear error and loses nothing.
//!
//! Each test opens a healthy session and writes a node, then sends one kind of
//! bad input on a separate connection, and checks that:
//! - the server closes that one connection (EOF within a bound);
//! - the healthy session, opened before the bad input, still reads and writes;
//! - the acknowledged node is still there;
//! - four-letter words (`ruok`) still work.

mod common;

use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{GetDataRequest, Jute, OpCode, Request, RequestHeader};
use common::*;

/// The healthy side of every test: a session with an acknowledged node.
struct Bystander {
    client: RawClient,
    path: String,
}

impl Bystander {
    async fn new(server: &TestServer, name: &str) -> Bystander {
        let mut client = RawClient::connect(server.addr).await;
        let path = format!("/before-{name}");
        let created = client.create(&path, b"kept", 0).await;
        assert_eq!(created.err(), 0, "setup create failed");
        Bystander { client, path }
    }

    /// The node written before the bad input is intact, the session still
    /// writes and reads, and the server still answers `ruok`.
    async fn check_nothing_lost(mut self, server: &TestServer) {
        let before = self.client.get_data(&self.path, false).await;
        assert_eq!(before.err(), 0, "node written before the bad input is gone");
        assert_eq!(data_of(&before), Bytes::from_static(b"kept"));

        let after = format!("{}-after", self.path);
        assert_eq!(self.client.create(&after, b"new", 0).await.err(), 0);
        assert_eq!(data_of(&self.client.get_data(&after, false).await), "new");

        // A session opened after the bad input sees both nodes too.
        let mut fresh = RawClient::connect(server.addr).await;
        assert_eq!(fresh.exists(&self.path).await.err(), 0);
        assert_eq!(fresh.exists(&after).await.err(), 0);

        assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    }
}

/// A request frame whose header names `op_type` and whose body is `body`.
fn raw_request(xid: i32, op_type: i32, body: &[u8]) -> Vec<u8> {
    let mut content = RequestHeader { xid, op_type }.to_bytes().to_vec();
    content.extend_from_slice(body);
    with_length(&content)
}

/// Any frames the server sends before closing on a bad request must be error
/// replies to that request (ZooKeeper answers some bad requests before
/// closing); nothing else may leak out.
fn assert_only_error_replies(frames: &[Bytes], xid: i32) {
    for frame in frames {
        let header = canopy_protocol::ReplyHeader::from_bytes(frame)
            .unwrap_or_else(|e| panic!("unexpected frame before close ({e}): {frame:?}"));
        assert_eq!(header.xid, xid, "reply to the wrong xid before close");
        assert_ne!(header.err, 0, "bad request answered as a success");
    }
}

// ZooKeeper: an opcode it does not know is refused and the connection closed
// (UnimplementedRequestProcessor answers Unimplemented, then closes).
#[tokio::test(flavor = "multi_thread")]
async fn unknown_opcode_closes_only_that_connection() {
    let server = start_server().await;
    for op_type in [10, 999, -7] {
        let bystander = Bystander::new(&server, &format!("unknown-op{op_type}")).await;
        let mut bad = RawClient::connect(server.addr).await;
        bad.send_raw(&raw_request(7, op_type, b"")).await;
        let frames = bad.expect_closed().await;
        assert_only_error_replies(&frames, 7);
        bystander.check_nothing_lost(&server).await;
    }
}

// ZooKeeper answers an unknown opcode with a ReplyHeader carrying the
// request's xid and Unimplemented (-6) before it closes the connection, so a
// client sees UnimplementedException rather than a bare ConnectionLoss.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_opcode_is_answered_unimplemented_before_close() {
    let server = start_server().await;
    let mut bad = RawClient::connect(server.addr).await;
    bad.send_raw(&raw_request(7, 999, b"")).await;
    let frames = bad.expect_closed().await;
    assert_eq!(frames.len(), 1, "expected exactly one reply before close");
    let header = canopy_protocol::ReplyHeader::from_bytes(&frames[0]).unwrap();
    assert_eq!((header.xid, header.err), (7, -6));
}

// A request body that ends early (getData missing its watch flag) cannot be
// decoded: the connection is closed, nothing else is affected.
#[tokio::test(flavor = "multi_thread")]
async fn truncated_request_body_closes_only_that_connection() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "truncated").await;
    let mut bad = RawClient::connect(server.addr).await;

    let mut frame = Vec::new();
    Request::GetData(GetDataRequest {
        path: bystander.path.clone(),
        watch: false,
    })
    .encode_frame(3, &mut frame);
    frame.pop(); // one byte short: the watch flag is missing
    bad.send_raw(&with_length(&frame)).await;

    let frames = bad.expect_closed().await;
    assert_only_error_replies(&frames, 3);
    bystander.check_nothing_lost(&server).await;
}

// Bytes left over after a complete body are as malformed as missing ones; and
// a path length that runs past the end of the frame is too.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_request_bodies_close_only_that_connection() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "malformed").await;

    let mut trailing = Vec::new();
    Request::GetData(GetDataRequest {
        path: bystander.path.clone(),
        watch: false,
    })
    .encode_frame(4, &mut trailing);
    trailing.extend_from_slice(b"junk");

    let mut long_path = RequestHeader {
        xid: 4,
        op_type: OpCode::GetData as i32,
    }
    .to_bytes()
    .to_vec();
    long_path.extend_from_slice(&1000i32.to_be_bytes()); // claims 1000 bytes
    long_path.extend_from_slice(b"/x\0");

    for content in [trailing, long_path, vec![0, 0, 0]] {
        let mut bad = RawClient::connect(server.addr).await;
        bad.send_raw(&with_length(&content)).await;
        let frames = bad.expect_closed().await;
        assert_only_error_replies(&frames, 4);
    }
    bystander.check_nothing_lost(&server).await;
}

// The first frame must be a ConnectRequest; garbage there is refused with no
// session created and no answer.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_connect_request_closes_only_that_connection() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "garbage-connect").await;

    let garbage: Vec<Vec<u8>> = vec![
        with_length(b"hello, zookeeper?"),
        with_length(&[0xde, 0xad, 0xbe, 0xef, 1]),
        // A well-formed start whose password length runs past the frame.
        with_length(&{
            let mut c = vec![0u8; 4 + 8 + 4 + 8];
            c.extend_from_slice(&64i32.to_be_bytes());
            c.extend_from_slice(&[0; 8]);
            c
        }),
        with_length(&[]),
    ];
    for bytes in garbage {
        let mut bad = RawClient::open(server.addr).await;
        bad.send_raw(&bytes).await;
        let frames = bad.expect_closed().await;
        assert!(
            frames.is_empty(),
            "garbage handshake got an answer: {frames:?}"
        );
    }
    bystander.check_nothing_lost(&server).await;
}

// ZooKeeper refuses a length prefix above jute.maxbuffer (default 0xfffff) as
// soon as it reads it, before and after the handshake.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_length_prefix_closes_only_that_connection() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "oversized").await;

    for len in [0x100000i32, i32::MAX] {
        // After the handshake.
        let mut bad = RawClient::connect(server.addr).await;
        bad.send_raw(&len.to_be_bytes()).await;
        let frames = bad.expect_closed().await;
        assert!(frames.is_empty(), "oversized frame got an answer");

        // As the very first frame.
        let mut bad = RawClient::open(server.addr).await;
        bad.send_raw(&len.to_be_bytes()).await;
        assert!(bad.expect_closed().await.is_empty());
    }
    bystander.check_nothing_lost(&server).await;
}

// `max_frame_bytes` is the limit: a frame under it is served, one over it
// closes the connection (with nothing lost for anyone else).
#[tokio::test(flavor = "multi_thread")]
async fn small_max_frame_bytes_is_enforced() {
    let server = start_server_with(|c| c.max_frame_bytes = 1024).await;
    let bystander = Bystander::new(&server, "small-max").await;

    let mut bad = RawClient::connect(server.addr).await;
    assert_eq!(bad.create("/fits", &[7; 512], 0).await.err(), 0);
    let xid = bad
        .send(&Request::Create(canopy_protocol::CreateRequest {
            path: "/too-big".into(),
            data: Some(Bytes::from(vec![7u8; 2048])),
            acl: canopy_protocol::Acl::open_unsafe(),
            flags: 0,
        }))
        .await;
    let frames = bad.expect_closed().await;
    assert_only_error_replies(&frames, xid);

    let mut check = RawClient::connect(server.addr).await;
    assert_eq!(check.exists("/fits").await.err(), 0);
    assert_eq!(
        check.exists("/too-big").await.err(),
        -101,
        "oversized write applied"
    );
    bystander.check_nothing_lost(&server).await;
}

// A negative length prefix can never be a frame.
#[tokio::test(flavor = "multi_thread")]
async fn negative_length_prefix_closes_only_that_connection() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "negative").await;

    for len in [-1i32, -2, i32::MIN] {
        let mut bad = RawClient::connect(server.addr).await;
        bad.send_raw(&len.to_be_bytes()).await;
        assert!(bad.expect_closed().await.is_empty());

        let mut bad = RawClient::open(server.addr).await;
        bad.send_raw(&len.to_be_bytes()).await;
        assert!(bad.expect_closed().await.is_empty());
    }
    bystander.check_nothing_lost(&server).await;
}

// A client that connects and never completes the handshake is closed after
// the handshake timeout (2 s on the test server): silent, a few bytes of a length, or a partial frame.
#[tokio::test(flavor = "multi_thread")]
async fn client_that_never_handshakes_is_closed() {
    let server = start_server().await;
    let bystander = Bystander::new(&server, "silent").await;

    let silent = RawClient::open(server.addr).await;
    let mut two_bytes = RawClient::open(server.addr).await;
    two_bytes.send_raw(&[0, 0]).await;
    let mut partial = RawClient::open(server.addr).await;
    let connect = new_session_request(10_000).to_bytes();
    partial.send_raw(&with_length(&connect)[..10]).await;

    let closes = async {
        for mut client in [silent, two_bytes, partial] {
            assert!(client.expect_closed().await.is_empty());
        }
    };
    tokio::pin!(closes);
    // The handshake timeout equals the maximum session timeout here, so the
    // bystander pings meanwhile to keep its own session alive.
    let mut bystander = bystander;
    loop {
        tokio::select! {
            _ = &mut closes => break,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                assert_eq!(bystander.client.ping().await.err(), 0);
            }
        }
    }
    bystander.check_nothing_lost(&server).await;
}
