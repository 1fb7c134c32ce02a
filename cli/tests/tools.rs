//! tree, find, grep, du, watch, export/import/diff, services, sessions and
//! four, run as the real `canopy` binary against a real server (and, for
//! copies, a second Canopy server).

mod common;

use canopy_client::url::DubboUrl;
use canopy_client::CreateOptions;
use common::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// /root{ a "alpha" { one "port=1" , two "{"k":"port=2"}" }, b "" }
fn small_tree() -> String {
    let root = unique("tools");
    cli(&["create", &root]).ok();
    cli(&["create", &format!("{root}/a"), "alpha"]).ok();
    cli(&["create", &format!("{root}/a/one"), "port=1\nhost=x"]).ok();
    cli(&["create", &format!("{root}/a/two"), r#"{"k":"port=2"}"#]).ok();
    cli(&["create", &format!("{root}/b")]).ok();
    root
}

#[test]
fn tree_draws_the_subtree_with_counts_and_sizes() {
    let root = small_tree();
    let name = root.trim_start_matches('/');
    assert_eq!(
        cli(&["tree", &root]).ok(),
        format!(
            "{root} (2 children, 0 B)\n\
             ├── a (2 children, 5 B)\n\
             │   ├── one (0 children, 13 B)\n\
             │   └── two (0 children, 14 B)\n\
             └── b (0 children, 0 B)\n"
        )
    );
    assert_eq!(
        cli(&["tree", &root, "--depth", "1"]).ok(),
        format!("{root} (2 children, 0 B)\n├── a (2 children, 5 B)\n└── b (0 children, 0 B)\n")
    );
    let json = cli(&["tree", &root, "--output", "json"]).json();
    assert_eq!(json["name"], name);
    assert_eq!(json["children"][0]["children"][1]["name"], "two");
    cli(&["deleteall", &root]).ok();
}

#[test]
fn find_grep_and_du_search_and_measure() {
    let root = small_tree();
    assert_eq!(
        cli(&["find", &root, "--name", "tw*"]).ok(),
        format!("{root}/a/two\n")
    );
    assert_eq!(
        cli(&["find", &root, "--data", "port=\\d"]).ok(),
        format!("{root}/a/one\n{root}/a/two\n")
    );
    assert_eq!(
        cli(&["find", &root, "--name", "{a,b}"]).ok(),
        format!("{root}/a\n{root}/b\n")
    );
    assert_eq!(cli(&["find", &root, "--ephemeral"]).ok(), "");
    assert_eq!(
        cli(&["grep", "PORT=1", &root, "-i"]).ok(),
        format!("{root}/a/one: port=1\n")
    );
    assert_eq!(
        cli(&["grep", "port", &root, "-l"]).ok(),
        format!("{root}/a/one\n{root}/a/two\n")
    );
    let json = cli(&["grep", "host", &root, "--output", "json"]).json();
    assert_eq!(json[0]["lines"][0], "host=x");
    assert_eq!(
        cli(&["du", &root]).ok(),
        format!(
            "{:>12} {:>10}  PATH\n{:>12} {:>10}  {root}/a\n{:>12} {:>10}  {root}/b\n{:>12} {:>10}  {root} (total)\n",
            "BYTES", "NODES", 32, 3, 0, 1, 32, 5
        )
    );
    let json = cli(&["du", &root, "--depth", "2", "--output", "json"]).json();
    assert_eq!(json["nodes"], 5);
    assert_eq!(json["subtrees"][0]["path"], format!("{root}/a"));
    assert_eq!(json["subtrees"][1]["path"], format!("{root}/a/two"));
    cli(&["find", &root, "--name", "[z"]).fails_with(
        "BadArguments: --name \"[z\": error parsing glob '[z': unclosed character class; missing ']'",
    );
    cli(&["deleteall", &root]).ok();
}

#[test]
fn watch_streams_events_with_timestamps() {
    let root = unique("stream");
    cli(&["create", &root]).ok();
    let watch = Background::start(&["watch", &root, "--recursive", "--count", "3"], "watching");
    cli(&["create", &format!("{root}/x"), "1"]).ok();
    cli(&["set", &format!("{root}/x"), "2"]).ok();
    cli(&["delete", &format!("{root}/x")]).ok();
    let lines: Vec<String> = (0..3).map(|_| watch.line()).collect();
    let events: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            // 2026-11-22T03:10:00.123Z
            assert!(
                chrono::DateTime::parse_from_rfc3339(parts[0]).is_ok(),
                "{l}"
            );
            (parts[1].to_string(), parts[2].to_string())
        })
        .collect();
    let x = format!("{root}/x");
    assert_eq!(
        events,
        [
            ("NodeCreated".to_string(), x.clone()),
            ("NodeDataChanged".to_string(), x.clone()),
            ("NodeDeleted".to_string(), x.clone()),
        ]
    );
    assert_eq!(watch.wait(), 0);

    // Without --recursive: the node itself and its children list.
    let watch = Background::start(
        &["watch", &root, "--count", "1", "--output", "json"],
        "watching",
    );
    cli(&["create", &format!("{root}/y")]).ok();
    let event: serde_json::Value = serde_json::from_str(&watch.line()).unwrap();
    assert_eq!(event["type"], "NodeChildrenChanged");
    assert_eq!(event["path"], root);
    assert_eq!(watch.wait(), 0);
    cli(&["deleteall", &root]).ok();
}

#[test]
fn export_import_and_diff_across_two_servers() {
    let rt = runtime();
    let client = rt.block_on(connect());
    let root = small_tree();
    // Binary data, a restrictive ACL and an ephemeral node held by a session.
    rt.block_on(async {
        client
            .create(
                &format!("{root}/b/bin"),
                &[0u8, 0xfe, 7],
                &CreateOptions::persistent(),
            )
            .await
            .unwrap();
        client
            .create(
                &format!("{root}/b/live"),
                b"me",
                &CreateOptions::ephemeral(),
            )
            .await
            .unwrap();
    });
    cli(&["setAcl", &format!("{root}/a/one"), "world:anyone:rw"]).ok();
    // A parent whose ACL refuses creating children: imported after them.
    cli(&["setAcl", &format!("{root}/b"), "world:anyone:rwd"]).ok();

    let export = cli(&["export", &root]);
    let file: serde_json::Value = export.json();
    assert_eq!(export.stderr, format!("exported 7 nodes from {root}\n"));
    assert_eq!(file["format"], "canopy-export");
    assert_eq!(file["root"], root);
    let nodes = file["nodes"].as_array().unwrap();
    let by_path = |p: &str| nodes.iter().find(|n| n["path"] == p).unwrap().clone();
    assert_eq!(nodes[0]["path"], "/");
    assert_eq!(
        by_path("/a/one")["acl"],
        serde_json::json!(["world:anyone:rw"])
    );
    assert_eq!(by_path("/b/bin")["encoding"], "base64");
    assert_eq!(by_path("/b/bin")["data"], "AP4H");
    assert_eq!(by_path("/b/live")["kind"], "ephemeral");
    assert_eq!(by_path("/a/two")["data"], r#"{"k":"port=2"}"#);

    // Into the second server, under another path.
    let other = second_server().connect_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    std::fs::write(&path, &export.stdout).unwrap();
    let file_arg = path.to_str().unwrap();
    let copy = unique("copy");
    assert_eq!(
        cli_at(&other, &["import", file_arg, "--to", &copy]).ok(),
        format!("Imported into {copy}: 6 created, 0 updated, 1 ephemeral skipped\n")
    );
    assert_eq!(
        cli_at(&other, &["get", &format!("{copy}/a/two")]).ok(),
        "{\n  \"k\": \"port=2\"\n}\n"
    );
    assert_eq!(
        cli_at(
            &other,
            &["get", &format!("{copy}/b/bin"), "--output", "json"]
        )
        .json()["data"],
        "AP4H"
    );
    assert_eq!(
        cli_at(&other, &["getAcl", &format!("{copy}/a/one")]).ok(),
        "'world,'anyone\n: rw\n"
    );
    assert_eq!(
        cli_at(&other, &["getAcl", &format!("{copy}/b")]).ok(),
        "'world,'anyone\n: drw\n"
    );

    // The ephemeral is the only difference; without it the trees are equal.
    let diff = cli(&["diff", &root, &copy, "--server2", &other]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert_eq!(
        diff.stdout,
        format!(
            "--- {} {root}\n+++ {other} {copy}\n- /b/live\n1 differences\n",
            server().connect_string()
        )
    );
    rt.block_on(client.close());
    let same = cli(&["diff", &root, &copy, "--server2", &other]);
    assert_eq!(same.code, 0, "{same:?}");
    assert!(
        same.stdout.ends_with("no differences (6 nodes)\n"),
        "{same:?}"
    );

    // A change on one side shows as data; a second import needs --overwrite.
    cli_at(&other, &["set", &format!("{copy}/a"), "changed"]).ok();
    let diff = cli(&[
        "diff",
        &root,
        &copy,
        "--server2",
        &other,
        "--output",
        "json",
    ]);
    assert_eq!(diff.code, 1);
    let json: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    assert_eq!(
        json["differences"],
        serde_json::json!([{"path": "/a", "differs": ["data"]}])
    );
    cli_at(&other, &["import", file_arg, "--to", &copy]).fails_with(&format!(
        "NodeExists: {copy} (and 5 more); use --overwrite to replace"
    ));
    assert_eq!(
        cli_at(&other, &["import", file_arg, "--to", &copy, "--overwrite"]).ok(),
        format!("Imported into {copy}: 0 created, 6 updated, 1 ephemeral skipped\n")
    );
    assert_eq!(
        cli_at(&other, &["get", &format!("{copy}/a")]).ok(),
        "alpha\n"
    );
    // On one server, and from stdin with --ephemerals persistent.
    let local = unique("local");
    let run = cli_with_stdin(
        &server().connect_string(),
        &["import", "-", "--to", &local, "--ephemerals", "persistent"],
        &export.stdout,
    );
    assert_eq!(
        run.ok(),
        format!("Imported into {local}: 7 created, 0 updated, 0 ephemeral skipped\n")
    );
    let diff = cli(&["diff", &root, &local]);
    assert_eq!(diff.code, 1);
    assert!(diff.stdout.contains("\n+ /b/live\n"), "{diff:?}");
    cli(&["diff", &root, "/nothing-here"])
        .code
        .eq(&2)
        .then_some(())
        .expect("a missing path is an error (2)");
    for (server, path) in [
        (server().connect_string(), root),
        (server().connect_string(), local),
        (other, copy),
    ] {
        cli_at(&server, &["deleteall", &path]).ok();
    }
}

#[test]
fn services_read_the_dubbo_and_application_layouts() {
    let root = unique("dubbo");
    let iface = "com.acme.OrderService";
    let now = chrono::Utc::now().timestamp_millis();
    let provider = |host: &str, weight: u32, app: &str| {
        DubboUrl::parse(&format!(
            "dubbo://{host}:20880/{iface}?application={app}&interface={iface}&version=2.1&group=blue&weight={weight}&timestamp={now}&methods=place,cancel"
        ))
        .unwrap()
    };
    let consumer = DubboUrl::parse(&format!(
        "consumer://10.9.9.9/{iface}?application=web&interface={iface}&version=2.1&category=consumers&timestamp={now}"
    ))
    .unwrap();
    cli(&["create", &root]).ok();
    cli(&["create", &format!("{root}/{iface}")]).ok();
    cli(&["create", &format!("{root}/{iface}/providers")]).ok();
    cli(&["create", &format!("{root}/{iface}/consumers")]).ok();
    cli(&["create", &format!("{root}/com.acme.Other")]).ok();
    for url in [
        provider("10.0.0.1", 300, "orders"),
        provider("10.0.0.2", 100, "orders-canary"),
    ] {
        cli(&[
            "create",
            &format!("{root}/{iface}/providers/{}", url.to_node_name()),
        ])
        .ok();
    }
    cli(&[
        "create",
        &format!("{root}/{iface}/consumers/{}", consumer.to_node_name()),
    ])
    .ok();

    let out = cli(&["services", "--root", &root, "--interface", "*Order*"])
        .ok()
        .to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], iface, "{out}");
    assert_eq!(lines[1], "  providers (2)");
    let cols = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cols(lines[2]),
        [
            "ADDRESS",
            "PROTOCOL",
            "VERSION",
            "GROUP",
            "WEIGHT",
            "APPLICATION",
            "AGE"
        ]
    );
    let row = cols(lines[3]);
    assert_eq!(
        row[..6],
        ["10.0.0.1:20880", "dubbo", "2.1", "blue", "300", "orders"]
    );
    assert!(row[6].ends_with('s'), "an age like 3s: {out}");
    assert_eq!(
        cols(lines[4])[..6],
        [
            "10.0.0.2:20880",
            "dubbo",
            "2.1",
            "blue",
            "100",
            "orders-canary"
        ]
    );
    assert_eq!(lines[5], "  consumers (1)");
    assert_eq!(cols(lines[7])[..4], ["10.9.9.9", "2.1", "-", "web"]);
    assert!(!out.contains("com.acme.Other"), "{out}");

    let filtered = cli(&[
        "services",
        "--root",
        &root,
        "--app",
        "orders-canary",
        "--output",
        "json",
    ])
    .json();
    let list = filtered["interfaces"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["providers"].as_array().unwrap().len(), 1);
    assert_eq!(list[0]["providers"][0]["address"], "10.0.0.2:20880");
    assert_eq!(list[0]["consumers"].as_array().unwrap().len(), 0);

    let show = cli(&["services", "--root", &root, "show", iface])
        .ok()
        .to_string();
    assert!(show.contains("\n    10.0.0.1:20880\n      url: dubbo://10.0.0.1:20880/com.acme.OrderService?application=orders&"), "{show}");
    assert!(show.contains("\n      methods = place,cancel\n"), "{show}");
    assert!(
        show.contains("\n  consumers (1)\n    10.9.9.9:0\n"),
        "{show}"
    );
    cli(&["services", "--root", &root, "show", "com.acme.Missing"])
        .fails_with(&format!("NoNode: {root}/com.acme.Missing"));
    cli(&["deleteall", &root]).ok();
}

#[test]
fn application_instances_under_services() {
    // /services is a fixed root, so this test owns one app name there.
    let app = unique("shop").trim_start_matches('/').to_string();
    let instance = canopy_client::registry::app::Instance::new(&app, "10.1.1.1", 20880)
        .with_metadata("dubbo.metadata.revision", "r42");
    let rt = runtime();
    let client = rt.block_on(connect());
    rt.block_on(async {
        let _ = client
            .create("/services", b"", &CreateOptions::persistent())
            .await;
        client
            .create(
                &format!("/services/{app}"),
                b"",
                &CreateOptions::persistent(),
            )
            .await
            .unwrap();
        client
            .create(
                &format!("/services/{app}/10.1.1.1:20880"),
                &instance.to_json(),
                &CreateOptions::ephemeral(),
            )
            .await
            .unwrap();
    });
    let out = cli(&["services", "--app", &app]).ok().to_string();
    assert!(
        out.contains(&format!(
            "application {app} (1 instances)\n    10.1.1.1:20880"
        )),
        "{out}"
    );
    assert!(out.contains("revision r42"), "{out}");
    rt.block_on(client.close());
    cli(&["deleteall", &format!("/services/{app}")]).ok();
}

#[test]
fn sessions_list_ephemerals_and_four_sends_a_word() {
    assert_eq!(cli(&["four", "ruok"]).ok(), "imok\n");
    assert!(cli(&["four", "srvr"]).ok().contains("Mode: standalone"));
    cli(&["four", "toolong"]).fails_with("BadArguments: \"toolong\" is not a four-letter word");

    let rt = runtime();
    let client = rt.block_on(connect());
    let path = unique("owned");
    rt.block_on(client.create(&path, b"", &CreateOptions::ephemeral()))
        .unwrap();
    let id = format!("0x{:x}", client.session_id());
    let out = cli(&["sessions"]).ok().to_string();
    let line = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("session {id} not listed: {out}"));
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert!(line.trim_end().ends_with(" 1"), "one ephemeral: {line}");
    assert!(out.contains(&format!("{line}\n    {path}\n")), "{out}");
    let json = cli(&["sessions", "--output", "json"]).json();
    let me = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(me["ephemerals"], serde_json::json!([path]));
    rt.block_on(client.close());
}
