//! Durability against the real binary: SIGKILL under a write load, torn log
//! tails, damaged files, and sessions that survive a restart.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canopy::storage::files::{self, LOG_MAGIC, SNAPSHOT_MAGIC};
use canopy::storage::frame::Frames;
use canopy_protocol::{Acl, CreateRequest, GetChildrenRequest, Request, Response, SetDataRequest};
use common::process::ServerProcess;
use common::{data_of, reattach_request, RawClient, WAIT};
use rand::Rng;

const ROOT: &str = "/crash";
const COUNTER: &str = "/crash-counter";

/// Write number `n` of the crash test's sequence: odd numbers create a node
/// named after them, even numbers set the counter node to `n`.
fn write_request(n: u64) -> Request {
    if n % 2 == 1 {
        Request::Create(CreateRequest {
            path: format!("{ROOT}/n{n:010}"),
            data: Some(n.to_string().into_bytes().into()),
            acl: Acl::open_unsafe(),
            flags: 0,
        })
    } else {
        Request::SetData(SetDataRequest {
            path: COUNTER.into(),
            data: Some(n.to_string().into_bytes().into()),
            version: -1,
        })
    }
}

/// What the server holds, as the number of writes of the sequence it shows:
/// checks that it is exactly the first `m` writes and returns `m`.
async fn applied_prefix(client: &mut RawClient) -> u64 {
    let reply = client
        .call(Request::GetChildren(GetChildrenRequest {
            path: ROOT.into(),
            watch: false,
        }))
        .await;
    let Some(Response::GetChildren(children)) = reply.body else {
        panic!("cannot list {ROOT}: {reply:?}");
    };
    let created: BTreeSet<u64> = children
        .children
        .iter()
        .map(|name| name[1..].parse().expect("node name n<number>"))
        .collect();
    let counter = client.get_data(COUNTER, false).await;
    let counter_value: u64 = String::from_utf8(data_of(&counter).to_vec())
        .expect("counter is text")
        .parse()
        .expect("counter is a number");
    let Some(Response::GetData(get)) = &counter.body else {
        unreachable!()
    };
    let m = created
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(counter_value);
    // Exactly the first m writes: every odd number up to m created...
    let expected: BTreeSet<u64> = (1..=m).filter(|n| n % 2 == 1).collect();
    assert_eq!(
        created, expected,
        "created nodes are not a prefix of the writes"
    );
    // ...and the counter at the last even number, set once per even number.
    assert_eq!(counter_value, m - m % 2, "the counter skipped a write");
    assert_eq!(
        get.stat.version as u64,
        m / 2,
        "the counter's version does not match its writes"
    );
    // Every created node holds its own number.
    if let Some(last) = created.iter().next_back() {
        let reply = client.get_data(&format!("{ROOT}/n{last:010}"), false).await;
        assert_eq!(data_of(&reply), last.to_string().as_bytes());
    }
    m
}

/// Sends writes `next..` with up to `window` outstanding until the
/// connection dies, returning the highest write acknowledged.
async fn write_until_killed(client: &mut RawClient, next: u64, window: u64) -> u64 {
    let mut acked = next - 1;
    let mut sent = next - 1;
    loop {
        while sent - acked < window {
            sent += 1;
            client.send(&write_request(sent)).await;
        }
        match tokio::time::timeout(WAIT, client.read_header()).await {
            Ok(Some((header, _))) => {
                assert_eq!(header.err, 0, "write {} failed: {header:?}", acked + 1);
                acked += 1;
            }
            // The server is gone; whatever was not answered is not acknowledged.
            Ok(None) => return acked,
            Err(_) => panic!("no reply and no close within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_at_any_moment() {
    let dir = tempfile::tempdir().unwrap();
    // Small snapshots and segments, so kills also land during snapshots,
    // purges and segment changes.
    let flags = [
        "--snapshot-every-txns",
        "700",
        "--log-segment-bytes",
        "65536",
        "--snapshots-retained",
        "2",
    ];
    let mut server = ServerProcess::start(dir.path(), &flags).expect("first start");
    {
        let mut client = RawClient::connect(server.addr).await;
        assert_eq!(client.create(ROOT, b"", 0).await.err(), 0);
        assert_eq!(client.create(COUNTER, b"0", 0).await.err(), 0);
    }
    let mut rng = rand::thread_rng();
    let mut acked_total = 0;
    for round in 0..12 {
        let mut client = RawClient::connect(server.addr).await;
        let present = applied_prefix(&mut client).await;
        assert!(
            present >= acked_total,
            "round {round}: write {acked_total} was acknowledged, the server only has {present}"
        );
        let delay = Duration::from_millis(rng.gen_range(20..400));
        let pid_killer = tokio::spawn({
            let mut server = server;
            async move {
                tokio::time::sleep(delay).await;
                server.kill();
                server
            }
        });
        let window = [1, 8, 64][round % 3];
        acked_total = write_until_killed(&mut client, present + 1, window).await;
        eprintln!(
            "round {round}: {present} writes present at start, killed after {delay:?} \
             with {window} in flight, {acked_total} acknowledged"
        );
        let mut killed = pid_killer.await.unwrap();
        killed.kill();
        server = ServerProcess::start(dir.path(), &flags)
            .unwrap_or_else(|f| panic!("restart after round {round} failed: {f:?}"));
    }
    let mut client = RawClient::connect(server.addr).await;
    let present = applied_prefix(&mut client).await;
    assert!(present >= acked_total && acked_total > 0);
}

/// A data folder with a few records in one segment and no snapshot: the
/// server started, given writes, then stopped with SIGKILL.
async fn folder_with_records(nodes: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]).expect("start");
    let mut client = RawClient::connect(server.addr).await;
    for i in 0..nodes {
        assert_eq!(
            client
                .create(&format!("/rec{i}"), b"payload", 0)
                .await
                .err(),
            0
        );
    }
    drop(server);
    let segment = files::segments(dir.path())
        .unwrap()
        .pop()
        .expect("a log segment");
    (dir, segment.path)
}

/// Byte offsets where each record of a segment starts, and where the last
/// one ends (the server was killed, so preallocated zeros may follow).
fn record_offsets(path: &Path) -> (Vec<u64>, u64) {
    let bytes = std::fs::read(path).unwrap();
    let mut frames = Frames::new(&bytes, LOG_MAGIC.len(), true);
    let mut offsets = Vec::new();
    while let Some(frame) = frames.next_frame().unwrap() {
        offsets.push(frame.offset);
    }
    assert!(frames.torn.as_ref().is_none_or(|t| t.zeros));
    let end = frames.torn.map_or(bytes.len() as u64, |t| t.offset);
    (offsets, end)
}

fn copy_folder(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

#[tokio::test]
async fn a_log_cut_anywhere_in_its_last_record_loses_only_that_record() {
    let (dir, segment) = folder_with_records(3).await;
    let name = segment.file_name().unwrap().to_owned();
    let (offsets, full_len) = record_offsets(&segment);
    let last_start = *offsets.last().unwrap();
    for cut in last_start..full_len {
        let copy = copy_folder(dir.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(&name))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let config = canopy::config::Config {
            fsync: false,
            ..common::test_config(copy.path())
        };
        let server = canopy::server::Server::start(config)
            .await
            .unwrap_or_else(|e| panic!("cut at {cut}: the server did not start: {e}"));
        let mut client = RawClient::connect(server.local_addr).await;
        assert_eq!(client.exists("/rec1").await.err(), 0, "cut at {cut}");
        assert_eq!(
            client.exists("/rec2").await.err(),
            canopy_protocol::ErrorCode::NoNode.code(),
            "cut at {cut}: the torn record must be gone"
        );
        server.stop();
        // The cut was repaired: the segment now ends where the torn record began.
        let repaired = std::fs::metadata(copy.path().join(&name)).unwrap().len();
        assert_eq!(repaired, last_start, "cut at {cut}");
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_damaged_log_segment_stops_the_start_and_names_the_place() {
    let (dir, segment) = folder_with_records(6).await;
    let (offsets, _) = record_offsets(&segment);
    // A byte inside the body of a record in the middle.
    let middle = offsets[offsets.len() / 2] + 25;
    flip_byte(&segment, middle);
    let failure = match ServerProcess::start(dir.path(), &[]) {
        Ok(server) => panic!("started on a damaged log: {}", server.log_text()),
        Err(failure) => failure,
    };
    assert_ne!(failure.exit_code, Some(0));
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let record = offsets[offsets.len() / 2];
    assert!(
        failure.stderr.contains(&name) && failure.stderr.contains(&format!("offset {record}")),
        "the error must name {name} and offset {record}: {}",
        failure.stderr
    );
    // The inspection tool finds the same damage.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["data", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stderr).contains(&format!("offset {record}")));
}

#[tokio::test]
async fn a_damaged_snapshot_stops_the_start_and_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server =
            ServerProcess::start(dir.path(), &["--snapshot-every-txns", "20"]).expect("start");
        let mut client = RawClient::connect(server.addr).await;
        for i in 0..30 {
            assert_eq!(
                client.create(&format!("/s{i}"), &[7; 100], 0).await.err(),
                0
            );
        }
        // The snapshot is written in the background.
        let deadline = std::time::Instant::now() + WAIT;
        while files::snapshots(dir.path()).unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot was written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let snapshot = files::snapshots(dir.path()).unwrap().pop().unwrap().path;
    let len = std::fs::metadata(&snapshot).unwrap().len();
    let bytes = std::fs::read(&snapshot).unwrap();
    // Find the record that holds the middle byte, to know what the error must name.
    let middle = len / 2;
    let mut frames = Frames::new(&bytes, SNAPSHOT_MAGIC.len(), false);
    let mut holder = 0;
    while let Some(frame) = frames.next_frame().unwrap() {
        if frame.offset <= middle {
            holder = frame.offset;
        }
    }
    flip_byte(&snapshot, middle);
    let failure = match ServerProcess::start(dir.path(), &[]) {
        Ok(server) => panic!("started on a damaged snapshot: {}", server.log_text()),
        Err(failure) => failure,
    };
    assert_ne!(failure.exit_code, Some(0));
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        failure.stderr.contains(&name) && failure.stderr.contains(&format!("offset {holder}")),
        "the error must name {name} and offset {holder}: {}",
        failure.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_their_ephemerals_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A 1 s tick allows 10 s sessions (at most 20 ticks).
    let flags = ["--tick-time", "1000"];
    let mut server = ServerProcess::start(dir.path(), &flags).expect("start");
    let mut returning = RawClient::connect_with_timeout(server.addr, 10_000).await;
    let mut vanishing = RawClient::connect_with_timeout(server.addr, 10_000).await;
    assert_eq!(returning.timeout_ms, 10_000);
    assert_eq!(returning.create("/mine", b"1", 1).await.err(), 0);
    assert_eq!(vanishing.create("/ghost", b"1", 1).await.err(), 0);
    let seen_zxid = returning.ping().await.zxid();
    let (session, passwd) = (returning.session_id, returning.passwd.clone());
    let vanished_session = vanishing.session_id;

    server.kill();
    drop(vanishing);
    server = ServerProcess::start(dir.path(), &flags).expect("restart");

    let mut back = RawClient::open(server.addr).await;
    let mut request = reattach_request(session, passwd, 10_000);
    request.last_zxid_seen = seen_zxid;
    let response = back.handshake(&request).await.expect("handshake answered");
    assert_eq!(
        response.session_id, session,
        "the session must survive the restart"
    );
    let stat = back.exists("/mine").await;
    assert_eq!(
        stat.err(),
        0,
        "the ephemeral node must survive with its session"
    );
    let Some(Response::Stat(stat)) = stat.body else {
        unreachable!()
    };
    assert_eq!(stat.stat.ephemeral_owner, session);
    // The client that never came back still has its node, until its
    // timeout (counted from the restart) runs out.
    assert_eq!(back.exists("/ghost").await.err(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let reply = back.exists("/ghost").await;
        if reply.err() == canopy_protocol::ErrorCode::NoNode.code() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session 0x{vanished_session:x} never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The returning client kept its session by pinging all along.
    assert_eq!(back.exists("/mine").await.err(), 0);
    let ephemerals = back
        .call(Request::GetEphemerals(
            canopy_protocol::GetEphemeralsRequest {
                prefix_path: "/".into(),
            },
        ))
        .await;
    assert_eq!(ephemerals.header.err, 0);
    let Some(Response::GetEphemerals(mine)) = ephemerals.body else {
        unreachable!()
    };
    assert_eq!(mine.ephemerals, ["/mine"]);
}
