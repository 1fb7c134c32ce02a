//! Operations against an in-process server over real TCP: every
//! four-letter word parsed the way ZooKeeper's tools and exporters parse it,
//! every admin command, forced session removal, the Prometheus endpoint,
//! connection access control and the admin write guard.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use canopy_protocol::{EventType, Jute};
use common::http::{self, free_port};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const EPHEMERAL: i32 = 1;

async fn server_with_admin(
    tweak: impl FnOnce(&mut canopy::config::Config),
) -> (TestServer, SocketAddr) {
    let server = start_server_with(|c| {
        c.admin_port = free_port();
        tweak(c);
    })
    .await;
    let admin = server.server.admin_addr.expect("the admin server is up");
    (server, admin)
}

/// `key<sep>value` lines into a map (lines without the separator skipped).
fn pairs(text: &str, sep: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Builds some state: a client with an ephemeral node and watches.
async fn some_state(addr: SocketAddr) -> RawClient {
    let mut client = RawClient::connect(addr).await;
    assert_eq!(client.create("/app", b"x", 0).await.err(), 0);
    assert_eq!(client.create("/app/eph", b"e", EPHEMERAL).await.err(), 0);
    assert_eq!(client.get_data("/app", true).await.err(), 0);
    assert_eq!(client.get_children("/app", true).await.err(), 0);
    client
}

#[tokio::test]
async fn four_letter_words_parse_like_zookeepers_tools() {
    let server = start_server().await;
    let client = some_state(server.addr).await;
    let sid = format!("0x{:x}", client.session_id);

    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    assert_eq!(four_letter_word(server.addr, "isro").await, "rw");

    // srvr: "Key: value" lines, as zkServer.sh status and check_zookeeper read them.
    let srvr = four_letter_word(server.addr, "srvr").await;
    let fields = pairs(&srvr, ": ");
    assert!(fields["Zookeeper version"].starts_with("3.9."), "{srvr}");
    let latency: Vec<f64> = fields["Latency min/avg/max"]
        .split('/')
        .map(|v| v.parse().expect("latency numbers"))
        .collect();
    assert_eq!(latency.len(), 3);
    assert!(latency[0] <= latency[1] && latency[1] <= latency[2]);
    assert!(fields["Received"].parse::<u64>().unwrap() >= 4);
    assert!(fields["Sent"].parse::<u64>().unwrap() >= 4);
    assert_eq!(fields["Connections"], "1");
    assert_eq!(fields["Outstanding"], "0");
    assert!(i64::from_str_radix(fields["Zxid"].trim_start_matches("0x"), 16).unwrap() > 0);
    assert_eq!(fields["Mode"], "standalone");
    // /, /zookeeper, /zookeeper/quota, /zookeeper/config, /app, /app/eph
    let nodes: u64 = fields["Node count"].parse().unwrap();
    assert!(nodes >= 6, "{srvr}");

    // stat: the same plus a Clients section with this client's connection.
    let stat = four_letter_word(server.addr, "stat").await;
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    assert_eq!(pairs(&stat, ": ")["Mode"], "standalone");

    // mntr: tab-separated key/value lines, every key zk_-prefixed, as the
    // Prometheus exporters split them.
    let mntr = four_letter_word(server.addr, "mntr").await;
    for line in mntr.lines() {
        let (key, value) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("no tab: {line:?}"));
        assert!(key.starts_with("zk_") && !value.is_empty(), "{line:?}");
    }
    let m = pairs(&mntr, "\t");
    assert_eq!(m["zk_server_state"], "standalone");
    assert_eq!(m["zk_znode_count"].parse::<u64>().unwrap(), nodes);
    assert_eq!(m["zk_ephemerals_count"], "1");
    assert_eq!(m["zk_num_alive_connections"], "1");
    assert_eq!(m["zk_global_sessions"], "1");
    assert_eq!(m["zk_watch_count"], "2");
    assert!(m["zk_avg_latency"].parse::<f64>().is_ok());
    assert!(
        m["zk_cnt_fsynctime"].parse::<u64>().unwrap() >= 1,
        "writes were fsync'd"
    );
    assert!(m["zk_cnt_updatelatency"].parse::<u64>().unwrap() >= 2);
    assert!(m["zk_cnt_readlatency"].parse::<u64>().unwrap() >= 2);
    assert!(m["zk_bytes_received_count"].parse::<u64>().unwrap() > 0);
    assert!(m.contains_key("zk_p99_readlatency"));

    // conf: key=value, with the real limits and sizes.
    let conf = pairs(&four_letter_word(server.addr, "conf").await, "=");
    assert_eq!(conf["tickTime"], TICK_MS.to_string());
    assert_eq!(conf["maxClientCnxns"], "60");
    assert!(conf["dataDirSize"].parse::<u64>().unwrap() > 0);

    // dirs: the data folder is not empty once something was written.
    let dirs = pairs(&four_letter_word(server.addr, "dirs").await, ": ");
    assert!(dirs["datadir_size"].parse::<u64>().unwrap() > 0);
    assert_eq!(dirs["datadir_size"], dirs["logdir_size"]);

    let cons = four_letter_word(server.addr, "cons").await;
    assert!(cons.contains(&format!("sid={sid}")), "{cons}");
    assert!(cons.contains("lop=GETC"), "{cons}");

    let wchs = four_letter_word(server.addr, "wchs").await;
    assert!(
        wchs.starts_with("1 connections watching 1 paths\nTotal watches:1"),
        "{wchs}"
    );
    let wchc = four_letter_word(server.addr, "wchc").await;
    assert!(wchc.contains(&format!("{sid}\n\t/app\n")), "{wchc}");
    let wchp = four_letter_word(server.addr, "wchp").await;
    assert!(wchp.contains(&format!("/app\n\t{sid}\n")), "{wchp}");

    let dump = four_letter_word(server.addr, "dump").await;
    assert!(
        dump.starts_with("SessionTracker dump:\nSession Sets (1)/(1):"),
        "{dump}"
    );
    assert!(dump.contains(&format!("{sid}:\n\t/app/eph\n")), "{dump}");

    let envi = four_letter_word(server.addr, "envi").await;
    assert!(
        envi.starts_with("Environment:\nzookeeper.version=3.9."),
        "{envi}"
    );

    assert_eq!(
        four_letter_word(server.addr, "crst").await,
        "Connection stats reset.\n"
    );
    assert_eq!(
        four_letter_word(server.addr, "srst").await,
        "Server stats reset.\n"
    );
    let after = pairs(&four_letter_word(server.addr, "srvr").await, ": ");
    assert_eq!(after["Received"], "0", "srst reset the counters");

    // A refused addauth is counted (and its connection closed).
    let mut intruder = RawClient::connect(server.addr).await;
    intruder
        .send_with_xid(
            canopy_protocol::xid::AUTH,
            &canopy_protocol::Request::Auth(canopy_protocol::AuthPacket {
                auth_type: 0,
                scheme: "no-such-scheme".into(),
                auth: bytes::Bytes::from_static(b"x"),
            }),
        )
        .await;
    intruder.expect_closed().await;
    let m = pairs(&four_letter_word(server.addr, "mntr").await, "\t");
    assert_eq!(m["zk_auth_failed_count"], "1");
    drop(client);
}

#[tokio::test]
async fn the_allow_list_limits_the_words_but_srvr_always_answers() {
    let server = start_server_with(|c| c.four_letter_words = vec!["ruok".into()]).await;
    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    assert_eq!(
        four_letter_word(server.addr, "mntr").await,
        "mntr is not executed because it is not in the whitelist.\n"
    );
    assert!(four_letter_word(server.addr, "srvr")
        .await
        .starts_with("Zookeeper version: "));
}

#[tokio::test]
async fn every_admin_command_answers_with_zookeepers_json() {
    let (server, admin) = server_with_admin(|_| {}).await;
    let client = some_state(server.addr).await;
    let sid = client.session_id;

    let get = |name: &'static str| async move {
        http::get(admin, &format!("/commands/{name}")).await.json()
    };

    let monitor = get("monitor").await;
    assert_eq!(monitor["server_state"], "standalone");
    assert_eq!(monitor["ephemerals_count"], 1);
    assert!(monitor["znode_count"].as_u64().unwrap() >= 6);
    assert!(monitor["avg_latency"].is_number());

    let connections = get("connections").await;
    let conns = connections["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["session_id"], sid);
    assert!(conns[0]["remote_socket_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(conns[0]["last_operation"], "GETC");

    let stats = get("stats").await;
    assert_eq!(stats["server_stats"]["server_state"], "standalone");
    assert_eq!(stats["server_stats"]["num_alive_client_connections"], 1);
    assert_eq!(stats["connections"].as_array().unwrap().len(), 1);
    assert!(get("server_stats").await.get("connections").is_none());

    let watches = get("watches").await;
    assert_eq!(
        watches["session_id_to_watched_paths"][sid.to_string()],
        serde_json::json!(["/app"])
    );
    let by_path = get("watches_by_path").await;
    assert_eq!(by_path["path_to_session_ids"]["/app"][0], sid);
    let summary = get("watch_summary").await;
    assert_eq!(summary["num_connections"], 1);
    assert_eq!(summary["num_total_watches"], 1);

    let dump = get("dump").await;
    assert_eq!(
        dump["session_id_to_ephemeral_paths"][sid.to_string()],
        serde_json::json!(["/app/eph"])
    );
    let expiring: Vec<i64> = dump["expiry_time_to_session_ids"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ids| ids.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
        .collect();
    assert_eq!(expiring, [sid]);

    let conf = get("configuration").await;
    assert_eq!(conf["client_port"], server.addr.port());
    assert_eq!(conf["max_client_cnxns"], 60);
    assert_eq!(conf["tick_time"], TICK_MS);
    assert!(get("dirs").await["datadir_size"].as_u64().unwrap() > 0);
    assert_eq!(get("is_read_only").await["read_only"], false);
    assert!(get("environment").await["zookeeper.version"]
        .as_str()
        .unwrap()
        .starts_with("3.9."));

    // Every command and alias, last: two of them reset counters.
    for (name, aliases) in canopy::admin::commands::COMMANDS {
        for asked in std::iter::once(name).chain(aliases.iter()) {
            let response = http::get(admin, &format!("/commands/{asked}")).await;
            assert_eq!(response.status, 200, "{asked}: {}", response.body);
            assert!(response.headers.contains("application/json"), "{asked}");
            let json = response.json();
            assert_eq!(json["command"], *name, "{asked}");
            assert!(json["error"].is_null(), "{asked}: {json}");
        }
    }
    // Unknown commands: 200 with the error inside, as ZooKeeper answers.
    let unknown = http::get(admin, "/commands/nosuch").await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json()["error"], "Unknown command: nosuch");
    let index = http::get(admin, "/commands").await;
    assert!(index.body.contains("/commands/monitor"));
    drop(client);
}

#[tokio::test]
async fn deleting_a_session_expires_it_and_fires_other_clients_watches() {
    let (server, admin) = server_with_admin(|_| {}).await;
    let mut owner = RawClient::connect(server.addr).await;
    assert_eq!(owner.create("/svc", b"", 0).await.err(), 0);
    assert_eq!(
        owner.create("/svc/provider", b"p", EPHEMERAL).await.err(),
        0
    );
    let mut watcher = RawClient::connect(server.addr).await;
    assert_eq!(watcher.get_data("/svc/provider", true).await.err(), 0);
    assert_eq!(watcher.get_children("/svc", true).await.err(), 0);

    let hex = format!("0x{:x}", owner.session_id);
    let listed = http::get(admin, "/v1/sessions").await.json();
    assert_eq!(listed["count"], 2);
    let mine = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == hex.as_str())
        .expect("the owner's session is listed")
        .clone();
    assert_eq!(mine["ephemeral_count"], 1);
    assert_eq!(mine["connected"], true);
    assert!(mine["client_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(mine["timeout_ms"].as_i64().unwrap() > 0);
    // One session, by decimal id as well as hex.
    let one = http::get(admin, &format!("/v1/sessions/{}", owner.session_id)).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.json()["ephemerals"],
        serde_json::json!(["/svc/provider"])
    );

    let removed = http::request(admin, "DELETE", &format!("/v1/sessions/{hex}"), None, None).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(removed.json()["ephemerals_removed"], 1);

    // The other client's watches fire, as on an expiry.
    let mut events = Vec::new();
    for _ in 0..2 {
        let (header, event) = watcher.next_notification().await;
        assert!(header.zxid > 0);
        events.push((event.event_type, event.path));
    }
    events.sort();
    assert_eq!(
        events,
        [
            (EventType::NodeDeleted as i32, "/svc/provider".to_string()),
            (EventType::NodeChildrenChanged as i32, "/svc".to_string()),
        ]
    );
    assert_eq!(
        watcher.exists("/svc/provider").await.err(),
        canopy_protocol::ErrorCode::NoNode.code()
    );
    // The owner is cut off, and coming back it is told its session expired
    // (a connect answer with no session and timeout 0).
    owner.expect_closed().await;
    let mut back = RawClient::open(server.addr).await;
    let answer = back
        .handshake(&reattach_request(
            owner.session_id,
            owner.passwd.clone(),
            10_000,
        ))
        .await
        .expect("an answer");
    assert_eq!((answer.session_id, answer.timeout), (0, 0));

    assert_eq!(
        http::get(admin, &format!("/v1/sessions/{hex}"))
            .await
            .status,
        404
    );
    let again = http::request(admin, "DELETE", &format!("/v1/sessions/{hex}"), None, None).await;
    assert_eq!(again.status, 404);
    assert_eq!(http::get(admin, "/v1/sessions/nonsense").await.status, 400);
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let (server, admin) = server_with_admin(|_| {}).await;
    let before = scrape(admin).await;
    let mut client = RawClient::connect(server.addr).await;
    const CREATES: u64 = 7;
    const READS: u64 = 5;
    for i in 0..CREATES {
        assert_eq!(client.create(&format!("/m{i}"), b"data", 0).await.err(), 0);
    }
    for i in 0..READS {
        assert_eq!(client.get_data(&format!("/m{i}"), false).await.err(), 0);
    }
    let after = scrape(admin).await;
    let delta = |key: &str| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    assert_eq!(
        delta("canopy_requests_total{op=\"create\"}"),
        CREATES as f64
    );
    assert_eq!(delta("canopy_requests_total{op=\"getData\"}"), READS as f64);
    assert_eq!(
        after["canopy_request_duration_seconds_count{op=\"create\"}"],
        CREATES as f64
    );
    assert_eq!(
        after["canopy_request_duration_seconds_bucket{op=\"create\",le=\"+Inf\"}"],
        CREATES as f64
    );
    assert_eq!(delta("zk_znode_count"), CREATES as f64);
    assert_eq!(after["zk_num_alive_connections"], 1.0);
    // 7 creates and the session: at least one fsync each batch, at most one each.
    let fsyncs = delta("canopy_fsync_duration_seconds_count");
    assert!((1.0..=(CREATES + 1) as f64).contains(&fsyncs), "{fsyncs}");
    // Every record logged since (the session, then the creates) is in
    // exactly one log batch.
    assert_eq!(
        delta("zk_sum_sync_processor_batch_size"),
        (CREATES + 1) as f64
    );
    assert_eq!(
        delta("canopy_log_queue_and_flush_seconds_count"),
        delta("zk_cnt_sync_processor_batch_size")
    );
    assert!(delta("canopy_bytes_received_total") > 0.0);
    assert!(delta("canopy_bytes_sent_total") > 0.0);
    assert!(after["canopy_connections_accepted_total"] >= 1.0);
    assert_eq!(
        after["canopy_connections_refused_total{reason=\"denied\"}"],
        0.0
    );
    // Buckets are cumulative.
    let mut create_buckets: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|(k, v)| {
            let le =
                k.strip_prefix("canopy_request_duration_seconds_bucket{op=\"create\",le=\"")?;
            let le = le.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    create_buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(create_buckets.len() > 10);
    assert!(create_buckets.windows(2).all(|w| w[0].1 <= w[1].1));
    drop(client);
}

/// Scrapes `/metrics` into `name{labels}` -> value, checking the format on
/// the way: every sample line is `name value`, every family has a TYPE.
async fn scrape(admin: SocketAddr) -> HashMap<String, f64> {
    let response = http::get(admin, "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(response.headers.contains("text/plain; version=0.0.4"));
    let mut typed = std::collections::HashSet::new();
    let mut samples = HashMap::new();
    for line in response.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        let family = name.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| family.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(family);
        assert!(typed.contains(family), "no TYPE for {family}");
        samples.insert(name.to_string(), value);
    }
    samples
}

/// Connects from a given loopback source address and sends `ruok`: the
/// answer, or "" if the server closed without one.
async fn ruok_from(source: [u8; 4], server: SocketAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(server))
        .await
        .expect("connect in time")
        .expect("connect");
    // The server may already have closed: a failed write is an answer too.
    let _ = stream.write_all(b"ruok").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers or closes in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn deny_list_refuses_127_0_0_2_and_the_admin_api_changes_it() {
    let (server, admin) = server_with_admin(|c| c.deny = vec!["127.0.0.2".into()]).await;
    assert_eq!(ruok_from([127, 0, 0, 1], server.addr).await, "imok");
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "");
    let metrics = scrape(admin).await;
    assert_eq!(
        metrics["canopy_connections_refused_total{reason=\"denied\"}"],
        1.0
    );
    assert_eq!(metrics["zk_connection_rejected"], 1.0);

    // An allow list of 127.0.0.1 alone keeps 127.0.0.3 out, too.
    let changed = http::request(
        admin,
        "PUT",
        "/v1/access",
        Some(r#"{"allow": ["127.0.0.1/32"], "deny": []}"#),
        None,
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.json()["deny"], serde_json::json!([]));
    assert_eq!(ruok_from([127, 0, 0, 3], server.addr).await, "");
    assert_eq!(ruok_from([127, 0, 0, 1], server.addr).await, "imok");
    let changed = http::request(admin, "PUT", "/v1/access", Some(r#"{"allow": []}"#), None).await;
    assert_eq!(changed.status, 200);
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "imok");
    let bad = http::request(
        admin,
        "PUT",
        "/v1/access",
        Some(r#"{"deny": ["10.0.0.0/40"]}"#),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn max_client_cnxns_is_enforced_per_address() {
    let server = start_server_with(|c| c.max_client_cnxns = 2).await;
    let first = RawClient::connect(server.addr).await;
    let _second = RawClient::connect(server.addr).await;
    // The third from 127.0.0.1 is closed at accept, without an answer.
    let mut third = RawClient::open(server.addr).await;
    third
        .send_raw(&with_length(&new_session_request(10_000).to_bytes()))
        .await;
    assert!(third.expect_closed().await.is_empty());
    // Another address has its own count.
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "imok");
    // A place frees when a connection ends (the server notices the close
    // asynchronously: retry a bounded number of times).
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        let mut again = RawClient::open(server.addr).await;
        if again
            .handshake(&new_session_request(10_000))
            .await
            .is_some()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a connection was admitted once one closed");
}

#[tokio::test]
async fn state_changes_need_the_token_when_one_is_set() {
    let (server, admin) = server_with_admin(|c| c.admin_token = Some("t0ken".into())).await;
    let client = RawClient::connect(server.addr).await;
    let path = format!("/v1/sessions/0x{:x}", client.session_id);
    // Reads need no token.
    assert_eq!(http::get(admin, &path).await.status, 200);
    assert_eq!(http::get(admin, "/metrics").await.status, 200);
    let refused = http::request(admin, "DELETE", &path, None, None).await;
    assert_eq!(refused.status, 401);
    let wrong = http::request(admin, "DELETE", &path, None, Some("nope")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(http::get(admin, "/commands/stat_reset").await.status, 401);
    let put = http::request(
        admin,
        "PUT",
        "/v1/access",
        Some(r#"{"deny": ["127.0.0.9"]}"#),
        None,
    )
    .await;
    assert_eq!(put.status, 401);
    assert_eq!(
        http::get(admin, &path).await.status,
        200,
        "the session is still there"
    );
    let done = http::request(admin, "DELETE", &path, None, Some("t0ken")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    drop(client);
}

#[tokio::test]
async fn a_taken_admin_port_leaves_the_client_port_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = start_server_with(|c| c.admin_port = port).await;
    assert!(server.server.admin_addr.is_none());
    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    let mut client = RawClient::connect(server.addr).await;
    assert_eq!(client.create("/still", b"", 0).await.err(), 0);
}

#[tokio::test]
async fn services_view_decodes_the_dubbo_layout() {
    let (server, admin) = server_with_admin(|_| {}).await;
    let mut provider = RawClient::connect(server.addr).await;
    for path in [
        "/dubbo",
        "/dubbo/com.example.Greeter",
        "/dubbo/com.example.Greeter/providers",
        "/dubbo/com.example.Greeter/consumers",
    ] {
        assert_eq!(provider.create(path, b"", 0).await.err(), 0);
    }
    let url = "dubbo://10.1.2.3:20880/com.example.Greeter?application=shop&version=1.0.0";
    let encoded: String = url
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let node = format!("/dubbo/com.example.Greeter/providers/{encoded}");
    assert_eq!(provider.create(&node, b"", EPHEMERAL).await.err(), 0);
    let consumer_url = "consumer://10.9.9.9/com.example.Greeter?application=web&category=consumers";
    let consumer = consumer_url
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26");
    assert_eq!(
        provider
            .create(
                &format!("/dubbo/com.example.Greeter/consumers/{consumer}"),
                b"",
                EPHEMERAL
            )
            .await
            .err(),
        0
    );
    let view = http::get(admin, "/v1/services").await.json();
    assert_eq!(view["root"], "/dubbo");
    let service = &view["services"][0];
    assert_eq!(service["interface"], "com.example.Greeter");
    let p = &service["providers"][0];
    assert_eq!(p["url"], url);
    assert_eq!(p["protocol"], "dubbo");
    assert_eq!(p["address"], "10.1.2.3:20880");
    assert_eq!(p["parameters"]["application"], "shop");
    assert_eq!(p["ephemeral"], true);
    assert_eq!(service["consumers"][0]["parameters"]["application"], "web");
    // Once the provider's session is forced off, it is gone from the view.
    let hex = format!("0x{:x}", provider.session_id);
    assert_eq!(
        http::request(admin, "DELETE", &format!("/v1/sessions/{hex}"), None, None)
            .await
            .status,
        200
    );
    let view = http::get(admin, "/v1/services").await.json();
    assert_eq!(view["services"][0]["providers"], serde_json::json!([]));
    assert_eq!(
        http::get(admin, "/v1/services?root=/none").await.json()["services"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn the_global_limit_counts_every_address() {
    let (server, admin) = server_with_admin(|c| c.max_connections = 1).await;
    let _only = RawClient::connect(server.addr).await;
    assert_eq!(ruok_from([127, 0, 0, 2], server.addr).await, "");
    let refused = scrape(admin).await;
    assert_eq!(
        refused["canopy_connections_refused_total{reason=\"global_limit\"}"],
        1.0
    );
    let view = http::get(admin, "/v1/access").await.json();
    assert_eq!(view["open_connections"], 1);
    assert_eq!(view["max_connections"], 1);
}
