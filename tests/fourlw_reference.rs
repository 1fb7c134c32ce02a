//! Every four-letter word against the answers Apache ZooKeeper 3.8 gave in
//! the same situation (tests/reference/4lw, recorded by capture.py): two
//! clients, the same nodes and watches. Numbers, ids, dates, paths and the
//! version differ from run to run, so both sides are masked (a run of digits
//! becomes `N`, hex after `0x` becomes `H`); what is left is the format, and
//! it must be the same.

mod common;

use std::collections::{BTreeSet, HashMap};

use canopy_protocol::{AddWatchRequest, ExistsRequest, Request};
use common::*;

const EPHEMERAL: i32 = 1;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const PERSISTENT_RECURSIVE: i32 = 1;

fn reference(word: &str) -> String {
    let path = format!(
        "{}/tests/reference/4lw/{word}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A line with its run-specific values masked.
fn mask(line: &str) -> String {
    for prefix in ["Zookeeper version: ", "zookeeper.version=", "zk_version\t"] {
        if line.starts_with(prefix) {
            return format!("{prefix}VERSION");
        }
    }
    for prefix in ["dataDir=", "dataLogDir="] {
        if line.starts_with(prefix) {
            return format!("{prefix}PATH");
        }
    }
    if let Some(at) = line.find(" expire at ") {
        return format!("{} expire at DATE:", mask(&line[..at]));
    }
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '0' && chars.get(i + 1) == Some(&'x') {
            out.push_str("0xH");
            i += 2;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
        } else if chars[i].is_ascii_digit() {
            out.push('N');
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn masked(text: &str) -> Vec<String> {
    text.lines().map(mask).collect()
}

fn shapes(text: &str) -> BTreeSet<String> {
    text.lines().map(mask).collect()
}

async fn exists_watch(client: &mut RawClient, path: &str) -> Reply {
    client
        .call(Request::Exists(ExistsRequest {
            path: path.to_string(),
            watch: true,
        }))
        .await
}

/// The capture's situation: client A and client B with their nodes and
/// watches (see tests/reference/4lw/README.md).
async fn capture_situation(addr: std::net::SocketAddr) -> (RawClient, RawClient) {
    let mut a = RawClient::connect_with_timeout(addr, 30_000).await;
    let mut b = RawClient::connect_with_timeout(addr, 30_000).await;
    assert_eq!(a.create("/app", b"app", 0).await.err(), 0);
    assert_eq!(a.create("/app/lock", b"a-eph", EPHEMERAL).await.err(), 0);
    assert_eq!(
        a.create("/app/member-", b"a-seq", EPHEMERAL_SEQUENTIAL)
            .await
            .err(),
        0
    );
    assert_eq!(a.get_data("/app", true).await.err(), 0);
    assert_ne!(exists_watch(&mut a, "/app/missing").await.err(), 0);
    assert_eq!(a.get_children("/app", true).await.err(), 0);
    assert_eq!(b.create("/b-eph", b"b", EPHEMERAL).await.err(), 0);
    assert_eq!(b.get_data("/app", true).await.err(), 0);
    assert_eq!(exists_watch(&mut b, "/app/lock").await.err(), 0);
    let added = b
        .call(Request::AddWatch(AddWatchRequest {
            path: "/app".into(),
            mode: PERSISTENT_RECURSIVE,
        }))
        .await;
    assert_eq!(added.err(), 0);
    (a, b)
}

#[tokio::test]
async fn every_word_has_zookeepers_format() {
    let server = start_server_with(|c| {
        // As the reference server ran: tickTime 2000 (bounds 4 s..40 s).
        c.tick_time_ms = 2000;
        c.min_session_timeout_ms = 4000;
        c.max_session_timeout_ms = 40_000;
    })
    .await;
    let (_a, _b) = capture_situation(server.addr).await;
    let mut answers = HashMap::new();
    for word in [
        "ruok", "srvr", "stat", "conf", "cons", "envi", "mntr", "wchs", "wchc", "wchp", "dump",
        "isro", "dirs", "crst", "srst",
    ] {
        answers.insert(word, four_letter_word(server.addr, word).await);
    }

    // Fixed answers, byte for byte.
    for word in ["ruok", "isro", "crst", "srst"] {
        assert_eq!(answers[word], reference(word), "{word}");
    }
    // Same lines in the same order once masked.
    for word in ["srvr", "conf", "wchs", "dirs"] {
        assert_eq!(masked(&answers[word]), masked(&reference(word)), "{word}");
    }
    // Same kinds of lines, in whatever order and number (hash order in
    // ZooKeeper; bucket boundaries differ).
    for word in ["stat", "wchc", "wchp", "dump"] {
        assert_eq!(shapes(&answers[word]), shapes(&reference(word)), "{word}");
    }
    // cons: ZooKeeper also lists the connection carrying the word itself
    // (no session); Canopy lists client connections only.
    let zk_cons: String = reference("cons")
        .lines()
        .filter(|l| !l.contains("[0]("))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(shapes(&answers["cons"]), shapes(&zk_cons), "cons");
    assert!(
        answers["cons"].ends_with(")\n\n"),
        "cons ends with a blank line"
    );

    // envi: the same header, and its keys are ZooKeeper's (plus Canopy's own).
    let zk_envi: BTreeSet<String> = reference("envi")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    assert!(answers["envi"].starts_with("Environment:\n"));
    for line in answers["envi"].lines().skip(1) {
        let (key, _) = line.split_once('=').expect("key=value");
        assert!(
            zk_envi.contains(key) || key.starts_with("canopy.") || key == "data.dir",
            "envi key {key} is not ZooKeeper's"
        );
    }

    // mntr: every key is one ZooKeeper prints (Canopy adds zk_last_zxid), and
    // a value is a number exactly where ZooKeeper's is.
    let zk_mntr: HashMap<String, String> = reference("mntr")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let is_number = |v: &str| v.parse::<f64>().is_ok();
    for line in answers["mntr"].lines() {
        let (key, value) = line.split_once('\t').expect("key<TAB>value");
        if key == "zk_last_zxid" {
            continue;
        }
        let zk_value = zk_mntr
            .get(key)
            .unwrap_or_else(|| panic!("mntr key {key} is not ZooKeeper's"));
        assert_eq!(
            is_number(value),
            is_number(zk_value),
            "{key}: {value} vs {zk_value}"
        );
        if zk_value.contains('.') && is_number(zk_value) {
            assert!(
                value.contains('.'),
                "{key} is a double in ZooKeeper: {value}"
            );
        }
    }
}

#[tokio::test]
async fn a_word_not_allowed_gets_zookeepers_refusal() {
    let server = start_server_with(|c| c.four_letter_words = vec!["ruok".into()]).await;
    assert_eq!(
        four_letter_word(server.addr, "stat").await,
        reference("not-whitelisted")
    );
}
