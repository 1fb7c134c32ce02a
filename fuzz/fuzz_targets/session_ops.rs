//! A structure-aware target: sequences of sessions and requests driven
//! through a socket-free server (`canopy::testing`), with the invariants
//! checked after every step.
//!
//! A step opens a session, re-attaches one (right or wrong password), drops a
//! connection, sends a request (every opcode; creates of every mode, ACLs of
//! every scheme, multi, one-shot, persistent and recursive watches,
//! setWatches, addauth, closeSession) or raw bytes as a request, expires
//! sessions, or sweeps containers and TTL nodes. Requests go in as frames and
//! take the server's decoding path.
//!
//! After every step:
//! - the tree invariants of `canopy::testing::check_invariants` hold (every
//!   ephemeral's owner is a live session, numChildren matches the children,
//!   the tree is connected, the indexes agree);
//! - each parent's cversion moved by exactly the child creates and deletes
//!   the replies report, and its pzxid moved to that step's zxid exactly when
//!   its children changed (as ZooKeeper's DataTree does);
//! - every request got exactly one reply with its xid (none only when its
//!   frame does not decode), whose body decodes as the opcode's reply shape
//!   (and is empty on an error); a multi's results are one per op, all
//!   errors or none;
//! - a notification reaches only a connection that set a watch that could
//!   fire for its path, and the zxids each connection sees never go
//!   backwards.
#![no_main]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use bytes::Bytes;
use canopy::core::{Core, Outbound};
use canopy::testing::{check_invariants, open_core, TestConn};
use canopy_protocol::{
    perms, xid, Acl, AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest,
    ConnectRequest, ConnectResponse, CreateRequest, CreateTtlRequest, DeleteContainerRequest,
    DeleteRequest, ExistsRequest, GetAclRequest, GetAllChildrenNumberRequest, GetChildrenRequest,
    GetDataRequest, GetEphemeralsRequest, GetSaslRequest, Id, Jute, MultiOp, MultiRequest,
    OpResult, ReconfigRequest, RemoveWatchesRequest, ReplyHeader, Request, RequestHeader, Response,
    SetAclRequest, SetDataRequest, SetWatches, SetWatches2, SyncRequest, WatcherEvent,
};
use libfuzzer_sys::fuzz_target;

/// Path components: few, so requests collide; some are ZooKeeper's own.
const NAMES: [&str; 6] = ["a", "b", "c", "zookeeper", "quota", "config"];
/// `user:password` pairs for addauth; `super:test` is the super user.
const USERS: [&str; 4] = ["alice:secret", "bob:secret", "alice:wrong", "super:test"];
const MAX_STEPS: usize = 48;
const MAX_CLIENTS: usize = 6;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct TreePath {
    depth: u8,
    names: [u8; 3],
}

impl TreePath {
    fn build(self) -> String {
        let depth = (self.depth % 4) as usize;
        if depth == 0 {
            return "/".into();
        }
        self.names[..depth]
            .iter()
            .map(|n| format!("/{}", NAMES[*n as usize % NAMES.len()]))
            .collect()
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum PathArg {
    Tree(TreePath),
    /// A path the fuzzer makes up (invalid ones included).
    Raw(String),
}

impl PathArg {
    fn build(&self) -> String {
        match self {
            PathArg::Tree(p) => p.build(),
            PathArg::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum AclEntry {
    Open,
    ReadOnly,
    /// `auth` scheme: expands to the session's authenticated identities.
    Creator(u8),
    Digest {
        user: u8,
        perms: u8,
    },
    World {
        perms: u8,
    },
    Ip {
        perms: u8,
        loopback: bool,
    },
    Odd {
        scheme: String,
        id: String,
        perms: i32,
    },
}

fn build_acl(entries: &[AclEntry]) -> Vec<Acl> {
    let acl = |perms: i32, scheme: &str, id: &str| Acl {
        perms,
        id: Id::new(scheme, id),
    };
    entries
        .iter()
        .take(3)
        .map(|entry| match entry {
            AclEntry::Open => acl(perms::ALL, "world", "anyone"),
            AclEntry::ReadOnly => acl(perms::READ, "world", "anyone"),
            AclEntry::Creator(p) => acl(*p as i32 & 0x3f, "auth", ""),
            AclEntry::Digest { user, perms } => acl(
                *perms as i32 & 0x3f,
                "digest",
                &canopy::acl::digest_id(USERS[*user as usize % USERS.len()]),
            ),
            AclEntry::World { perms } => acl(*perms as i32 & 0x3f, "world", "anyone"),
            AclEntry::Ip { perms, loopback } => acl(
                *perms as i32 & 0x3f,
                "ip",
                if *loopback { "127.0.0.0/8" } else { "10.1.2.3" },
            ),
            AclEntry::Odd { scheme, id, perms } => acl(*perms, scheme, id),
        })
        .collect()
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum CreateKind {
    Create,
    Create2,
    Container,
    Ttl,
}

#[derive(Arbitrary, Debug, Clone)]
struct CreateArgs {
    kind: CreateKind,
    path: PathArg,
    data: Option<Vec<u8>>,
    acl: Vec<AclEntry>,
    /// 0..=6 are ZooKeeper's create modes; anything else is invalid.
    flags: i8,
    ttl: i16,
}

impl CreateArgs {
    fn request(&self) -> (CreateRequest, i64) {
        (
            CreateRequest {
                path: self.path.build(),
                data: self.data.clone().map(Bytes::from),
                acl: build_acl(&self.acl),
                flags: self.flags as i32,
            },
            self.ttl as i64,
        )
    }

    fn to_request(&self) -> Request {
        let (r, ttl) = self.request();
        match self.kind {
            CreateKind::Create => Request::Create(r),
            CreateKind::Create2 => Request::Create2(r),
            CreateKind::Container => Request::CreateContainer(r),
            CreateKind::Ttl => Request::CreateTtl(ttl_request(r, ttl)),
        }
    }

    fn to_multi_op(&self) -> MultiOp {
        let (r, ttl) = self.request();
        match self.kind {
            CreateKind::Create => MultiOp::Create(r),
            CreateKind::Create2 => MultiOp::Create2(r),
            CreateKind::Container => MultiOp::CreateContainer(r),
            CreateKind::Ttl => MultiOp::CreateTtl(ttl_request(r, ttl)),
        }
    }
}

fn ttl_request(r: CreateRequest, ttl: i64) -> CreateTtlRequest {
    CreateTtlRequest {
        path: r.path,
        data: r.data,
        acl: r.acl,
        flags: r.flags,
        ttl,
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum MultiSel {
    Create(CreateArgs),
    Delete {
        path: PathArg,
        version: i8,
    },
    SetData {
        path: PathArg,
        data: Option<Vec<u8>>,
        version: i8,
    },
    Check {
        path: PathArg,
        version: i8,
    },
    GetChildren {
        path: PathArg,
        watch: bool,
    },
    GetData {
        path: PathArg,
        watch: bool,
    },
}

impl MultiSel {
    fn to_op(&self) -> MultiOp {
        match self {
            MultiSel::Create(c) => c.to_multi_op(),
            MultiSel::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                path: path.build(),
                version: *version as i32,
            }),
            MultiSel::SetData {
                path,
                data,
                version,
            } => MultiOp::SetData(SetDataRequest {
                path: path.build(),
                data: data.clone().map(Bytes::from),
                version: *version as i32,
            }),
            MultiSel::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                path: path.build(),
                version: *version as i32,
            }),
            MultiSel::GetChildren { path, watch } => MultiOp::GetChildren(GetChildrenRequest {
                path: path.build(),
                watch: *watch,
            }),
            MultiSel::GetData { path, watch } => MultiOp::GetData(GetDataRequest {
                path: path.build(),
                watch: *watch,
            }),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Create(CreateArgs),
    Delete {
        path: PathArg,
        version: i8,
    },
    DeleteContainer {
        path: PathArg,
    },
    Exists {
        path: PathArg,
        watch: bool,
    },
    GetData {
        path: PathArg,
        watch: bool,
    },
    SetData {
        path: PathArg,
        data: Option<Vec<u8>>,
        version: i8,
    },
    GetAcl {
        path: PathArg,
    },
    SetAcl {
        path: PathArg,
        acl: Vec<AclEntry>,
        version: i8,
    },
    GetChildren {
        path: PathArg,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: PathArg,
    },
    Ping,
    Check {
        path: PathArg,
        version: i8,
    },
    Multi(Vec<MultiSel>),
    MultiRead(Vec<MultiSel>),
    AddWatch {
        path: PathArg,
        mode: i8,
    },
    CheckWatches {
        path: PathArg,
        kind: i8,
    },
    RemoveWatches {
        path: PathArg,
        kind: i8,
    },
    SetWatches {
        /// Relative to the server's last zxid.
        back: i8,
        data: Vec<TreePath>,
        exist: Vec<TreePath>,
        child: Vec<TreePath>,
        persistent: Vec<TreePath>,
        recursive: Vec<TreePath>,
        v2: bool,
    },
    AddAuth {
        user: u8,
        digest: bool,
    },
    GetEphemerals {
        prefix: PathArg,
    },
    GetAllChildrenNumber {
        path: PathArg,
    },
    WhoAmI,
    Reconfig,
    Sasl,
    CloseSession,
}

fn paths(list: &[TreePath]) -> Vec<String> {
    list.iter().take(4).map(|p| p.build()).collect()
}

impl Op {
    /// The request and the xid a real client would give it.
    fn to_request(&self, last_zxid: i64) -> (Request, Option<i32>) {
        let r = match self {
            Op::Create(c) => c.to_request(),
            Op::Delete { path, version } => Request::Delete(DeleteRequest {
                path: path.build(),
                version: *version as i32,
            }),
            Op::DeleteContainer { path } => {
                Request::DeleteContainer(DeleteContainerRequest { path: path.build() })
            }
            Op::Exists { path, watch } => Request::Exists(ExistsRequest {
                path: path.build(),
                watch: *watch,
            }),
            Op::GetData { path, watch } => Request::GetData(GetDataRequest {
                path: path.build(),
                watch: *watch,
            }),
            Op::SetData {
                path,
                data,
                version,
            } => Request::SetData(SetDataRequest {
                path: path.build(),
                data: data.clone().map(Bytes::from),
                version: *version as i32,
            }),
            Op::GetAcl { path } => Request::GetAcl(GetAclRequest { path: path.build() }),
            Op::SetAcl { path, acl, version } => Request::SetAcl(SetAclRequest {
                path: path.build(),
                acl: build_acl(acl),
                version: *version as i32,
            }),
            Op::GetChildren {
                path,
                watch,
                with_stat,
            } => {
                let r = GetChildrenRequest {
                    path: path.build(),
                    watch: *watch,
                };
                if *with_stat {
                    Request::GetChildren2(r)
                } else {
                    Request::GetChildren(r)
                }
            }
            Op::Sync { path } => Request::Sync(SyncRequest { path: path.build() }),
            Op::Ping => return (Request::Ping, Some(xid::PING)),
            Op::Check { path, version } => Request::Check(CheckVersionRequest {
                path: path.build(),
                version: *version as i32,
            }),
            Op::Multi(ops) => Request::Multi(MultiRequest {
                ops: ops.iter().take(8).map(MultiSel::to_op).collect(),
            }),
            Op::MultiRead(ops) => Request::MultiRead(MultiRequest {
                ops: ops.iter().take(8).map(MultiSel::to_op).collect(),
            }),
            Op::AddWatch { path, mode } => Request::AddWatch(AddWatchRequest {
                path: path.build(),
                mode: *mode as i32,
            }),
            Op::CheckWatches { path, kind } => Request::CheckWatches(CheckWatchesRequest {
                path: path.build(),
                watcher_type: *kind as i32,
            }),
            Op::RemoveWatches { path, kind } => Request::RemoveWatches(RemoveWatchesRequest {
                path: path.build(),
                watcher_type: *kind as i32,
            }),
            Op::SetWatches {
                back,
                data,
                exist,
                child,
                persistent,
                recursive,
                v2,
            } => {
                let relative_zxid = last_zxid - *back as i64;
                let r = if *v2 {
                    Request::SetWatches2(SetWatches2 {
                        relative_zxid,
                        data_watches: paths(data),
                        exist_watches: paths(exist),
                        child_watches: paths(child),
                        persistent_watches: paths(persistent),
                        persistent_recursive_watches: paths(recursive),
                    })
                } else {
                    Request::SetWatches(SetWatches {
                        relative_zxid,
                        data_watches: paths(data),
                        exist_watches: paths(exist),
                        child_watches: paths(child),
                    })
                };
                return (r, Some(xid::SET_WATCHES));
            }
            Op::AddAuth { user, digest } => {
                let r = Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: if *digest { "digest" } else { "ip" }.into(),
                    auth: Bytes::from(USERS[*user as usize % USERS.len()]),
                });
                return (r, Some(xid::AUTH));
            }
            Op::GetEphemerals { prefix } => Request::GetEphemerals(GetEphemeralsRequest {
                prefix_path: prefix.build(),
            }),
            Op::GetAllChildrenNumber { path } => {
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: path.build() })
            }
            Op::WhoAmI => Request::WhoAmI,
            Op::Reconfig => Request::Reconfig(ReconfigRequest {
                joining_servers: None,
                leaving_servers: None,
                new_members: Some("server.1=127.0.0.1:2888:3888".into()),
                cur_config_id: -1,
            }),
            Op::Sasl => Request::Sasl(GetSaslRequest {
                token: Bytes::from_static(b"token"),
            }),
            Op::CloseSession => Request::CloseSession,
        };
        (r, None)
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Connect {
        timeout_ms: u16,
        old_client: bool,
        /// Claims to have seen a zxid the server has not reached.
        ahead: bool,
    },
    Reattach {
        session: u8,
        wrong_password: bool,
    },
    Disconnect {
        client: u8,
    },
    Send {
        client: u8,
        op: Op,
    },
    /// Any bytes as a request frame (header included).
    Raw {
        client: u8,
        frame: Vec<u8>,
    },
    ExpireSessions {
        /// Tenths of a second ahead of the session clock.
        after: u16,
    },
    SweepContainers {
        /// Milliseconds ahead of the wall clock.
        after_ms: u16,
    },
}

/// One connected client, as the harness tracks it.
struct Client {
    conn: TestConn,
    session_id: i64,
    next_xid: i32,
    /// Highest zxid seen in a frame; they must never go backwards.
    last_zxid: i64,
    /// Paths this client ever set a one-shot or persistent watch on, and the
    /// roots of its recursive watches: a notification about any other path
    /// would be a leak. Kept as supersets (never pruned).
    watched: HashSet<String>,
    recursive: HashSet<String>,
}

impl Client {
    fn may_be_told_about(&self, path: &str) -> bool {
        self.watched.contains(path)
            || self
                .recursive
                .iter()
                .any(|root| canopy::path::is_within(path, root))
    }

    fn note_watches(&mut self, request: &Request) {
        let mut add = |p: &str| {
            self.watched.insert(p.to_string());
        };
        match request {
            Request::Exists(r) if r.watch => add(&r.path),
            Request::GetData(r) if r.watch => add(&r.path),
            Request::GetChildren(r) | Request::GetChildren2(r) if r.watch => add(&r.path),
            Request::MultiRead(m) | Request::Multi(m) => {
                for op in &m.ops {
                    match op {
                        MultiOp::GetData(r) if r.watch => add(&r.path),
                        MultiOp::GetChildren(r) if r.watch => add(&r.path),
                        _ => {}
                    }
                }
            }
            Request::AddWatch(r) => match r.mode {
                0 => add(&r.path),
                1 => {
                    self.recursive.insert(r.path.clone());
                }
                _ => {}
            },
            Request::SetWatches(r) => {
                for p in r
                    .data_watches
                    .iter()
                    .chain(&r.exist_watches)
                    .chain(&r.child_watches)
                {
                    add(p);
                }
            }
            Request::SetWatches2(r) => {
                for p in r
                    .data_watches
                    .iter()
                    .chain(&r.exist_watches)
                    .chain(&r.child_watches)
                    .chain(&r.persistent_watches)
                {
                    add(p);
                }
                for p in &r.persistent_recursive_watches {
                    self.recursive.insert(p.clone());
                }
            }
            _ => {}
        }
    }
}

/// What the harness remembers of a node between steps.
struct NodeView {
    czxid: i64,
    cversion: i32,
    pzxid: i64,
}

fn view(core: &Core) -> HashMap<String, NodeView> {
    canopy::tree::Tree::depth_first(&core.tree.frozen())
        .map(|(path, node)| {
            let stat = node.stat();
            (
                path,
                NodeView {
                    czxid: stat.czxid,
                    cversion: stat.cversion,
                    pzxid: stat.pzxid,
                },
            )
        })
        .collect()
}

fn parent(path: &str) -> String {
    canopy::path::parent(path).to_string()
}

/// The state of the run.
struct Harness {
    core: Core,
    clients: Vec<Client>,
    /// Every session handed out, with its password, for re-attaching.
    sessions: Vec<(i64, Bytes)>,
    next_port: u16,
}

impl Harness {
    fn open_conn(&mut self) -> TestConn {
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        TestConn::open(&mut self.core, addr)
    }

    /// Handshake; returns the connection if the session was attached.
    fn handshake(&mut self, request: ConnectRequest) -> Option<Client> {
        let mut conn = self.open_conn();
        let mut frame = Vec::new();
        request.encode(&mut frame);
        let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&frame);
        conn.feed(&mut self.core, &bytes);
        let out = conn.take(&mut self.core);
        let frames: Vec<&Bytes> = out
            .iter()
            .filter_map(|m| match m {
                Outbound::Frame { frame, .. } => Some(frame),
                Outbound::Close(_) => None,
            })
            .collect();
        if request.last_zxid_seen > self.core.last_zxid {
            assert!(
                frames.is_empty(),
                "a client ahead of the server was answered"
            );
            assert!(conn.closed().is_some());
            return None;
        }
        assert_eq!(frames.len(), 1, "one connect response per handshake");
        let response = ConnectResponse::from_bytes(&frames[0][4..]).expect("connect response");
        assert_eq!(response.read_only.is_some(), request.read_only.is_some());
        if response.session_id == 0 {
            assert_eq!(response.timeout, 0);
            assert!(
                conn.closed().is_some(),
                "a refused session keeps its connection"
            );
            return None;
        }
        let config = &self.core.config;
        assert!(
            response.timeout >= config.min_session_timeout_ms
                && response.timeout <= config.max_session_timeout_ms
        );
        if request.session_id != 0 {
            assert_eq!(response.session_id, request.session_id);
        }
        assert!(self.core.sessions.get(response.session_id).is_some());
        Some(Client {
            conn,
            session_id: response.session_id,
            next_xid: 1,
            last_zxid: 0,
            watched: HashSet::new(),
            recursive: HashSet::new(),
        })
    }

    fn pick(&self, index: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| index as usize % self.clients.len())
    }

    fn run(&mut self, step: &Step) {
        let before = view(&self.core);
        let zxid_before = self.core.last_zxid;
        let ephemerals_before: HashMap<i64, Vec<String>> = self
            .core
            .tree
            .all_ephemerals()
            .into_iter()
            .collect();
        // Child creates and deletes per parent, as the replies report them.
        let mut child_changes: HashMap<String, i32> = HashMap::new();
        // The request sent (if any): client index, xid, and its decoding.
        let mut sent: Option<(usize, i32, Option<Request>)> = None;

        match step {
            Step::Connect {
                timeout_ms,
                old_client,
                ahead,
            } => {
                if self.clients.len() >= MAX_CLIENTS {
                    return;
                }
                let request = ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: if *ahead { self.core.last_zxid + 1 } else { 0 },
                    timeout: *timeout_ms as i32,
                    session_id: 0,
                    passwd: Bytes::from_static(&[0; 16]),
                    read_only: (!old_client).then_some(false),
                };
                if let Some(client) = self.handshake(request) {
                    let passwd = self.core.sessions.password(client.session_id);
                    self.sessions
                        .push((client.session_id, Bytes::copy_from_slice(&passwd)));
                    self.clients.push(client);
                }
            }
            Step::Reattach {
                session,
                wrong_password,
            } => {
                if self.sessions.is_empty() || self.clients.len() >= MAX_CLIENTS {
                    return;
                }
                let (id, passwd) = self.sessions[*session as usize % self.sessions.len()].clone();
                let passwd = if *wrong_password {
                    Bytes::from_static(&[1; 16])
                } else {
                    passwd
                };
                let request = ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: 0,
                    timeout: 10_000,
                    session_id: id,
                    passwd,
                    read_only: Some(false),
                };
                let live = self.core.sessions.get(id).is_some();
                let client = self.handshake(request);
                assert_eq!(
                    client.is_some(),
                    live && !wrong_password,
                    "re-attach of session 0x{id:x}"
                );
                if let Some(client) = client {
                    self.clients.push(client);
                }
            }
            Step::Disconnect { client } => {
                if let Some(i) = self.pick(*client) {
                    let mut gone = self.clients.remove(i);
                    gone.conn.close(&mut self.core, "client went away".into());
                }
            }
            Step::Send { client, op } => {
                let Some(i) = self.pick(*client) else { return };
                let (request, reserved_xid) = op.to_request(self.core.last_zxid);
                let c = &mut self.clients[i];
                let xid = reserved_xid.unwrap_or_else(|| {
                    c.next_xid += 1;
                    c.next_xid
                });
                // Noted before sending: setWatches fires missed events at once.
                c.note_watches(&request);
                let mut body = Vec::new();
                request.encode_frame(xid, &mut body);
                self.deliver(i, &body);
                sent = Some((i, xid, Some(request)));
            }
            Step::Raw { client, frame } => {
                let Some(i) = self.pick(*client) else { return };
                // The server echoes any xid, as ZooKeeper does; a client that
                // picks the notification xid (-1) cannot tell its reply from an
                // event, so neither could this harness.
                let mut frame = frame.clone();
                if frame.len() >= 4 && frame[..4] == [0xff; 4] {
                    frame[..4].copy_from_slice(&0x7fff_ffff_i32.to_be_bytes());
                }
                let frame = &frame;
                let decoded = Request::decode_frame(frame).ok();
                if let Some((_, request)) = &decoded {
                    self.clients[i].note_watches(request);
                }
                let xid = RequestHeader::decode(frame).map_or(0, |(_, h)| h.xid);
                self.deliver(i, frame);
                sent = Some((i, xid, decoded.map(|(_, r)| r)));
            }
            Step::ExpireSessions { after } => {
                let now = self.core.now_ms() + *after as u64 * 100;
                let due: BTreeSet<i64> = self.core.sessions.expired(now).into_iter().collect();
                self.core.expire_sessions_at(now);
                for id in &due {
                    assert!(
                        self.core.sessions.get(*id).is_none(),
                        "0x{id:x} outlived expiry"
                    );
                    for path in ephemerals_before.get(id).into_iter().flatten() {
                        *child_changes.entry(parent(path)).or_default() += 1;
                    }
                }
            }
            Step::SweepContainers { after_ms } => {
                let wall = canopy::core::wall_clock_ms() + *after_ms as i64;
                self.core.remove_expired_containers_at(wall);
                let after = view(&self.core);
                for (path, node) in &before {
                    if after.get(path).is_none_or(|n| n.czxid != node.czxid) {
                        *child_changes.entry(parent(path)).or_default() += 1;
                    }
                }
            }
        }

        // Collect what every client was sent; the sender's reply is checked
        // against its request.
        let mut reply_count = 0;
        for (i, client) in self.clients.iter_mut().enumerate() {
            for message in client.conn.take(&mut self.core) {
                let Outbound::Frame { frame, .. } = message else {
                    continue;
                };
                let (body, header) = ReplyHeader::decode(&frame[4..]).expect("a reply header");
                // -1 (events of setWatches, unknown opcodes) and 0 (addauth
                // replies) stand for no zxid, in ZooKeeper as here.
                if header.zxid > 0 {
                    assert!(
                        header.zxid >= client.last_zxid,
                        "zxid 0x{:x} after 0x{:x}",
                        header.zxid,
                        client.last_zxid
                    );
                    client.last_zxid = header.zxid;
                }
                if header.xid == xid::NOTIFICATION {
                    let event = WatcherEvent::from_bytes(body).expect("a notification body");
                    assert!(
                        client.may_be_told_about(&event.path),
                        "notification {event:?} to a client that never watched it"
                    );
                    continue;
                }
                let Some((sender, sent_xid, request)) = &sent else {
                    panic!("a reply {header:?} with no request");
                };
                assert_eq!(i, *sender, "a reply went to another client");
                assert_eq!(header.xid, *sent_xid);
                reply_count += 1;
                let Some(request) = request else {
                    // An unknown opcode is answered with an error, then closed.
                    assert_ne!(header.err, 0);
                    assert!(body.is_empty());
                    continue;
                };
                if header.err != 0 {
                    assert!(body.is_empty(), "an error reply with a body");
                    continue;
                }
                let response = Response::decode(request.op_code(), body)
                    .unwrap_or_else(|e| panic!("reply to {request:?} does not decode: {e}"));
                count_child_changes(
                    &self.core,
                    client.session_id,
                    request,
                    &response,
                    &ephemerals_before,
                    &mut child_changes,
                );
            }
        }
        if let Some((i, _, request)) = &sent {
            let closed = self.clients[*i].conn.closed().is_some();
            match request {
                Some(_) => assert_eq!(reply_count, 1, "one reply per request"),
                None => assert!(reply_count <= 1 && closed, "a bad frame must close"),
            }
        }
        self.clients.retain(|c| c.conn.closed().is_none());

        if let Err(broken) = check_invariants(&self.core) {
            panic!("after {step:?}: {broken}");
        }
        check_child_versions(
            &before,
            &view(&self.core),
            &child_changes,
            zxid_before,
            self.core.last_zxid,
        );
    }

    fn deliver(&mut self, client: usize, frame: &[u8]) {
        let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(frame);
        self.clients[client].conn.feed(&mut self.core, &bytes);
    }
}

/// Adds the child creates and deletes a successful reply reports.
fn count_child_changes(
    core: &Core,
    session_id: i64,
    request: &Request,
    response: &Response,
    ephemerals_before: &HashMap<i64, Vec<String>>,
    changes: &mut HashMap<String, i32>,
) {
    let mut bump = |path: &str| *changes.entry(parent(path)).or_default() += 1;
    match (request, response) {
        (Request::Create(r), Response::Create(c)) => {
            assert!(c.path.starts_with(&r.path));
            bump(&c.path);
        }
        (Request::Create2(r) | Request::CreateContainer(r), Response::Create2(c)) => {
            assert!(c.path.starts_with(&r.path));
            assert_eq!(
                core.tree.get(&c.path).map(|n| n.stat()),
                Some(c.stat.clone())
            );
            bump(&c.path);
        }
        (Request::CreateTtl(r), Response::Create2(c)) => {
            assert!(c.path.starts_with(&r.path));
            bump(&c.path);
        }
        (Request::Delete(r), _) => {
            assert!(core.tree.get(&r.path).is_none());
            bump(&r.path);
        }
        (Request::DeleteContainer(r), _) => bump(&r.path),
        (Request::CloseSession, _) => {
            assert!(core.sessions.get(session_id).is_none());
            for path in ephemerals_before.get(&session_id).into_iter().flatten() {
                bump(path);
            }
        }
        (Request::Multi(m), Response::Multi(results)) => {
            assert_eq!(results.results.len(), m.ops.len(), "one result per op");
            let failed = results
                .results
                .iter()
                .filter(|r| matches!(r, OpResult::Error { .. }))
                .count();
            assert!(
                failed == 0 || failed == m.ops.len(),
                "a multi that half failed: {results:?}"
            );
            for (op, result) in m.ops.iter().zip(&results.results) {
                match result {
                    OpResult::Create { path } | OpResult::Create2 { path, .. } => {
                        assert!(path.starts_with(op.path()));
                        bump(path);
                    }
                    OpResult::Delete => bump(op.path()),
                    _ => {}
                }
            }
        }
        (Request::MultiRead(m), Response::Multi(results)) => {
            assert_eq!(results.results.len(), m.ops.len(), "one result per op");
        }
        _ => {}
    }
}

/// cversion counts child creates and deletes; pzxid is the zxid of the last
/// child change. A step's changes all have zxids in (`from`, `to`].
fn check_child_versions(
    before: &HashMap<String, NodeView>,
    after: &HashMap<String, NodeView>,
    changes: &HashMap<String, i32>,
    from: i64,
    to: i64,
) {
    for (path, node) in after {
        let expected = changes.get(path).copied().unwrap_or(0);
        match before.get(path) {
            Some(old) if old.czxid == node.czxid => {
                assert_eq!(
                    node.cversion - old.cversion,
                    expected,
                    "cversion of {path} moved by {} for {expected} child changes",
                    node.cversion - old.cversion
                );
                if expected == 0 {
                    assert_eq!(node.pzxid, old.pzxid, "pzxid of {path} moved");
                } else {
                    assert!(
                        node.pzxid > from && node.pzxid <= to,
                        "pzxid of {path} is 0x{:x}, not in (0x{from:x}, 0x{to:x}]",
                        node.pzxid
                    );
                }
            }
            _ => {
                // Created in this step (a multi may have recreated it, so
                // changes under the older node may be counted too).
                assert!(
                    node.cversion <= expected,
                    "new node {path} with cversion {}",
                    node.cversion
                );
                assert!(node.pzxid > from && node.pzxid <= to);
            }
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let dir = tempfile::tempdir().expect("a temp dir");
    let core = open_core(dir.path(), |config| {
        config.super_digest = Some(canopy::acl::digest_id("super:test"));
    })
    .expect("a core");
    let mut harness = Harness {
        core,
        clients: Vec::new(),
        sessions: Vec::new(),
        next_port: 1024,
    };
    for step in steps.iter().take(MAX_STEPS) {
        harness.run(step);
    }
    harness.core.close_storage();
});
