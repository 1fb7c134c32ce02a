//! Every operation of the client against a real server, with its error codes,
//! plus watches, chroot and pipelining. Run against Canopy (default) or
//! ZooKeeper 3.8 with `CLIENT_TEST_TARGET=zookeeper`.

mod common;

use canopy_client::protocol::ErrorCode;
use canopy_client::{
    perms, Acl, AddWatchMode, CreateMode, CreateOptions, Error, EventType, Id, Op, OpOutcome,
    ReadOp, ReadOutcome, WatcherType,
};
use common::{connect, connect_to, server, unique, within, LONG_SESSION};
use futures::StreamExt;

fn code(e: Error) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test]
async fn create_in_every_mode_returns_the_path_and_stat() {
    let client = connect().await;
    let root = unique("modes");
    let (path, stat) = client
        .create(&root, b"root", &CreateOptions::persistent())
        .await
        .unwrap();
    assert_eq!(path, root);
    assert_eq!(
        (stat.version, stat.data_length, stat.num_children),
        (0, 4, 0)
    );
    assert_ne!(stat.czxid, 0);

    let (path, stat) = client
        .create(&format!("{root}/eph"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    assert_eq!(path, format!("{root}/eph"));
    assert_eq!(stat.ephemeral_owner, client.session_id());

    for mode in [
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
    ] {
        let (path, _) = client
            .create(&format!("{root}/seq-"), b"", &CreateOptions::new(mode))
            .await
            .unwrap();
        let suffix = path.strip_prefix(&format!("{root}/seq-")).unwrap();
        assert_eq!(suffix.len(), 10, "{path}");
        assert!(suffix.chars().all(|c| c.is_ascii_digit()), "{path}");
    }

    let (_, stat) = client
        .create(
            &format!("{root}/container"),
            b"c",
            &CreateOptions::container(),
        )
        .await
        .unwrap();
    assert_eq!(stat.data_length, 1);

    let (path, stat) = client
        .create(&format!("{root}/ttl"), b"t", &CreateOptions::ttl(60_000))
        .await
        .unwrap();
    assert_eq!(path, format!("{root}/ttl"));
    assert_eq!(stat.data_length, 1);
    let (path, _) = client
        .create(
            &format!("{root}/ttlseq-"),
            b"",
            &CreateOptions::new(CreateMode::PersistentSequentialWithTtl).with_ttl(60_000),
        )
        .await
        .unwrap();
    assert!(path.starts_with(&format!("{root}/ttlseq-")));

    let (children, stat) = client.get_children(&root).await.unwrap();
    assert_eq!(children.len(), 6);
    assert_eq!(stat.num_children, 6);
}

#[tokio::test]
async fn create_errors_are_typed() {
    let client = connect().await;
    let root = unique("create-errors");
    client
        .create(&root, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let again = client
        .create(&root, b"", &CreateOptions::persistent())
        .await;
    assert_eq!(again.unwrap_err(), Error::Server(ErrorCode::NodeExists));

    let orphan = client
        .create(
            &format!("{root}/no/parent"),
            b"",
            &CreateOptions::persistent(),
        )
        .await;
    assert_eq!(code(orphan.unwrap_err()), Some(ErrorCode::NoNode));

    let eph = format!("{root}/eph");
    client
        .create(&eph, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let under_eph = client
        .create(&format!("{eph}/child"), b"", &CreateOptions::persistent())
        .await;
    assert_eq!(
        code(under_eph.unwrap_err()),
        Some(ErrorCode::NoChildrenForEphemerals)
    );

    let bad_acl = vec![Acl {
        perms: perms::ALL,
        id: Id::new("ip", "not-an-ip"),
    }];
    let invalid = client
        .create(
            &format!("{root}/badacl"),
            b"",
            &CreateOptions::persistent().with_acl(bad_acl),
        )
        .await;
    assert_eq!(code(invalid.unwrap_err()), Some(ErrorCode::InvalidAcl));

    // Refused before anything is sent.
    for bad in ["relative", "/trailing/", "/a//b"] {
        let err = client
            .create(bad, b"", &CreateOptions::persistent())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadArguments(_)), "{bad}: {err:?}");
    }
    let no_ttl = client
        .create(
            &format!("{root}/x"),
            b"",
            &CreateOptions::new(CreateMode::PersistentWithTtl),
        )
        .await;
    assert!(matches!(no_ttl, Err(Error::BadArguments(_))));
}

#[tokio::test]
async fn read_write_delete_and_versions() {
    let client = connect().await;
    let path = unique("crud");
    assert_eq!(client.exists(&path).await.unwrap(), None);
    assert_eq!(
        client.get_data(&path).await.unwrap_err(),
        Error::Server(ErrorCode::NoNode)
    );
    client
        .create(&path, b"v0", &CreateOptions::persistent())
        .await
        .unwrap();
    let (data, stat) = client.get_data(&path).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));

    let stat = client.set_data(&path, b"v1", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    let stale = client.set_data(&path, b"v2", Some(0)).await;
    assert_eq!(stale.unwrap_err(), Error::Server(ErrorCode::BadVersion));
    let stat = client.set_data(&path, b"v2", None).await.unwrap();
    assert_eq!(stat.version, 2);
    assert_eq!(client.exists(&path).await.unwrap().unwrap().version, 2);

    client.check(&path, 2).await.unwrap();
    assert_eq!(
        code(client.check(&path, 1).await.unwrap_err()),
        Some(ErrorCode::BadVersion)
    );

    client
        .create(&format!("{path}/child"), b"", &CreateOptions::persistent())
        .await
        .unwrap();
    assert_eq!(
        client.delete(&path, None).await.unwrap_err(),
        Error::Server(ErrorCode::NotEmpty)
    );
    client.delete(&format!("{path}/child"), None).await.unwrap();
    assert_eq!(
        client.delete(&path, Some(7)).await.unwrap_err(),
        Error::Server(ErrorCode::BadVersion)
    );
    client.delete(&path, Some(2)).await.unwrap();
    assert_eq!(
        client.delete(&path, None).await.unwrap_err(),
        Error::Server(ErrorCode::NoNode)
    );
    client.sync(&unique("sync-anything")).await.ok();
    client.sync("/").await.unwrap();
}

#[tokio::test]
async fn acls_auth_and_who_am_i() {
    let owner = connect().await;
    let stranger = connect().await;
    let path = unique("acl");
    owner
        .create(&path, b"secret", &CreateOptions::persistent())
        .await
        .unwrap();
    let (acl, stat) = owner.get_acl(&path).await.unwrap();
    assert_eq!(acl, Acl::open_unsafe());
    assert_eq!(stat.aversion, 0);

    // `auth` ACLs need an authenticated identity.
    let auth_acl = vec![Acl {
        perms: perms::ALL,
        id: Id::new("auth", ""),
    }];
    assert_eq!(
        owner.set_acl(&path, &auth_acl, None).await.unwrap_err(),
        Error::Server(ErrorCode::InvalidAcl)
    );
    owner.add_auth("digest", b"alice:wonderland").await.unwrap();
    let who = owner.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|c| c.auth_scheme == "digest" && c.user == "alice"),
        "{who:?}"
    );
    let stat = owner.set_acl(&path, &auth_acl, Some(0)).await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(
        owner.set_acl(&path, &auth_acl, Some(0)).await.unwrap_err(),
        Error::Server(ErrorCode::BadVersion)
    );
    let (acl, _) = owner.get_acl(&path).await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].id.scheme, "digest");
    assert!(acl[0].id.id.starts_with("alice:"));

    assert_eq!(owner.get_data(&path).await.unwrap().0, b"secret");
    assert_eq!(
        stranger.get_data(&path).await.unwrap_err(),
        Error::Server(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger.set_data(&path, b"x", None).await.unwrap_err(),
        Error::Server(ErrorCode::NoAuth)
    );
}

#[tokio::test]
async fn multi_is_atomic_and_names_the_failing_op() {
    let client = connect().await;
    let root = unique("multi");
    let outcomes = client
        .multi(&[
            Op::create(&root, b"r".to_vec(), CreateOptions::persistent()),
            Op::create(
                format!("{root}/a"),
                b"a".to_vec(),
                CreateOptions::persistent(),
            ),
            Op::create(
                format!("{root}/c"),
                b"".to_vec(),
                CreateOptions::container(),
            ),
            Op::set_data(&root, b"r2".to_vec(), Some(0)),
            Op::check(format!("{root}/a"), 0),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 5);
    match &outcomes[0] {
        OpOutcome::Create { path, stat } => {
            assert_eq!(path, &root);
            // ZooKeeper 3.8 sends no Stat for a plain create inside a multi.
            if let Some(stat) = stat {
                assert_ne!(stat.czxid, 0);
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(outcomes[3], OpOutcome::SetData { ref stat } if stat.version == 1));
    assert_eq!(outcomes[4], OpOutcome::Check);

    let failed = client
        .multi(&[
            Op::create(
                format!("{root}/b"),
                b"".to_vec(),
                CreateOptions::persistent(),
            ),
            Op::delete(format!("{root}/missing"), None),
            Op::set_data(&root, b"never".to_vec(), None),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        failed,
        Error::Multi {
            index: 1,
            code: ErrorCode::NoNode
        }
    );
    assert_eq!(client.exists(&format!("{root}/b")).await.unwrap(), None);
    assert_eq!(client.get_data(&root).await.unwrap().0, b"r2");

    let reads = client
        .multi_read(&[
            ReadOp::GetData(root.clone()),
            ReadOp::GetChildren(format!("{root}/missing")),
            ReadOp::GetChildren(root.clone()),
        ])
        .await
        .unwrap();
    assert!(matches!(&reads[0], ReadOutcome::Data { data, .. } if data == b"r2"));
    assert_eq!(
        reads[1],
        ReadOutcome::Error(Error::Server(ErrorCode::NoNode))
    );
    match &reads[2] {
        ReadOutcome::Children(children) => {
            let mut children = children.clone();
            children.sort();
            assert_eq!(children, vec!["a".to_string(), "c".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ephemerals_and_children_counts() {
    let client = connect().await;
    let other = connect().await;
    let root = unique("counts");
    client
        .create(&root, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    for (path, options) in [
        ("a", CreateOptions::persistent()),
        ("a/b", CreateOptions::ephemeral()),
        ("c", CreateOptions::ephemeral()),
    ] {
        client
            .create(&format!("{root}/{path}"), b"", &options)
            .await
            .unwrap();
    }
    other
        .create(&format!("{root}/theirs"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    assert_eq!(client.get_all_children_number(&root).await.unwrap(), 4);
    let mut mine = client.get_ephemerals(&root).await.unwrap();
    mine.sort();
    assert_eq!(mine, vec![format!("{root}/a/b"), format!("{root}/c")]);
    assert_eq!(
        code(
            client
                .get_all_children_number(&format!("{root}/none"))
                .await
                .unwrap_err()
        ),
        Some(ErrorCode::NoNode)
    );
}

#[tokio::test]
async fn oneshot_watches_fire_once_with_the_right_event() {
    let client = connect().await;
    let writer = connect().await;
    let path = unique("oneshot");

    let (stat, created) = client.exists_and_watch(&path).await.unwrap();
    assert_eq!(stat, None);
    writer
        .create(&path, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let event = within("NodeCreated", created).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeCreated, path.as_str())
    );

    let (_, _, changed) = client.get_data_and_watch(&path).await.unwrap();
    let (_, _, children) = client.get_children_and_watch(&path).await.unwrap();
    let (_, exists_changed) = client.exists_and_watch(&path).await.unwrap();
    writer.set_data(&path, b"x", None).await.unwrap();
    assert_eq!(
        within("data change", changed).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        within("exists change", exists_changed).await.event_type,
        EventType::NodeDataChanged
    );
    writer
        .create(&format!("{path}/kid"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    assert_eq!(
        within("child change", children).await.event_type,
        EventType::NodeChildrenChanged
    );

    let (_, _, deleted) = client.get_data_and_watch(&path).await.unwrap();
    writer.delete(&format!("{path}/kid"), None).await.unwrap();
    writer.delete(&path, None).await.unwrap();
    assert_eq!(
        within("deletion", deleted).await.event_type,
        EventType::NodeDeleted
    );

    // A failed read leaves no watch behind.
    assert!(client.get_data_and_watch(&path).await.is_err());
}

#[tokio::test]
async fn persistent_and_recursive_watches_keep_firing() {
    let client = connect().await;
    // ZooKeeper keeps one watch mode per (session, path), so the recursive
    // watch on the same path needs its own session.
    let other = connect().await;
    let writer = connect().await;
    let root = unique("persistent");
    writer
        .create(&root, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let mut node = client
        .add_watch(&root, AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut tree = other
        .add_watch(&root, AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    writer.set_data(&root, b"1", None).await.unwrap();
    writer.set_data(&root, b"2", None).await.unwrap();
    writer
        .create(&format!("{root}/a"), b"", &CreateOptions::persistent())
        .await
        .unwrap();
    writer
        .create(&format!("{root}/a/b"), b"", &CreateOptions::persistent())
        .await
        .unwrap();
    writer
        .set_data(&format!("{root}/a/b"), b"!", None)
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = within("persistent event", node.next()).await.unwrap();
        seen.push((event.event_type, event.path));
    }
    assert_eq!(
        seen,
        vec![
            (EventType::NodeDataChanged, root.clone()),
            (EventType::NodeDataChanged, root.clone()),
            (EventType::NodeChildrenChanged, root.clone()),
        ]
    );
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = within("recursive event", tree.next()).await.unwrap();
        seen.push((event.event_type, event.path));
    }
    assert_eq!(
        seen,
        vec![
            (EventType::NodeDataChanged, root.clone()),
            (EventType::NodeDataChanged, root.clone()),
            (EventType::NodeCreated, format!("{root}/a")),
            (EventType::NodeCreated, format!("{root}/a/b")),
            (EventType::NodeDataChanged, format!("{root}/a/b")),
        ]
    );

    // ZooKeeper 3.8 only knows Children, Data and Any here.
    client
        .remove_watches(&root, WatcherType::Any)
        .await
        .unwrap();
    let removed = within("removal", node.next()).await.unwrap();
    assert_eq!(removed.event_type, EventType::PersistentWatchRemoved);
    assert!(within("stream end", node.next()).await.is_none());
    writer.set_data(&root, b"3", None).await.unwrap();
    let event = within("recursive still armed", tree.next()).await.unwrap();
    assert_eq!(event.event_type, EventType::NodeDataChanged);
}

#[tokio::test]
async fn remove_watches_reports_no_watcher() {
    let client = connect().await;
    let path = unique("remove");
    client
        .create(&path, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let (_, _, watch) = client.get_data_and_watch(&path).await.unwrap();
    client
        .remove_watches(&path, WatcherType::Data)
        .await
        .unwrap();
    assert_eq!(
        within("removed", watch).await.event_type,
        EventType::DataWatchRemoved
    );
    assert_eq!(
        client
            .remove_watches(&path, WatcherType::Data)
            .await
            .unwrap_err(),
        Error::Server(ErrorCode::NoWatcher)
    );
}

#[tokio::test]
async fn chroot_maps_every_path() {
    let root_client = connect().await;
    let chroot = unique("chroot");
    root_client
        .create(&chroot, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let client = connect_to(
        &format!("{}{chroot}", server().connect_string()),
        LONG_SESSION,
    )
    .await;

    let (path, _) = client
        .create("/app", b"in", &CreateOptions::persistent())
        .await
        .unwrap();
    assert_eq!(path, "/app");
    assert_eq!(
        root_client
            .get_data(&format!("{chroot}/app"))
            .await
            .unwrap()
            .0,
        b"in"
    );
    let (seq, _) = client
        .create(
            "/app/s-",
            b"",
            &CreateOptions::new(CreateMode::EphemeralSequential),
        )
        .await
        .unwrap();
    assert!(seq.starts_with("/app/s-"), "{seq}");
    assert_eq!(
        client.get_children("/").await.unwrap().0,
        vec!["app".to_string()]
    );
    assert_eq!(
        client.get_ephemerals("/app").await.unwrap(),
        vec![seq.clone()]
    );

    let (_, _, watch) = client.get_data_and_watch("/app").await.unwrap();
    let mut tree = client
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    root_client
        .set_data(&format!("{chroot}/app"), b"out", None)
        .await
        .unwrap();
    let event = within("chrooted watch", watch).await;
    assert_eq!(event.path, "/app");
    let event = within("chrooted recursive watch", tree.next())
        .await
        .unwrap();
    assert_eq!(event.path, "/app");

    let outcomes = client
        .multi(&[Op::create("/m", Vec::new(), CreateOptions::persistent())])
        .await
        .unwrap();
    assert!(matches!(&outcomes[0], OpOutcome::Create { path, .. } if path == "/m"));
    assert!(root_client
        .exists(&format!("{chroot}/m"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let client = connect().await;
    let root = unique("pipeline");
    client
        .create(&root, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    // Issued in order without waiting: the sequence numbers the server
    // assigns must follow the issue order, and each reply must reach its caller.
    let creates = (0..200).map(|i| {
        let client = client.clone();
        let prefix = format!("{root}/n-");
        async move {
            let (path, _) = client
                .create(
                    &prefix,
                    i.to_string().as_bytes(),
                    &CreateOptions::new(CreateMode::PersistentSequential),
                )
                .await
                .unwrap();
            (i, path)
        }
    });
    let results = within("200 pipelined creates", futures::future::join_all(creates)).await;
    for (i, path) in &results {
        assert_eq!(path, &format!("{root}/n-{i:010}"));
    }
    let reads = results.iter().map(|(i, path)| {
        let client = client.clone();
        async move { (i, client.get_data(path).await.unwrap().0) }
    });
    for (i, data) in within("200 pipelined reads", futures::future::join_all(reads)).await {
        assert_eq!(data, i.to_string().into_bytes());
    }
}
