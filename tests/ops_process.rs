//! Operations that need the real binary: SIGTERM (clean exit, no lost
//! acknowledged write, sessions survive or are closed as configured), SIGHUP
//! reloading the access lists, zoo.cfg, JSON logs with the level changed at
//! run time through the admin API.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{xid, Acl, CreateRequest, ErrorCode, Jute, Request};
use common::http::{self, free_port};
use common::process::ServerProcess;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const EPHEMERAL: i32 = 1;

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.to_string(),
        data: Some(Bytes::from_static(b"v")),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

#[tokio::test]
async fn sigterm_exits_cleanly_without_losing_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).expect("server starts");
    let mut client = RawClient::connect(server.addr).await;
    assert_eq!(client.create("/keep", b"", EPHEMERAL).await.err(), 0);
    // A burst of writes in flight when the signal arrives.
    const BURST: usize = 300;
    let mut sent = Vec::new();
    for i in 0..BURST {
        let path = format!("/w{i}");
        let xid = client.send(&create(&path)).await;
        sent.push((xid, path));
    }
    server.signal("TERM");
    // Whatever replies come before the server closes are acknowledgements.
    let mut acknowledged = Vec::new();
    while let Ok(Some(frame)) = client.read_frame_within(WAIT).await {
        let (_, header) = canopy_protocol::ReplyHeader::decode(&frame).expect("a reply header");
        if header.xid != xid::NOTIFICATION && header.err == 0 {
            if let Some((_, path)) = sent.iter().find(|(x, _)| *x == header.xid) {
                acknowledged.push(path.clone());
            }
        }
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        server.log_text()
    );
    assert!(
        wait_for_log(&server, "log closed").await,
        "{}",
        server.log_text()
    );

    let (session, passwd) = (client.session_id, client.passwd.clone());
    let server = ServerProcess::start(dir.path(), &[]).expect("server restarts");
    let mut check = RawClient::connect(server.addr).await;
    // Every acknowledged write is there, and nothing else: a request the
    // server took after the signal was not applied behind the client's back.
    for (_, path) in &sent {
        let expected = if acknowledged.contains(path) {
            0
        } else {
            ErrorCode::NoNode.code()
        };
        assert_eq!(
            check.exists(path).await.err(),
            expected,
            "{path}: acknowledged = {}",
            acknowledged.contains(path)
        );
    }
    // Sessions survive a graceful restart by default, with their ephemerals.
    assert_eq!(check.exists("/keep").await.err(), 0);
    let mut back = RawClient::open(server.addr).await;
    let answer = back
        .handshake(&reattach_request(session, passwd, 10_000))
        .await
        .expect("an answer");
    assert_eq!(
        answer.session_id, session,
        "the session survived the restart"
    );
    eprintln!(
        "{} of {BURST} writes were acknowledged before the stop",
        acknowledged.len()
    );
}

#[tokio::test]
async fn sigterm_can_close_every_session_instead() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &["--close-sessions-on-shutdown", "true"])
        .expect("server starts");
    let mut client = RawClient::connect(server.addr).await;
    assert_eq!(client.create("/gone", b"", EPHEMERAL).await.err(), 0);
    server.signal("TERM");
    client.expect_closed().await;
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(
        wait_for_log(&server, "sessions_closed=1").await,
        "{}",
        server.log_text()
    );

    let server = ServerProcess::start(dir.path(), &[]).expect("server restarts");
    let mut check = RawClient::connect(server.addr).await;
    assert_eq!(check.exists("/gone").await.err(), ErrorCode::NoNode.code());
    let mut back = RawClient::open(server.addr).await;
    let answer = back
        .handshake(&reattach_request(
            client.session_id,
            client.passwd.clone(),
            10_000,
        ))
        .await
        .expect("an answer");
    assert_eq!(
        (answer.session_id, answer.timeout),
        (0, 0),
        "the session is expired"
    );
}

async fn ruok_from(source: [u8; 4], server: SocketAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(server))
        .await
        .expect("connect in time")
        .expect("connect");
    let _ = stream.write_all(b"ruok").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer or a close in time");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server's log shows `needle` within a bounded wait.
async fn wait_for_log(server: &ServerProcess, needle: &str) -> bool {
    for _ in 0..400 {
        if server.log_text().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn sighup_reloads_the_access_lists_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canopy.toml");
    std::fs::write(&config, "deny = [\"127.0.0.2\"]\n").unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &["--config", config.to_str().unwrap()])
        .expect("server starts");
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "");
    assert_eq!(ruok_from([127, 0, 0, 1], server.addr).await, "imok");

    // Swap the lists: 127.0.0.2 in, 127.0.0.1 out.
    std::fs::write(&config, "deny = [\"127.0.0.1\"]\n").unwrap();
    server.signal("HUP");
    let mut reloaded = false;
    for _ in 0..200 {
        if ruok_from([127, 0, 0, 2], server.addr).await == "imok" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "SIGHUP did not reload: {}", server.log_text());
    assert_eq!(ruok_from([127, 0, 0, 1], server.addr).await, "");
    // The log is read by another thread: give it a bounded moment.
    assert!(
        wait_for_log(&server, "access rules reloaded").await,
        "{}",
        server.log_text()
    );

    // A broken file keeps the rules in force.
    std::fs::write(&config, "deny = [\"127.0.0.1/99\"]\n").unwrap();
    server.signal("HUP");
    assert!(
        wait_for_log(&server, "settings not reloaded").await,
        "{}",
        server.log_text()
    );
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "imok");
}

#[test]
fn zoo_cfg_settings_are_taken_and_the_rest_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = dir.path().join("zoo.cfg");
    std::fs::write(
        &zoo,
        "tickTime=300\nclientPort=2999\nmaxClientCnxns=7\n4lw.commands.whitelist=ruok,mntr\n\
         admin.enableServer=false\nforceSync=yes\ninitLimit=5\nsyncLimit=2\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["serve", "--zoo-cfg"])
        .arg(&zoo)
        .args(["--print-config"])
        .output()
        .expect("run canopy");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "tick_time_ms: 300",
        "port: 2999",
        "max_client_cnxns: 7",
        "admin_port: 0",
        "fsync: true",
        "\"ruok\"",
        "\"mntr\"",
        // Bounds follow the tick, as in ZooKeeper.
        "min_session_timeout_ms: 600",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert!(
        stderr.contains("initLimit=5") && stderr.contains("syncLimit=2"),
        "{stderr}"
    );

    // Flags win over the file; a .cfg given as --config is read as a zoo.cfg.
    let output = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["serve", "--config"])
        .arg(&zoo)
        .args(["--max-client-cnxns", "9", "--print-config"])
        .output()
        .expect("run canopy");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("max_client_cnxns: 9") && stdout.contains("port: 2999"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_server_runs_from_a_zoo_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = dir.path().join("zoo.cfg");
    std::fs::write(
        &zoo,
        "tickTime=100\n4lw.commands.whitelist=ruok\nmaxClientCnxns=2\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        &dir.path().join("data"),
        &["--config", zoo.to_str().unwrap()],
    )
    .expect("server starts from a zoo.cfg");
    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    assert_eq!(
        four_letter_word(server.addr, "mntr").await,
        "mntr is not executed because it is not in the whitelist.\n"
    );
    // maxClientCnxns=2: two sessions are admitted (once the word connections
    // are gone: the server notices a close asynchronously), a third is not.
    let mut admitted = Vec::new();
    for _ in 0..400 {
        let mut client = RawClient::open(server.addr).await;
        if client
            .handshake(&new_session_request(5_000))
            .await
            .is_some()
        {
            admitted.push(client);
            if admitted.len() == 2 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(admitted.len(), 2, "two sessions are admitted");
    let mut third = RawClient::open(server.addr).await;
    assert!(third.handshake(&new_session_request(5_000)).await.is_none());
}

#[tokio::test]
async fn json_logs_and_the_level_changed_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let admin_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["serve", "--port", "0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(dir.path())
        .args(["--log-format", "json", "--log-level", "info"])
        .args(["--admin-port", &admin_port.to_string()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn canopy");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(
                |e| serde_json::json!({ "not_json": line, "error": e.to_string() }),
            );
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let mut client_addr = None;
    let mut admin_up = false;
    while client_addr.is_none() || !admin_up {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("log lines");
        assert!(
            line.get("not_json").is_none(),
            "a log line is not JSON: {line}"
        );
        let message = line["fields"]["message"].as_str().unwrap_or("").to_string();
        if let Some(addr) = message.strip_prefix("listening on ") {
            client_addr = Some(addr.parse::<SocketAddr>().unwrap());
        }
        admin_up |= message.starts_with("admin server on");
        lines.push(line);
    }
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    assert_eq!(
        http::get(admin, "/v1/log/level").await.json()["level"],
        "info"
    );

    // Debug lines appear only after the level is raised.
    let changed = http::request(
        admin,
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"debug"}"#),
        None,
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        http::get(admin, "/v1/log/level").await.json()["level"],
        "debug"
    );
    // A client that closes at once logs at debug ("connection closed by client").
    let mut client = RawClient::connect(client_addr.unwrap()).await;
    client.ping().await;
    drop(client);
    let mut saw_debug = false;
    for _ in 0..100 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line["level"] == "DEBUG" => {
                saw_debug = true;
                break;
            }
            Ok(_) | Err(_) => {}
        }
    }
    assert!(saw_debug, "no debug line after raising the level");
    let bad = http::request(
        admin,
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"[[["}"#),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);

    let _ = child.kill();
    let _ = child.wait();
}
