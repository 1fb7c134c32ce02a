//! The zkCli.sh-compatible commands, run as the real `canopy` binary against
//! a real server (Canopy, or ZooKeeper 3.8 with CLIENT_TEST_TARGET=zookeeper):
//! output text, exit status and the tree they leave behind.

mod common;

use canopy_client::CreateOptions;
use common::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn create_ls_get_set_delete_like_zkcli() {
    let root = unique("crud");
    assert_eq!(cli(&["create", &root]).ok(), format!("Created {root}\n"));
    let a = format!("{root}/a");
    let b = format!("{root}/b");
    assert_eq!(cli(&["create", &a, "hello"]).ok(), format!("Created {a}\n"));
    cli(&["create", &b, "x"]).ok();
    assert_eq!(cli(&["ls", &root]).ok(), "[a, b]\n");
    assert_eq!(cli(&["get", &a]).ok(), "hello\n");

    let with_stat = cli(&["get", "-s", &a]).ok().to_string();
    let lines: Vec<&str> = with_stat.lines().collect();
    assert_eq!(lines[0], "hello");
    let keys: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "cZxid",
            "ctime",
            "mZxid",
            "mtime",
            "pZxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner",
            "dataLength",
            "numChildren"
        ]
    );
    assert!(with_stat.contains("dataVersion = 0\n"), "{with_stat}");
    assert!(with_stat.contains("dataLength = 5\n"), "{with_stat}");
    assert!(with_stat.contains("ephemeralOwner = 0x0\n"), "{with_stat}");

    // set with and without a version; a stale version is one clear line.
    cli(&["set", &a, "v1", "-v", "0"]).ok();
    cli(&["set", &a, "v2", "-v", "0"]).fails_with(&format!("BadVersion: {a}"));
    let stat = cli(&["set", "-s", &a, "v2"]).ok().to_string();
    assert!(stat.contains("dataVersion = 2\n"), "{stat}");
    assert_eq!(cli(&["get", &a]).ok(), "v2\n");

    let stat = cli(&["stat", &root]).ok().to_string();
    assert!(stat.contains("numChildren = 2\n"), "{stat}");

    cli(&["create", &a]).fails_with(&format!("NodeExists: {a}"));
    cli(&["delete", &root]).fails_with(&format!("NotEmpty: {root}"));
    cli(&["delete", &a, "-v", "7"]).fails_with(&format!("BadVersion: {a}"));
    cli(&["delete", &a, "-v", "2"]).ok();
    cli(&["get", &a]).fails_with(&format!("NoNode: {a}"));
    cli(&["stat", &a]).fails_with(&format!("NoNode: {a}"));
    cli(&["ls", &a]).fails_with(&format!("NoNode: {a}"));

    cli(&["create", &format!("{b}/c")]).ok();
    assert_eq!(
        cli(&["ls", "-R", &root]).ok(),
        format!("{root}\n{b}\n{b}/c\n")
    );
    assert_eq!(cli(&["getAllChildrenNumber", &root]).ok(), "2\n");
    cli(&["deleteall", &root]).ok();
    cli(&["ls", &root]).fails_with(&format!("NoNode: {root}"));
}

#[test]
fn create_modes_sequential_container_ttl_ephemeral() {
    let root = unique("modes");
    cli(&["create", &root]).ok();
    let seq = format!("{root}/job-");
    assert_eq!(
        cli(&["create", "-s", &seq, "d"]).ok(),
        format!("Created {seq}0000000000\n")
    );
    assert_eq!(
        cli(&["create", "-s", &seq]).ok(),
        format!("Created {seq}0000000001\n")
    );
    cli(&["create", "-c", &format!("{root}/box")]).ok();
    cli(&["create", "-t", "60000", &format!("{root}/ttl")]).ok();
    // ZooKeeper 3.8 (and Canopy) report ephemeralOwner 0 for containers and
    // TTL nodes, so a client cannot tell them from persistent ones.
    for name in ["box", "ttl"] {
        let stat = cli(&["stat", &format!("{root}/{name}"), "--output", "json"]).json();
        assert_eq!(stat["stat"]["kind"], "persistent");
    }
    // An ephemeral node lives as long as the command's session: gone after.
    let eph = format!("{root}/eph");
    let run = cli(&["create", "-e", &eph]);
    assert_eq!(run.ok(), format!("Created {eph}\n"));
    assert_eq!(
        cli(&["ls", &root]).ok(),
        "[box, job-0000000000, job-0000000001, ttl]\n"
    );
    cli(&["create", "-e", "-c", &format!("{root}/bad")])
        .fails_with("BadArguments: -c and -t go with no other mode flag, -e not with -t");
    cli(&["create", &format!("{root}/no/parent")]).fails_with(&format!("NoNode: {root}/no/parent"));
    cli(&["deleteall", &root]).ok();
}

#[test]
fn acls_and_auth() {
    let root = unique("acl");
    cli(&["create", &root, "x", "world:anyone:cdrwa"]).ok();
    assert_eq!(cli(&["getAcl", &root]).ok(), "'world,'anyone\n: cdrwa\n");
    let locked = format!("{root}/locked");
    cli(&["create", &locked, "secret", "world:anyone:r"]).ok();
    assert_eq!(cli(&["getAcl", &locked]).ok(), "'world,'anyone\n: r\n");
    cli(&["set", &locked, "y"]).fails_with(&format!("NoAuth: {locked}"));
    cli(&["create", &format!("{locked}/c")]).fails_with(&format!("NoAuth: {locked}/c"));

    // A digest identity: `auth` ACLs become digest ACLs of the session's user.
    let mine = format!("{root}/mine");
    let auth = ["--auth", "digest:bob:secret"];
    cli(&[&["create", &mine, "m", "auth::cdrwa"][..], &auth[..]].concat()).ok();
    // Reading an ACL needs READ or ADMIN (ZOOKEEPER-1392).
    cli(&["getAcl", &mine]).fails_with(&format!("NoAuth: {mine}"));
    let acl = cli(&[&["getAcl", &mine][..], &auth[..]].concat())
        .ok()
        .to_string();
    assert!(acl.starts_with("'digest,'bob:"), "{acl}");
    assert!(acl.ends_with("\n: cdrwa\n"), "{acl}");
    cli(&["get", &mine]).fails_with(&format!("NoAuth: {mine}"));
    assert_eq!(cli(&[&["get", &mine][..], &auth[..]].concat()).ok(), "m\n");
    let who = cli(&[&["whoami"][..], &auth[..]].concat()).ok().to_string();
    assert!(who.starts_with("Auth scheme: User\n"), "{who}");
    assert!(who.contains("digest: bob\n"), "{who}");

    // setAcl -R reaches every node under the path.
    let tree = format!("{root}/tree");
    cli(&["create", &tree]).ok();
    cli(&["create", &format!("{tree}/leaf")]).ok();
    cli(&["setAcl", "-R", &tree, "world:anyone:cdra"]).ok();
    assert_eq!(
        cli(&["getAcl", &format!("{tree}/leaf")]).ok(),
        "'world,'anyone\n: cdra\n"
    );
    let stat = cli(&["setAcl", "-s", &tree, "world:anyone:cdrwa"])
        .ok()
        .to_string();
    assert!(stat.contains("aclVersion = 2\n"), "{stat}");
    cli(&["setAcl", &tree, "world:anyone:xyz"]).fails_with(
        "BadArguments: invalid ACL \"world:anyone:xyz\": expected scheme:id:perms, e.g. world:anyone:cdrwa",
    );
    let json = cli(&["getAcl", &tree, "--output", "json"]).json();
    assert_eq!(json["acl"][0]["perms"], "cdrwa");
    cli(&[&["deleteall", &root][..], &auth[..]].concat()).ok();
}

#[test]
fn data_shows_as_text_json_or_hex_and_as_json_for_scripts() {
    let rt = runtime();
    let client = rt.block_on(connect());
    let root = unique("data");
    rt.block_on(async {
        client
            .create(&root, b"", &CreateOptions::persistent())
            .await
            .unwrap();
        client
            .create(
                &format!("{root}/json"),
                br#"{"port":20880,"tags":["a"]}"#,
                &CreateOptions::persistent(),
            )
            .await
            .unwrap();
        client
            .create(
                &format!("{root}/bin"),
                &[0u8, 1, 2, 0xff, b'A'],
                &CreateOptions::persistent(),
            )
            .await
            .unwrap();
    });
    assert_eq!(
        cli(&["get", &format!("{root}/json")]).ok(),
        "{\n  \"port\": 20880,\n  \"tags\": [\n    \"a\"\n  ]\n}\n"
    );
    assert_eq!(
        cli(&["get", &format!("{root}/bin")]).ok(),
        format!("00000000  {:<47}  ....A\n", "00 01 02 ff 41")
    );
    let json = cli(&["get", &format!("{root}/bin"), "--output", "json", "-s"]).json();
    assert_eq!(json["encoding"], "base64");
    assert_eq!(json["data"], "AAEC/0E=");
    assert_eq!(json["stat"]["dataLength"], 5);
    let json = cli(&["get", &format!("{root}/json"), "--output", "json"]).json();
    assert_eq!(json["data"], r#"{"port":20880,"tags":["a"]}"#);
    let json = cli(&["ls", &root, "--output", "json"]).json();
    assert_eq!(json["children"], serde_json::json!(["bin", "json"]));
    let json = cli(&["stat", &root, "--output", "json"]).json();
    assert_eq!(json["stat"]["numChildren"], 2);
    assert_eq!(json["stat"]["kind"], "persistent");
    let json = cli(&["getAllChildrenNumber", &root, "--output", "json"]).json();
    assert_eq!(json["count"], 2);
    cli(&["deleteall", &root]).ok();
    rt.block_on(client.close());
}

#[test]
fn sync_ephemerals_config_and_errors() {
    let root = unique("misc");
    cli(&["create", &root]).ok();
    assert_eq!(cli(&["sync", &root]).ok(), "Sync is OK\n");
    assert_eq!(cli(&["getEphemerals", &root]).ok(), "[]\n");
    cli(&["config"]).ok();
    cli(&["removewatches", &root]).fails_with(&format!("NoWatcher: {root}"));
    cli(&["get", "no-slash"]).fails_with("BadArguments: path \"no-slash\": must start with /");
    // Nothing listens on this port: a one-line connection error.
    let dead = format!("127.0.0.1:{}", free_port());
    let run = cli_at(&dead, &["ls", "/", "--connect-timeout", "0.5"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .starts_with(&format!("ConnectionLoss: cannot connect to {dead}")),
        "{run:?}"
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    cli(&["delete", &root]).ok();
}

#[test]
fn watches_of_get_ls_and_add_watch_print_their_events() {
    let root = unique("watch");
    cli(&["create", &root, "0"]).ok();
    let get = Background::start(&["get", "-w", &root], "waiting for the watch");
    assert_eq!(get.line(), "0");
    cli(&["set", &root, "1"]).ok();
    assert_eq!(get.line(), "WATCHER::");
    assert_eq!(get.line(), "");
    assert_eq!(
        get.line(),
        format!("WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}")
    );
    assert_eq!(get.wait(), 0);

    let ls = Background::start(&["ls", "-w", &root], "waiting for the watch");
    assert_eq!(ls.line(), "[]");
    cli(&["create", &format!("{root}/kid")]).ok();
    ls.line();
    ls.line();
    assert_eq!(
        ls.line(),
        format!("WatchedEvent state:SyncConnected type:NodeChildrenChanged path:{root}")
    );
    assert_eq!(ls.wait(), 0);

    let add = Background::start(&["addWatch", &root, "--count", "2"], "watching");
    cli(&["set", &format!("{root}/kid"), "x"]).ok();
    cli(&["delete", &format!("{root}/kid")]).ok();
    assert_eq!(
        add.line(),
        format!("WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}/kid")
    );
    assert_eq!(
        add.line(),
        format!("WatchedEvent state:SyncConnected type:NodeDeleted path:{root}/kid")
    );
    assert_eq!(add.wait(), 0);
    cli(&["delete", &root]).ok();
}
