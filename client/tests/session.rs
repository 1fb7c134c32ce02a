//! Session behaviour over a real server: reconnecting with the same session
//! (watches re-armed, missed events delivered), moving to another host,
//! expiry, request timeouts, auth failure and close. Connections are cut
//! with the loopback proxy of `common`.

mod common;

use std::time::Duration;

use canopy_client::protocol::ErrorCode;
use canopy_client::{AddWatchMode, CreateOptions, Error, EventType, SessionState};
use common::{
    connect, connect_to, eventually, server, unique, wait_for_state, within, Proxy, LONG_SESSION,
    SHORT_SESSION,
};
use futures::StreamExt;

#[tokio::test]
async fn reconnect_keeps_the_session_and_rearms_watches() {
    let proxy = Proxy::start(server().addr).await;
    let client = connect_to(&proxy.connect_string(), LONG_SESSION).await;
    let writer = connect().await;
    let path = unique("rearm");
    writer
        .create(&path, b"0", &CreateOptions::persistent())
        .await
        .unwrap();
    let session = client.session_id();
    let eph = format!("{path}-eph");
    client
        .create(&eph, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (_, _, data_watch) = client.get_data_and_watch(&path).await.unwrap();
    let (_, _, child_watch) = client.get_children_and_watch(&path).await.unwrap();
    let (_, created_watch) = client
        .exists_and_watch(&format!("{path}/later"))
        .await
        .unwrap();
    // Nothing changes under this one while the client is away, so the first
    // event it sees must come from the re-armed watch.
    let quiet = format!("{path}-quiet");
    writer
        .create(&quiet, b"", &CreateOptions::persistent())
        .await
        .unwrap();
    let mut persistent = client
        .add_watch(&quiet, AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut states = client.state_stream();

    proxy.set_blocked(true);
    proxy.cut();
    wait_for_state(&mut states, SessionState::Disconnected).await;
    // Changes the client cannot see while it is away.
    writer.set_data(&path, b"1", None).await.unwrap();
    writer
        .create(&format!("{path}/later"), b"", &CreateOptions::persistent())
        .await
        .unwrap();
    // A request issued while disconnected waits for the re-attach.
    let pending = {
        let client = client.clone();
        let path = path.clone();
        tokio::spawn(async move { client.get_data(&path).await })
    };
    proxy.set_blocked(false);
    wait_for_state(&mut states, SessionState::Connected).await;
    assert_eq!(client.session_id(), session, "same session after reconnect");

    // setWatches re-armed them, and the server fired the missed changes.
    let event = within("missed data change", data_watch).await;
    assert_eq!(event.event_type, EventType::NodeDataChanged);
    let event = within("missed child change", child_watch).await;
    assert_eq!(event.event_type, EventType::NodeChildrenChanged);
    let event = within("missed creation", created_watch).await;
    assert_eq!(event.event_type, EventType::NodeCreated);
    let (data, _) = within("queued request", pending).await.unwrap().unwrap();
    assert_eq!(data, b"1");

    // The persistent watch is armed again on the new connection.
    writer.set_data(&quiet, b"2", None).await.unwrap();
    let event = within("persistent event", persistent.next())
        .await
        .expect("stream open");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeDataChanged, quiet.as_str())
    );
    // The session (and its ephemeral node) survived.
    let stat = writer.exists(&eph).await.unwrap().expect("ephemeral kept");
    assert_eq!(stat.ephemeral_owner, session);
}

#[tokio::test]
async fn moves_to_another_host_with_the_same_session() {
    let first = Proxy::start(server().addr).await;
    let second = Proxy::start(server().addr).await;
    let client = connect_to(
        &format!("{},{}", first.connect_string(), second.connect_string()),
        LONG_SESSION,
    )
    .await;
    let session = client.session_id();
    let path = unique("hosts");
    client
        .create(&path, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let mut states = client.state_stream();
    // Whichever host it uses, it must end up on `second`, then on `first`.
    for (dead, alive) in [(&first, &second), (&second, &first)] {
        dead.set_blocked(true);
        alive.set_blocked(false);
        first.cut();
        second.cut();
        wait_for_state(&mut states, SessionState::Disconnected).await;
        wait_for_state(&mut states, SessionState::Connected).await;
        assert_eq!(client.session_id(), session);
        assert!(client.exists(&path).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn expiry_is_reported_and_final() {
    let proxy = Proxy::start(server().addr).await;
    let client = connect_to(&proxy.connect_string(), SHORT_SESSION).await;
    let observer = connect().await;
    let path = unique("expiry");
    client
        .create(&path, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (_, _, watch) = client.get_data_and_watch(&path).await.unwrap();
    let mut persistent = client
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = client.state_stream();

    proxy.set_blocked(true);
    proxy.cut();
    wait_for_state(&mut states, SessionState::Disconnected).await;
    // The server expires the session: its ephemeral node goes.
    eventually("the ephemeral node to go", || async {
        observer
            .exists(&path)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    proxy.set_blocked(false);
    wait_for_state(&mut states, SessionState::Expired).await;
    assert_eq!(client.state(), SessionState::Expired);
    assert!(states.next_state().await.is_none(), "Expired is final");

    let event = within("watch end", watch).await;
    assert_eq!(
        (event.event_type, event.state),
        (EventType::None, SessionState::Expired)
    );
    assert!(within("stream end", persistent.next()).await.is_none());
    assert_eq!(
        client.get_data("/").await.unwrap_err(),
        Error::SessionExpired
    );
    // A new session is a new client.
    let fresh = connect_to(&proxy.connect_string(), SHORT_SESSION).await;
    assert_ne!(fresh.session_id(), client.session_id());
}

#[tokio::test]
async fn requests_time_out_while_the_server_is_unreachable() {
    let proxy = Proxy::start(server().addr).await;
    let client = connect_to(&proxy.connect_string(), LONG_SESSION).await;
    let mut states = client.state_stream();
    proxy.set_blocked(true);
    proxy.cut();
    wait_for_state(&mut states, SessionState::Disconnected).await;
    let impatient = client.with_request_timeout(Some(Duration::from_millis(200)));
    assert_eq!(impatient.exists("/").await.unwrap_err(), Error::Timeout);
    proxy.set_blocked(false);
    wait_for_state(&mut states, SessionState::Connected).await;
    assert!(impatient.exists("/").await.unwrap().is_some());
}

#[tokio::test]
async fn failed_auth_ends_the_session() {
    let client = connect().await;
    let mut states = client.state_stream();
    let refused = client.add_auth("no-such-scheme", b"whatever").await;
    assert_eq!(refused.unwrap_err(), Error::AuthFailed);
    wait_for_state(&mut states, SessionState::AuthFailed).await;
    assert_eq!(client.exists("/").await.unwrap_err(), Error::AuthFailed);
}

#[tokio::test]
async fn close_removes_ephemerals_at_once() {
    let client = connect().await;
    let observer = connect().await;
    let path = unique("close");
    client
        .create(&path, b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let mut states = client.state_stream();
    within("close", client.close()).await;
    wait_for_state(&mut states, SessionState::Closed).await;
    assert_eq!(observer.exists(&path).await.unwrap(), None);
    assert_eq!(client.exists("/").await.unwrap_err(), Error::Closed);
}

#[tokio::test]
async fn connect_fails_cleanly_when_no_host_answers() {
    let proxy = Proxy::start(server().addr).await;
    proxy.set_blocked(true);
    let result = canopy_client::Client::builder(proxy.connect_string())
        .session_timeout(SHORT_SESSION)
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");
    let bad = canopy_client::Client::connect("host:notaport").await;
    assert!(matches!(bad, Err(Error::BadArguments(_))));
    assert_eq!(
        Error::Server(ErrorCode::NoNode).code(),
        Some(ErrorCode::NoNode)
    );
}
