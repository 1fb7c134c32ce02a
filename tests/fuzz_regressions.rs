//! Regression tests for what the fuzz targets (fuzz/) found, and checks that
//! the socket-free test core they drive (`canopy::testing`) behaves like the
//! server: each runs requests through `TestConn` and checks the tree
//! invariants after each one.

use std::net::SocketAddr;

use bytes::Bytes;
use canopy::core::{Core, Outbound};
use canopy::testing::{check_invariants, open_core, TestConn};
use canopy_protocol::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, DeleteRequest, Jute, ReplyHeader, Request,
    Response, Stat,
};

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Opens a connection and attaches a new session; returns it and its id.
fn connect(core: &mut Core) -> (TestConn, i64) {
    let mut conn = TestConn::open(core, addr());
    let request = ConnectRequest {
        timeout: 10_000,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
        ..ConnectRequest::default()
    };
    conn.feed(core, &framed(&request.to_bytes()));
    let frames = frames(&mut conn, core);
    assert_eq!(frames.len(), 1);
    let response = ConnectResponse::from_bytes(&frames[0][4..]).unwrap();
    assert!(conn.attached());
    (conn, response.session_id)
}

fn frames(conn: &mut TestConn, core: &mut Core) -> Vec<Bytes> {
    conn.take(core)
        .into_iter()
        .filter_map(|m| match m {
            Outbound::Frame { frame, .. } => Some(frame),
            Outbound::Close(_) => None,
        })
        .collect()
}

/// Sends a request and returns its reply's header and decoded body.
fn call(
    conn: &mut TestConn,
    core: &mut Core,
    xid: i32,
    request: Request,
) -> (ReplyHeader, Option<Response>) {
    let mut body = Vec::new();
    request.encode_frame(xid, &mut body);
    conn.feed(core, &framed(&body));
    let reply = frames(conn, core)
        .into_iter()
        .find_map(|frame| {
            let (rest, header) = ReplyHeader::decode(&frame[4..]).unwrap();
            (header.xid == xid).then(|| (header, rest.to_vec()))
        })
        .expect("a reply with the request's xid");
    let response =
        (reply.0.err == 0).then(|| Response::decode(request.op_code(), &reply.1).unwrap());
    check_invariants(core).unwrap();
    (reply.0, response)
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"x")),
        acl: Acl::open_unsafe(),
        flags,
    })
}

fn stat(core: &Core, path: &str) -> Stat {
    core.tree.get(path).unwrap().stat()
}

/// The first finding: ZooKeeper's built-in nodes have children they never
/// created, so a fresh ZooKeeper 3.8 reports cversion -1 for `/` and -2 for
/// `/zookeeper` (checked against the reference server). Canopy matches, and
/// the invariant check accepts it.
#[test]
fn built_in_nodes_report_zookeepers_negative_cversion() {
    let dir = tempfile::tempdir().unwrap();
    let core = open_core(dir.path(), |_| {}).unwrap();
    assert_eq!(
        (stat(&core, "/").cversion, stat(&core, "/").num_children),
        (-1, 1)
    );
    assert_eq!(stat(&core, "/zookeeper").cversion, -2);
    check_invariants(&core).unwrap();
}

#[test]
fn ephemerals_go_with_their_session_and_parents_count_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = open_core(dir.path(), |_| {}).unwrap();
    let (mut owner, session) = connect(&mut core);
    let (mut other, _) = connect(&mut core);

    let (header, _) = call(&mut other, &mut core, 1, create("/svc", 0));
    assert_eq!(header.err, 0);
    for xid in 2..5 {
        let (header, reply) = call(&mut owner, &mut core, xid, create("/svc/p-", 3));
        assert_eq!(header.err, 0);
        let Some(Response::Create2(created)) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(created.stat.ephemeral_owner, session);
    }
    let before = stat(&core, "/svc");
    assert_eq!((before.cversion, before.num_children), (3, 3));

    let (header, _) = call(&mut owner, &mut core, 9, Request::CloseSession);
    assert_eq!(header.err, 0);
    assert!(owner.take(&mut core).is_empty() || owner.closed().is_some());
    let after = stat(&core, "/svc");
    // Three creates and three deletes; pzxid is the closeSession's zxid.
    assert_eq!((after.cversion, after.num_children), (6, 0));
    assert_eq!(after.pzxid, header.zxid);
    check_invariants(&core).unwrap();

    // A delete of a node that is gone is refused and changes nothing.
    let (header, _) = call(
        &mut other,
        &mut core,
        10,
        Request::Delete(DeleteRequest {
            path: "/svc/p-0000000000".into(),
            version: -1,
        }),
    );
    assert_ne!(header.err, 0);
    assert_eq!(stat(&core, "/svc"), after);
}

#[test]
fn expired_sessions_lose_their_ephemerals() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = open_core(dir.path(), |_| {}).unwrap();
    let (mut conn, session) = connect(&mut core);
    call(&mut conn, &mut core, 1, create("/e", 1));
    assert_eq!(core.tree.ephemerals_of(session), ["/e"]);
    let far = core.now_ms() + 3_600_000;
    assert_eq!(core.expire_sessions_at(far), 1);
    assert!(core.tree.get("/e").is_none());
    conn.take(&mut core);
    assert!(
        conn.closed().is_some(),
        "the expired session's connection is closed"
    );
    check_invariants(&core).unwrap();
}

#[test]
fn a_malformed_request_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = open_core(dir.path(), |_| {}).unwrap();
    let (mut bad, _) = connect(&mut core);
    let (mut good, _) = connect(&mut core);
    // A create whose path length runs past the frame.
    bad.feed(
        &mut core,
        &framed(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 99, b'/']),
    );
    assert!(bad.closed().is_some());
    let (header, _) = call(&mut good, &mut core, 1, create("/still-fine", 0));
    assert_eq!(header.err, 0);
}

/// Found by session_ops: a check outside a multi was answered with a Stat
/// body (and took a zxid), which no client decodes. ZooKeeper 3.9 treats it
/// as a read: NoNode, NoAuth (READ), BadVersion or OK, with no body.
#[test]
fn a_standalone_check_is_a_read_with_an_empty_reply() {
    use canopy_protocol::CheckVersionRequest;
    let dir = tempfile::tempdir().unwrap();
    let mut core = open_core(dir.path(), |_| {}).unwrap();
    let (mut conn, _) = connect(&mut core);
    call(&mut conn, &mut core, 1, create("/v", 0));
    let zxid = core.last_zxid;
    let check = |version| {
        Request::Check(CheckVersionRequest {
            path: "/v".into(),
            version,
        })
    };
    let (header, reply) = call(&mut conn, &mut core, 2, check(0));
    assert_eq!((header.err, reply), (0, Some(Response::Empty)));
    let (header, _) = call(&mut conn, &mut core, 3, check(-1));
    assert_eq!(header.err, 0);
    let (header, _) = call(&mut conn, &mut core, 4, check(7));
    assert_eq!(header.err, canopy_protocol::ErrorCode::BadVersion.code());
    let missing = Request::Check(CheckVersionRequest {
        path: "/missing".into(),
        version: -1,
    });
    let (header, _) = call(&mut conn, &mut core, 5, missing);
    assert_eq!(header.err, canopy_protocol::ErrorCode::NoNode.code());
    assert_eq!(core.last_zxid, zxid, "a check takes no zxid");
}
