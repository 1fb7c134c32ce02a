//! Wire-level behaviour that a high-level client hides: exact handshake
//! bytes, refusals, connection take-over, zxids in reply headers, reserved
//! xids, the order of notifications and replies, session close and expiry,
//! and requests a standalone server refuses without closing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{
    xid, ConnectResponse, EventType, GetSaslRequest, Jute, KeeperState, OpCode, ReconfigRequest,
    Request, Response, SetSaslResponse,
};
use common::*;

const EPHEMERAL: i32 = 1;

// (a) A client older than 3.4 sends no readOnly byte and must get none back:
// its ConnectResponse is exactly 36 bytes (protocolVersion 4, timeout 4,
// sessionId 8, password length 4 + 16). A client that sends the flag gets it
// back, 37 bytes.
#[tokio::test(flavor = "multi_thread")]
async fn connect_response_mirrors_the_read_only_flag() {
    let server = start_server().await;

    let mut old = RawClient::open(server.addr).await;
    let request = canopy_protocol::ConnectRequest {
        read_only: None,
        ..new_session_request(10_000)
    };
    assert_eq!(
        request.to_bytes().len(),
        44,
        "old-style request has no flag"
    );
    old.send_raw(&with_length(&request.to_bytes())).await;
    let frame = old.read_frame().await.expect("old client answered");
    assert_eq!(frame.len(), 36, "no readOnly byte for an old client");
    let response = ConnectResponse::from_bytes(&frame).unwrap();
    assert_eq!(response.read_only, None);
    assert_ne!(response.session_id, 0);
    assert_eq!(response.passwd.len(), 16);

    let mut new = RawClient::open(server.addr).await;
    new.send_raw(&with_length(&new_session_request(10_000).to_bytes()))
        .await;
    let frame = new.read_frame().await.expect("new client answered");
    assert_eq!(frame.len(), 37, "readOnly byte for a 3.4+ client");
    assert_eq!(frame[36], 0, "a standalone server is not read-only");

    // Both sessions work.
    assert_eq!(old.ping().await.err(), 0);
    assert_eq!(new.ping().await.err(), 0);
}

// (b) Re-attaching with the wrong password is refused the way ZooKeeper
// refuses it: timeout 0, session id 0, a 16-byte zero password, then close.
// The session itself lives on for its rightful owner.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_refused_then_closed() {
    let server = start_server().await;
    let mut owner = RawClient::connect(server.addr).await;
    assert_eq!(owner.create("/mine", b"", EPHEMERAL).await.err(), 0);

    let mut wrong = owner.passwd.to_vec();
    wrong[0] ^= 0xff;
    let mut intruder = RawClient::open(server.addr).await;
    let response = intruder
        .handshake(&reattach_request(
            owner.session_id,
            Bytes::from(wrong),
            10_000,
        ))
        .await
        .expect("refusal is answered");
    assert_eq!(response.timeout, 0);
    assert_eq!(response.session_id, 0);
    assert_eq!(response.passwd.as_ref(), &[0u8; 16]);
    assert!(intruder.expect_closed().await.is_empty());

    // The right password still re-attaches, and the ephemeral node is there.
    let mut back = RawClient::open(server.addr).await;
    let response = back
        .handshake(&reattach_request(
            owner.session_id,
            owner.passwd.clone(),
            10_000,
        ))
        .await
        .expect("re-attach answered");
    assert_eq!(response.session_id, owner.session_id);
    assert_eq!(back.exists("/mine").await.err(), 0);
}

// A re-attach to a session that does not exist gets the same refusal.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_session_is_refused_then_closed() {
    let server = start_server().await;
    let mut client = RawClient::open(server.addr).await;
    let response = client
        .handshake(&reattach_request(
            0x1234_5678,
            Bytes::from(vec![1; 16]),
            10_000,
        ))
        .await
        .expect("refusal is answered");
    assert_eq!((response.timeout, response.session_id), (0, 0));
    assert_eq!(response.passwd.as_ref(), &[0u8; 16]);
    assert!(client.expect_closed().await.is_empty());
}

// (c) A client that has seen a zxid this server has not reached must look for
// a more up-to-date server: ZooKeeper closes it without any answer.
#[tokio::test(flavor = "multi_thread")]
async fn client_ahead_of_the_server_is_dropped_without_answer() {
    let server = start_server().await;
    let mut writer = RawClient::connect(server.addr).await;
    let created = writer.create("/z", b"", 0).await;

    let mut ahead = RawClient::open(server.addr).await;
    let request = canopy_protocol::ConnectRequest {
        last_zxid_seen: created.zxid() + 1000,
        ..new_session_request(10_000)
    };
    assert!(
        ahead.handshake(&request).await.is_none(),
        "a client ahead of the server got an answer"
    );

    // A client exactly at the server's zxid is fine.
    let mut level = RawClient::open(server.addr).await;
    let request = canopy_protocol::ConnectRequest {
        last_zxid_seen: created.zxid(),
        ..new_session_request(10_000)
    };
    let response = level.handshake(&request).await.expect("answered");
    assert_ne!(response.session_id, 0);
}

// (d) A session lives on one connection: re-attaching from a second
// connection (right password) takes the session over and closes the first.
#[tokio::test(flavor = "multi_thread")]
async fn reattach_elsewhere_closes_the_first_connection() {
    let server = start_server().await;
    let mut first = RawClient::connect(server.addr).await;
    assert_eq!(first.create("/eph", b"", EPHEMERAL).await.err(), 0);

    let mut second = RawClient::open(server.addr).await;
    let response = second
        .handshake(&reattach_request(
            first.session_id,
            first.passwd.clone(),
            10_000,
        ))
        .await
        .expect("re-attach answered");
    assert_eq!(response.session_id, first.session_id);
    assert_eq!(response.passwd, first.passwd);
    assert_ne!(response.timeout, 0);

    assert!(first.expect_closed().await.is_empty());

    // The session, and its ephemeral node, continue on the new connection.
    assert_eq!(second.exists("/eph").await.err(), 0);
    assert_eq!(second.create("/eph2", b"", EPHEMERAL).await.err(), 0);
}

// (e) Every write's reply carries the zxid of its change, strictly
// increasing; a refused write (delete of a missing node, NoNode -101) takes a
// zxid too, so the next write's zxid is two past the last successful one.
// Reads answer with the last zxid.
#[tokio::test(flavor = "multi_thread")]
async fn writes_carry_increasing_zxids_and_refused_writes_take_one() {
    let server = start_server().await;
    let mut client = RawClient::connect(server.addr).await;

    let first = client.create("/z1", b"", 0).await;
    assert_eq!(first.err(), 0);
    let second = client.set_data("/z1", b"x").await;
    assert_eq!(second.err(), 0);
    assert_eq!(second.zxid(), first.zxid() + 1);

    let refused = client.delete("/missing").await;
    assert_eq!(refused.err(), -101);
    assert_eq!(refused.zxid(), second.zxid() + 1);

    let third = client.create("/z2", b"", 0).await;
    assert_eq!(third.err(), 0);
    assert_eq!(third.zxid(), second.zxid() + 2);

    let read = client.get_data("/z1", false).await;
    assert_eq!(read.zxid(), third.zxid(), "reads carry the last zxid");

    // The stat of the node written at `third` says so.
    let read = client.exists("/z2").await;
    let Some(canopy_protocol::Response::Stat(stat)) = read.body else {
        panic!("exists reply has a stat");
    };
    assert_eq!(stat.stat.czxid, third.zxid());
}

// (f) A ping is sent with xid -2 (opcode 11) and answered with xid -2.
#[tokio::test(flavor = "multi_thread")]
async fn ping_is_answered_with_xid_minus_two() {
    let server = start_server().await;
    let mut client = RawClient::connect(server.addr).await;
    client.send_with_xid(xid::PING, &Request::Ping).await;
    let (header, body) = client.read_header().await.expect("ping answered");
    assert_eq!(header.xid, -2);
    assert_eq!(header.err, 0);
    assert!(body.is_empty());
}

// (g) A data watch fires as a notification frame: xid -1, then a
// WatcherEvent (NodeDataChanged 3, SyncConnected 3, the path), stamped with
// the zxid of the change.
#[tokio::test(flavor = "multi_thread")]
async fn data_watch_notification_on_the_wire() {
    let server = start_server().await;
    let mut watcher = RawClient::connect(server.addr).await;
    let mut writer = RawClient::connect(server.addr).await;
    assert_eq!(writer.create("/w", b"1", 0).await.err(), 0);

    assert_eq!(watcher.get_data("/w", true).await.err(), 0);
    let set = writer.set_data("/w", b"2").await;
    assert_eq!(set.err(), 0);

    let (header, event) = watcher.next_notification().await;
    assert_eq!(header.xid, -1);
    assert_eq!(header.err, 0);
    assert_eq!(header.zxid, set.zxid());
    assert_eq!(event.event_type, EventType::NodeDataChanged as i32);
    assert_eq!(event.event_type, 3);
    assert_eq!(event.state, KeeperState::SyncConnected as i32);
    assert_eq!(event.state, 3);
    assert_eq!(event.path, "/w");

    // One-shot: a second change does not fire again.
    assert_eq!(writer.set_data("/w", b"3").await.err(), 0);
    assert_eq!(watcher.ping().await.err(), 0);
    assert!(
        watcher.notifications.is_empty(),
        "one-shot watch fired twice"
    );
}

// (g) A session that watches a node and then changes it itself sees the
// notification BEFORE the reply to its own setData (ZooKeeper queues the event
// first, so a client never sees data newer than an event it has not had).
#[tokio::test(flavor = "multi_thread")]
async fn own_write_notification_comes_before_the_reply() {
    let server = start_server().await;
    let mut client = RawClient::connect(server.addr).await;
    assert_eq!(client.create("/self", b"1", 0).await.err(), 0);
    assert_eq!(client.get_data("/self", true).await.err(), 0);

    let xid = client
        .send(&Request::SetData(canopy_protocol::SetDataRequest {
            path: "/self".into(),
            data: Some(Bytes::from_static(b"2")),
            version: -1,
        }))
        .await;

    let (first, body) = client.read_header().await.expect("a frame");
    assert_eq!(first.xid, -1, "notification must come first");
    let event = canopy_protocol::WatcherEvent::from_bytes(&body).unwrap();
    assert_eq!((event.event_type, event.state), (3, 3));
    assert_eq!(event.path, "/self");

    let (second, _) = client.read_header().await.expect("a frame");
    assert_eq!(second.xid, xid, "then the setData reply");
    assert_eq!(second.err, 0);
    assert_eq!(second.zxid, first.zxid);
}

// (h) closeSession (opcode -11) is answered, then the server closes the
// connection, and the session's ephemeral nodes are gone for everyone.
#[tokio::test(flavor = "multi_thread")]
async fn close_session_replies_closes_and_removes_ephemerals() {
    let server = start_server().await;
    let mut other = RawClient::connect(server.addr).await;
    let mut closing = RawClient::connect(server.addr).await;
    assert_eq!(closing.create("/gone", b"", EPHEMERAL).await.err(), 0);
    assert_eq!(other.exists("/gone").await.err(), 0);

    let xid = closing.send(&Request::CloseSession).await;
    let reply = closing.read_reply(xid, OpCode::CloseSession).await;
    assert_eq!(reply.err(), 0);
    assert!(closing.expect_closed().await.is_empty());

    assert_eq!(other.exists("/gone").await.err(), -101);

    // The closed session cannot be re-attached.
    let mut again = RawClient::open(server.addr).await;
    let response = again
        .handshake(&reattach_request(
            closing.session_id,
            closing.passwd.clone(),
            10_000,
        ))
        .await
        .expect("answered");
    assert_eq!(response.session_id, 0);
}

// (i) A client that goes silent (socket left open) loses its session after
// about its negotiated timeout: its ephemeral node is deleted, a child watcher
// elsewhere gets NodeChildrenChanged, and its connection is closed.
#[tokio::test(flavor = "multi_thread")]
async fn silent_session_expires_and_its_ephemerals_go() {
    let server = start_server().await;
    let mut watcher = RawClient::connect(server.addr).await;
    assert_eq!(watcher.create("/svc", b"", 0).await.err(), 0);

    let mut silent = RawClient::connect_with_timeout(server.addr, 400).await;
    assert_eq!(silent.timeout_ms, 400);
    assert_eq!(silent.create("/svc/node", b"", EPHEMERAL).await.err(), 0);

    let listing = watcher.get_children("/svc", true).await;
    assert_eq!(children_of(&listing), vec!["node".to_string()]);

    // Keep the watcher alive with pings while the silent session expires;
    // allow many timeouts before giving up.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(10 * 400 + 5_000);
    let event = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "silent session did not expire in time"
        );
        watcher.send_with_xid(xid::PING, &Request::Ping).await;
        match watcher.read_frame_within(Duration::from_millis(300)).await {
            Err(()) => continue,
            Ok(None) => panic!("watcher connection closed"),
            Ok(Some(frame)) => {
                let (rest, header) = canopy_protocol::ReplyHeader::decode(&frame).unwrap();
                if header.xid == xid::NOTIFICATION {
                    break canopy_protocol::WatcherEvent::from_bytes(rest).unwrap();
                }
                assert_eq!(header.xid, xid::PING);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(event.event_type, EventType::NodeChildrenChanged as i32);
    assert_eq!(event.path, "/svc");

    // Drain any ping replies still in flight, then look.
    let listing = watcher.get_children("/svc", false).await;
    assert!(
        children_of(&listing).is_empty(),
        "ephemeral survived expiry"
    );

    // The expired session's connection is closed by the server.
    assert!(silent.expect_closed().await.is_empty());
}

// (j) reconfig on a standalone server is answered ReconfigDisabled (-123)
// with no body; sasl on a server with no SASL users, as ZooKeeper without a
// JAAS Server section, OK with zxid 0 and a null token. The connection stays
// open.
#[tokio::test(flavor = "multi_thread")]
async fn reconfig_and_sasl_are_refused_without_closing() {
    let server = start_server().await;
    let mut client = RawClient::connect(server.addr).await;

    let reply = client
        .call(Request::Reconfig(ReconfigRequest {
            joining_servers: Some("server.2=127.0.0.1:2888:3888".into()),
            leaving_servers: None,
            new_members: None,
            cur_config_id: -1,
        }))
        .await;
    assert_eq!(reply.err(), -123);

    let reply = client
        .call(Request::Sasl(GetSaslRequest {
            token: Bytes::from_static(b"token"),
        }))
        .await;
    assert_eq!((reply.err(), reply.zxid()), (0, 0));
    assert_eq!(
        reply.body,
        Some(Response::Sasl(SetSaslResponse {
            token: Bytes::new()
        }))
    );

    // Still open and working.
    assert_eq!(client.ping().await.err(), 0);
    assert_eq!(client.create("/still-here", b"", 0).await.err(), 0);
}
