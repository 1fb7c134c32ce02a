//! Hardening, scaled down to run in the normal test suite (the full-size
//! runs are `scripts/load-harden.sh`): a client that stops reading is held
//! back, then cut off once events pile up, while everyone else gets every
//! event; idle connections cost no threads;
//! a flood of malformed frames closes each bad connection and nothing else;
//! the children cap and enforced quotas refuse writes, also after a restart.

mod common;

use std::time::Duration;

use bytes::Bytes;
use canopy::server::Server;
use canopy_protocol::{
    Acl, AddWatchRequest, CreateRequest, EventType, GetDataRequest, MultiOp, MultiRequest, Request,
    SetWatches2,
};
use common::*;
use tokio::io::AsyncWriteExt;

const PERSISTENT: i32 = 0;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const QUOTA_EXCEEDED: i32 = -125;

/// Waits (bounded) until `done` holds; panics with `what` otherwise.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn add_persistent_watch(client: &mut RawClient, path: &str) {
    let reply = client
        .call(Request::AddWatch(AddWatchRequest {
            path: path.to_string(),
            mode: PERSISTENT,
        }))
        .await;
    assert_eq!(reply.err(), 0, "addWatch {path}");
}

fn connected(server: &TestServer, session_id: i64) -> bool {
    queued_to(server, session_id).is_some()
}

/// Bytes queued unwritten to the session's connection, if it has one.
fn queued_to(server: &TestServer, session_id: i64) -> Option<usize> {
    server
        .server
        .core
        .lock()
        .conns
        .values()
        .find(|conn| conn.session_id == session_id)
        .map(|conn| conn.out.queued_bytes())
}

// A client that pipelines reads and stops taking the replies is throttled,
// not cut off: the server holds its requests while half the outbound bound
// is queued. Once watch events pile up past the bound it is cut off; the
// writer and 200 other watchers never wait on it and see every one of the
// events; its session lives on, and re-attaching with setWatches brings its
// watch back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_cut_off_and_others_see_every_event() {
    const LIMIT: usize = 256 * 1024;
    const WATCHERS: usize = 200;
    // Each event names the 1000-byte path: 250 of them are more than the
    // bound on their own.
    const SETS: usize = 250;
    const BIG_READS: usize = 400;
    let hot = format!("/{}", "h".repeat(999));
    let server = start_server_with(|config| {
        config.max_outbound_bytes = LIMIT;
        config.max_session_timeout_ms = 60_000;
        // Every client comes from 127.0.0.1.
        config.max_client_cnxns = 0;
    })
    .await;
    let mut writer = RawClient::connect_with_timeout(server.addr, 60_000).await;
    assert_eq!(writer.create(&hot, b"0", 0).await.err(), 0);
    assert_eq!(writer.create("/big", &[7u8; 64 * 1024], 0).await.err(), 0);

    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut watcher = RawClient::connect_with_timeout(server.addr, 60_000).await;
        add_persistent_watch(&mut watcher, &hot).await;
        watchers.push(watcher);
    }

    // The silent client: a small receive window, a watch, then 400 reads of
    // a 64 KiB node (25 MiB of replies) that it never takes off the socket:
    // far more than the kernel buffers a socket (Linux's tcp_wmem allows 4 MiB
    // by default) plus the 256 KiB bound.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut silent = RawClient::from_stream(stream);
    silent
        .handshake(&new_session_request(60_000))
        .await
        .expect("handshake");
    add_persistent_watch(&mut silent, &hot).await;
    let mut pipelined = Vec::new();
    for xid in 0..BIG_READS as i32 {
        pipelined.extend(request_frame(
            1000 + xid,
            &Request::GetData(GetDataRequest {
                path: "/big".into(),
                watch: false,
            }),
        ));
    }
    // Not all of it may be taken: the server stops reading once it holds
    // the client's requests.
    let _ = tokio::time::timeout(Duration::from_secs(2), silent.stream.write_all(&pipelined)).await;
    let silent_id = silent.session_id;
    eventually("the silent client's replies back up", || {
        queued_to(&server, silent_id).is_some_and(|queued| queued > LIMIT / 2)
    })
    .await;
    // Its own replies stop at about half the bound plus one reply.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = queued_to(&server, silent_id).expect("still connected");
    assert!(queued <= LIMIT, "{queued} bytes queued, over the bound");

    for i in 1..=SETS {
        let reply = writer.set_data(&hot, i.to_string().as_bytes()).await;
        assert_eq!(reply.err(), 0);
    }
    eventually("the silent client is cut off", || {
        !connected(&server, silent_id)
    })
    .await;
    assert!(
        server.server.core.lock().sessions.get(silent_id).is_some(),
        "a cut-off connection leaves its session alive"
    );
    for watcher in &mut watchers {
        for _ in 0..SETS {
            let (_, event) = watcher.next_notification().await;
            assert_eq!(event.event_type, EventType::NodeDataChanged as i32);
            assert_eq!(event.path, hot);
        }
    }

    // What the silent client finally reads ends early: far fewer than the
    // replies it asked for, then the connection is gone.
    let mut big_replies = 0;
    loop {
        match silent.read_frame_within(WAIT).await {
            Ok(Some(frame)) if frame.len() > 60 * 1024 => big_replies += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(()) => panic!("the cut-off connection is still open"),
        }
    }
    assert!(big_replies < BIG_READS, "got all {big_replies} replies");

    // The session re-attaches and its watch comes back through setWatches2.
    let mut back = RawClient::open(server.addr).await;
    let response = back
        .handshake(&reattach_request(silent_id, silent.passwd.clone(), 60_000))
        .await
        .expect("re-attach answered");
    assert_eq!(response.session_id, silent_id);
    let last_zxid = writer.exists(&hot).await.zxid();
    let reply = back
        .call(Request::SetWatches2(SetWatches2 {
            relative_zxid: last_zxid,
            data_watches: vec![],
            exist_watches: vec![],
            child_watches: vec![],
            persistent_watches: vec![hot.clone()],
            persistent_recursive_watches: vec![],
        }))
        .await;
    assert_eq!(reply.err(), 0);
    assert_eq!(writer.set_data(&hot, b"again").await.err(), 0);
    let (_, event) = back.next_notification().await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeDataChanged as i32, hot.as_str())
    );
    for watcher in &mut watchers {
        let (_, event) = watcher.next_notification().await;
        assert_eq!(event.path, hot);
        assert_eq!(watcher.ping().await.err(), 0);
    }
}

/// Threads of this process, from /proc.
fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

// 500 idle sessions and 100 connections that have not sent anything yet are
// held by the same few threads; every session still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_no_threads() {
    let server = start_server_with(|config| {
        config.max_session_timeout_ms = 60_000;
        config.handshake_timeout_ms = 60_000;
        config.max_client_cnxns = 0;
    })
    .await;
    // Warm up: the first connection may start the runtime's helper threads.
    let mut first = RawClient::connect_with_timeout(server.addr, 60_000).await;
    assert_eq!(first.ping().await.err(), 0);
    let threads_before = thread_count();

    let mut sessions = Vec::new();
    for _ in 0..500 {
        sessions.push(RawClient::connect_with_timeout(server.addr, 60_000).await);
    }
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(RawClient::open(server.addr).await);
    }
    assert!(
        thread_count() <= threads_before + 4,
        "threads grew from {threads_before} to {} for 600 connections",
        thread_count()
    );
    assert_eq!(first.create("/still-serving", b"", 0).await.err(), 0);
    for session in &mut sessions {
        assert_eq!(session.ping().await.err(), 0);
    }
    // Connections that have sent nothing are not known to the core yet.
    assert_eq!(server.server.core.lock().conns.len(), 1 + 500);
}

// A connection that never completes its handshake is closed after the
// configured timeout; attached sessions are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_is_configurable() {
    let server = start_server_with(|config| {
        config.handshake_timeout_ms = 300;
        config.max_session_timeout_ms = 60_000;
    })
    .await;
    let mut attached = RawClient::connect_with_timeout(server.addr, 60_000).await;
    let mut silent = RawClient::open(server.addr).await;
    let mut partial = RawClient::open(server.addr).await;
    partial.send_raw(&[0, 0, 0, 50, 0, 0]).await;
    assert!(silent.expect_closed().await.is_empty());
    assert!(partial.expect_closed().await.is_empty());
    assert_eq!(attached.ping().await.err(), 0);
}

// Many connections each sending malformed frames, before and after the
// handshake: each is closed, none is left behind, and a watcher sees every
// change a writer makes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_flood_closes_each_connection_and_nothing_else() {
    let server = start_server_with(|config| {
        config.max_session_timeout_ms = 60_000;
        config.max_client_cnxns = 0;
    })
    .await;
    let mut writer = RawClient::connect_with_timeout(server.addr, 60_000).await;
    let mut watcher = RawClient::connect_with_timeout(server.addr, 60_000).await;
    assert_eq!(writer.create("/flood", b"0", 0).await.err(), 0);
    add_persistent_watch(&mut watcher, "/flood").await;

    let addr = server.addr;
    let mut floods = Vec::new();
    for task in 0..4 {
        floods.push(tokio::spawn(async move {
            for i in 0..75 {
                let mut bad = RawClient::open(addr).await;
                match (task + i) % 3 {
                    // Garbage where the ConnectRequest should be.
                    0 => bad.send_raw(&with_length(&[0xff; 12])).await,
                    // A frame length far past the limit.
                    1 => bad.send_raw(&0x7fff_fff0_i32.to_be_bytes()).await,
                    // A good handshake, then a request whose body is cut short.
                    _ => {
                        bad.handshake(&new_session_request(10_000)).await.unwrap();
                        let mut frame = request_frame(
                            1,
                            &Request::Create(CreateRequest {
                                path: "/flood/x".into(),
                                data: None,
                                acl: Acl::open_unsafe(),
                                flags: 0,
                            }),
                        );
                        frame.truncate(frame.len() - 6);
                        let len = (frame.len() - 4) as i32;
                        frame[..4].copy_from_slice(&len.to_be_bytes());
                        bad.send_raw(&frame).await;
                    }
                }
                bad.expect_closed().await;
            }
        }));
    }
    let mut sets = 0;
    while floods.iter().any(|f| !f.is_finished()) || sets < 50 {
        sets += 1;
        assert_eq!(writer.set_data("/flood", b"x").await.err(), 0);
    }
    for flood in floods {
        flood.await.expect("every bad connection was closed");
    }
    for _ in 0..sets {
        let (_, event) = watcher.next_notification().await;
        assert_eq!(event.path, "/flood");
    }
    eventually("only the two good connections remain", || {
        server.server.core.lock().conns.len() == 2
    })
    .await;
    assert_eq!(watcher.ping().await.err(), 0);
}

fn create_request(path: &str, flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.to_string(),
        data: Some(Bytes::new()),
        acl: Acl::open_unsafe(),
        flags,
    }
}

// A client leaking ephemeral sequential nodes in a loop is stopped at the
// children cap with QuotaExceeded; other parents are not affected, and a
// multi cannot get around the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_cap_stops_a_leaking_client() {
    let server = start_server_with(|config| config.max_children_per_node = 20).await;
    let mut client = RawClient::connect(server.addr).await;
    assert_eq!(client.create("/leak", b"", 0).await.err(), 0);
    let mut created = 0;
    let mut refused = 0;
    for _ in 0..100 {
        match client
            .create("/leak/n-", b"", EPHEMERAL_SEQUENTIAL)
            .await
            .err()
        {
            0 => created += 1,
            QUOTA_EXCEEDED => refused += 1,
            other => panic!("unexpected error {other}"),
        }
    }
    assert_eq!((created, refused), (20, 80));
    assert_eq!(client.create("/other", b"", 0).await.err(), 0);

    let reply = client
        .call(Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Create(create_request("/other/a", 0)),
                MultiOp::Create(create_request("/leak/late", 0)),
            ],
        }))
        .await;
    assert_eq!(reply.err(), 0, "a failed multi is answered with results");
    assert_eq!(
        client.exists("/other/a").await.err(),
        -101,
        "nothing applied"
    );
    // Deleting one makes room for one.
    let children = client.get_children("/leak", false).await;
    let Some(canopy_protocol::Response::GetChildren(list)) = children.body else {
        panic!("getChildren failed");
    };
    assert_eq!(list.children.len(), 20);
    let victim = format!("/leak/{}", list.children[0]);
    assert_eq!(client.delete(&victim).await.err(), 0);
    assert_eq!(client.create("/leak/one-more", b"", 0).await.err(), 0);
    assert_eq!(
        client.create("/leak/too-many", b"", 0).await.err(),
        QUOTA_EXCEEDED
    );
}

// Quota stats are kept by the server and come back after a restart, from a
// snapshot and from the log, with the quota still enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_quota_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = canopy::config::Config {
        enforce_quota: true,
        snapshot_every_txns: 8,
        ..test_config(dir.path())
    };
    let server = Server::start(config.clone()).await.unwrap();
    let mut client = RawClient::connect(server.local_addr).await;
    assert_eq!(client.create("/app", b"abc", 0).await.err(), 0);
    assert_eq!(client.create("/app/a", b"12345", 0).await.err(), 0);
    // What zkCli's `setquota -N 4 /app` creates.
    assert_eq!(client.create("/zookeeper/quota/app", b"", 0).await.err(), 0);
    let limits = b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=4";
    let created = client
        .create("/zookeeper/quota/app/zookeeper_limits", limits, 0)
        .await;
    assert_eq!(created.err(), 0);
    let created = client
        .create(
            "/zookeeper/quota/app/zookeeper_stats",
            b"count=0,bytes=0",
            0,
        )
        .await;
    assert_eq!(created.err(), 0);
    let stats_path = "/zookeeper/quota/app/zookeeper_stats";
    assert_eq!(
        data_of(&client.get_data(stats_path, false).await),
        "count=2,bytes=8"
    );
    for name in ["b", "c"] {
        let path = format!("/app/{name}");
        assert_eq!(client.create(&path, b"x", 0).await.err(), 0);
    }
    assert_eq!(client.create("/app/d", b"", 0).await.err(), QUOTA_EXCEEDED);
    // Enough changes for a snapshot, then a few more only in the log.
    for i in 0..10 {
        assert_eq!(
            client
                .set_data("/app/b", &[b'y'; 3][..i % 3 + 1])
                .await
                .err(),
            0
        );
    }
    assert_eq!(client.delete("/app/c").await.err(), 0);
    let expected = data_of(&client.get_data(stats_path, false).await);
    assert_eq!(expected, "count=3,bytes=9");
    drop(client);
    server.stop();
    drop(server);

    let server = Server::start(config).await.unwrap();
    let mut client = RawClient::connect(server.local_addr).await;
    assert_eq!(data_of(&client.get_data(stats_path, false).await), expected);
    assert_eq!(client.create("/app/c", b"", 0).await.err(), 0);
    assert_eq!(client.create("/app/d", b"", 0).await.err(), QUOTA_EXCEEDED);
    server.stop();
}
