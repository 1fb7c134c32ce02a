//! The server's state machine: the tree, the sessions, the watches and the
//! connections, behind one lock. Requests come in as decoded messages and go
//! out as reply frames; changes go through [`Core::commit`], which stamps the
//! next zxid, applies the change record and queues the notifications it
//! causes, in that order, so a client always sees an event before any reply
//! showing newer data.

use std::collections::HashMap;

use ahash::RandomState;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use canopy_protocol::{
    build_frame, notification_frame, perms, AddWatchMode, ClientInfo, ConnectRequest,
    ConnectResponse, Create2Response, CreateRequest, CreateResponse, ErrorCode, ErrorResponse,
    GetAclResponse, GetAllChildrenNumberResponse, GetEphemeralsResponse, Id, Jute, KeeperState,
    MultiOp, MultiResponse, OpCode, OpResult, ReplyHeader, Request, RequestHeader, Response, Stat,
    StatResponse, SyncResponse, WatcherEvent, WatcherType, WhoAmIResponse,
};
use tokio::sync::watch;

use crate::access::AccessControl;
use crate::acl;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbound::{put_frame, OutboundSender};
use crate::prep::{Prep, PrepRules};
use crate::quota::WriteLimits;
use crate::session::SessionTracker;
use crate::stats::{ConnStats, ServerStats};
use crate::storage::{files, Recovered, SnapshotJob, Storage};
use crate::tree::Tree;
use crate::txn::{Txn, TxnHeader};
use crate::watch::{Notification, WatchManager};

/// Identifies a client connection (and its watches).
pub type ConnId = u64;

/// What the writer task of a connection is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Write a complete frame (length prefix included), once every change up
    /// to zxid `after` is on disk.
    Frame { frame: Bytes, after: i64 },
    /// Flush what is queued, then close the connection.
    Close(String),
}

/// A connected client, as the core knows it.
#[derive(Debug)]
pub struct Conn {
    pub addr: SocketAddr,
    /// 0 until the handshake has attached a session.
    pub session_id: i64,
    pub timeout_ms: i32,
    /// Who the client has proven to be: `ip:<address>` plus what addauth added.
    pub identities: Vec<Id>,
    pub out: OutboundSender,
    pub stats: ConnStats,
    /// The SASL exchange, once the client has started one.
    pub sasl: Option<Box<crate::auth::SaslState>>,
    /// Counts the bytes queued to this client.
    metrics: Arc<Metrics>,
}

impl Conn {
    /// Queues a frame that shows the state as of zxid `after`: it goes out
    /// only once that zxid is durable.
    fn send(&self, frame: Bytes, after: i64) {
        // Never waits: a connection whose queue is full or closed is being
        // cut off or going away; nothing to do here but not count it.
        let size = frame.len();
        if self.out.send_frame(frame, after) {
            self.metrics.add_sent(size);
        }
    }

    /// Queues a frame whose body `write` encodes straight into the
    /// connection's queue (no buffer of its own).
    fn send_with(&self, after: i64, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(size) = self.out.send_with(after, |out| put_frame(out, write)) {
            self.metrics.add_sent(size);
        }
    }
}

/// The requests of one batch, counted once the batch is done.
#[derive(Default)]
struct Done {
    /// How many of each type (few types per batch: a short list).
    per_op: Vec<(OpCode, u64)>,
    total: u64,
    /// The type and xid of the last one.
    last: Option<(OpCode, i32)>,
}

impl Done {
    fn add(&mut self, op: OpCode, xid: i32) {
        match self.per_op.iter_mut().find(|(seen, _)| *seen == op) {
            Some((_, n)) => *n += 1,
            None => self.per_op.push((op, 1)),
        }
        self.total += 1;
        self.last = Some((op, xid));
    }
}

/// What the connection should do after a request.
#[derive(Debug)]
pub enum Action {
    /// Nothing more (the reply, if any, has been queued).
    Continue,
    /// Close the connection once the queued replies are written.
    Close(String),
}

/// The outcome of a handshake.
#[derive(Debug)]
pub enum Handshake {
    /// The session is attached; the response is queued.
    Attached,
    /// The session is refused; the response is queued, then close.
    Refused(String),
    /// Close without answering (a client ahead of this server).
    Dropped(String),
}

pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The whole state of a server.
pub struct Core {
    pub config: Arc<Config>,
    pub tree: Tree,
    pub sessions: SessionTracker,
    pub watches: WatchManager,
    pub conns: HashMap<ConnId, Conn, RandomState>,
    /// The connection each session is attached to, if any.
    session_conns: HashMap<i64, ConnId, RandomState>,
    pub last_zxid: i64,
    pub stats: ServerStats,
    started: Instant,
    next_conn_id: ConnId,
    /// The write-ahead log and snapshots.
    storage: Storage,
    /// The highest zxid on disk: frames wait for it (see [`Outbound`]).
    durable: Arc<watch::Sender<i64>>,
    /// Counters for `/metrics` and `mntr` that `srst` does not reset.
    pub metrics: Arc<Metrics>,
    /// Who may connect; checked by the accept loop.
    pub access: Arc<AccessControl>,
    /// Set by a graceful stop: requests and handshakes arriving from then on
    /// are not processed (their connection closes without a reply), so every
    /// change applied gets its reply out before the connection closes.
    pub draining: bool,
}

impl Core {
    /// A server that continues from what was recovered from its data folder,
    /// logging every change to `storage`.
    ///
    /// The zxid epoch is bumped, as ZooKeeper does on every start, so new
    /// zxids are above anything a client saw before the restart. Recovered
    /// sessions get their full timeout again, counted from now: their clients
    /// may come back and find their ephemeral nodes.
    pub fn restore(
        config: Arc<Config>,
        secret: [u8; 16],
        recovered: Recovered,
        storage: Storage,
        durable: Arc<watch::Sender<i64>>,
        metrics: Arc<Metrics>,
        access: Arc<AccessControl>,
    ) -> Core {
        let last_zxid = (files::epoch(recovered.last_zxid) + 1) << 32;
        durable.send_replace(last_zxid);
        let sessions = SessionTracker::new(
            crate::session::bucket_ms(config.tick_time_ms),
            config.server_id,
            secret,
            wall_clock_ms(),
        );
        let mut core = Core {
            config,
            tree: recovered.tree,
            sessions,
            watches: WatchManager::default(),
            conns: HashMap::default(),
            session_conns: HashMap::default(),
            last_zxid,
            stats: ServerStats::default(),
            started: Instant::now(),
            next_conn_id: 1,
            storage,
            durable,
            metrics,
            access,
            draining: false,
        };
        let now = core.now_ms();
        for (id, timeout_ms) in recovered.sessions {
            core.sessions.add(id, timeout_ms, now);
        }
        core
    }

    /// Watches the durable zxid (connections wait on it before sending).
    pub fn durable_zxid(&self) -> watch::Receiver<i64> {
        self.durable.subscribe()
    }

    /// A handle for a connection to flush the changes its requests log.
    pub fn log_flusher(&self) -> crate::storage::wal::LogFlusher {
        self.storage.flusher()
    }

    /// Writes what is queued to the log and stops the writer.
    pub fn close_storage(&mut self) {
        self.storage.close();
    }

    /// The zxid the next change gets: the next counter value, or the first of
    /// a new epoch when the 32-bit counter runs out.
    fn next_zxid(&self) -> i64 {
        if files::counter(self.last_zxid) == 0xffff_ffff {
            ((files::epoch(self.last_zxid) + 1) << 32) | 1
        } else {
            self.last_zxid + 1
        }
    }

    /// Hands an applied change to the log and starts a snapshot when one is
    /// due.
    fn log(&mut self, header: &TxnHeader, txn: &Txn) {
        self.storage.log(header, txn);
        if self.storage.snapshot_due() {
            // The only part of a snapshot done under the lock: an O(1) clone
            // of the node map and a copy of the session table.
            let started = Instant::now();
            let job = SnapshotJob {
                zxid: self.last_zxid,
                nodes: self.tree.frozen(),
                sessions: self.sessions.iter().map(|s| (s.id, s.timeout_ms)).collect(),
                frozen_in: started.elapsed(),
            };
            self.storage.start_snapshot(job);
        }
    }

    /// Milliseconds on the monotonic clock that session expiry uses.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn limits(&self) -> WriteLimits {
        WriteLimits {
            enforce_quota: self.config.enforce_quota,
            max_children: self.config.max_children_per_node,
        }
    }

    fn rules(&self) -> PrepRules {
        PrepRules {
            ttl_enabled: self.config.ttl_enabled,
        }
    }

    /// The open connections in the order they were opened, as `cons`,
    /// `stat` and the admin server list them.
    pub fn conns_in_order(&self) -> Vec<&Conn> {
        let mut conns: Vec<_> = self.conns.iter().collect();
        conns.sort_by_key(|(id, _)| **id);
        conns.into_iter().map(|(_, conn)| conn).collect()
    }

    pub fn register_conn(&mut self, addr: SocketAddr, out: OutboundSender) -> ConnId {
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let identities = vec![Id::new("ip", addr.ip().to_canonical().to_string())];
        self.conns.insert(
            id,
            Conn {
                addr,
                session_id: 0,
                timeout_ms: 0,
                identities,
                out,
                stats: ConnStats::new(),
                sasl: None,
                metrics: self.metrics.clone(),
            },
        );
        id
    }

    /// Forgets a closed connection and its watches; its session lives on until
    /// it expires or the client comes back.
    pub fn unregister_conn(&mut self, conn_id: ConnId) {
        self.watches.remove_watcher(conn_id);
        if let Some(conn) = self.conns.remove(&conn_id) {
            if self.session_conns.get(&conn.session_id) == Some(&conn_id) {
                self.session_conns.remove(&conn.session_id);
            }
        }
    }

    /// Stamps the next zxid on a change, applies it, and queues the
    /// notifications it causes. Returns the header it was applied with.
    pub fn commit(&mut self, session_id: i64, txn: &Txn) -> TxnHeader {
        let header = TxnHeader {
            zxid: self.next_zxid(),
            time: wall_clock_ms(),
            session_id,
        };
        self.apply(&header, txn);
        self.log(&header, txn);
        header
    }

    fn apply(&mut self, header: &TxnHeader, txn: &Txn) {
        let events = match self.tree.apply(header, txn) {
            Ok(events) => events,
            Err(err) => {
                // Preparation checked everything under the same lock, so this
                // would be a bug: report it loudly rather than hide it.
                tracing::error!(zxid = header.zxid, ?txn, %err, "change record could not be applied");
                Vec::new()
            }
        };
        self.last_zxid = header.zxid;
        match txn {
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                let now = self.now_ms();
                self.sessions.add(*session_id, *timeout_ms, now);
            }
            Txn::CloseSession { session_id } => {
                self.sessions.remove(*session_id);
            }
            _ => {}
        }
        for event in &events {
            for note in self.watches.trigger(event) {
                self.notify(header.zxid, &note);
            }
        }
    }

    fn notify(&mut self, zxid: i64, note: &Notification) {
        if let Some(conn) = self.conns.get_mut(&note.watcher) {
            let event = WatcherEvent {
                event_type: note.event_type as i32,
                state: KeeperState::SyncConnected as i32,
                path: note.path.clone(),
            };
            conn.stats.sent += 1;
            conn.send(notification_frame(zxid, &event), self.last_zxid);
            self.stats.packets_sent += 1;
        }
    }

    /// Handles the first frame of a connection.
    pub fn connect(&mut self, conn_id: ConnId, request: &ConnectRequest) -> Handshake {
        if self.draining {
            return Handshake::Dropped("server shutting down".into());
        }
        let addr = match self.conns.get(&conn_id) {
            Some(conn) => conn.addr,
            None => return Handshake::Dropped("connection already closed".into()),
        };
        if request.last_zxid_seen > self.last_zxid {
            return Handshake::Dropped(format!(
                "refusing session 0x{:x} from {addr}: it has seen zxid 0x{:x}, our last zxid is 0x{:x}",
                request.session_id, request.last_zxid_seen, self.last_zxid
            ));
        }
        let timeout_ms = self.config.negotiate_timeout(request.timeout);
        let session_id = if request.session_id == 0 {
            let id = self.sessions.allocate_id();
            self.commit(
                id,
                &Txn::CreateSession {
                    session_id: id,
                    timeout_ms,
                },
            );
            tracing::debug!(session = format!("0x{id:x}"), %addr, timeout_ms, "new session");
            id
        } else {
            let id = request.session_id;
            // A client that re-attaches takes its session from any older connection.
            if let Some(old) = self.session_conns.remove(&id) {
                if old != conn_id {
                    if let Some(conn) = self.conns.get(&old) {
                        let _ = conn
                            .out
                            .send(Outbound::Close("session re-attached elsewhere".into()));
                    }
                }
            }
            let known = self.sessions.get(id).is_some();
            let password_ok = request.passwd.as_ref() == self.sessions.password(id);
            if !known || !password_ok {
                let reason = if known {
                    "wrong password"
                } else {
                    "session expired or unknown"
                };
                self.send_connect_response(conn_id, request, 0, 0, [0; 16]);
                return Handshake::Refused(format!("session 0x{id:x} from {addr}: {reason}"));
            }
            let now = self.now_ms();
            self.sessions.touch(id, now);
            id
        };
        let passwd = self.sessions.password(session_id);
        self.send_connect_response(conn_id, request, timeout_ms, session_id, passwd);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.session_id = session_id;
            conn.timeout_ms = timeout_ms;
        }
        self.session_conns.insert(session_id, conn_id);
        Handshake::Attached
    }

    fn send_connect_response(
        &mut self,
        conn_id: ConnId,
        request: &ConnectRequest,
        timeout: i32,
        session_id: i64,
        passwd: [u8; 16],
    ) {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id,
            passwd: Bytes::copy_from_slice(&passwd),
            // Old clients that sent no flag get none back.
            read_only: request.read_only.map(|_| false),
        };
        if let Some(conn) = self.conns.get(&conn_id) {
            conn.send(build_frame(|out| response.encode(out)), self.last_zxid);
        }
    }

    /// Ends a session: its ephemeral nodes go in one change, watchers are told,
    /// and its connection (if any) is closed.
    pub fn close_session(&mut self, session_id: i64, reason: &str) -> TxnHeader {
        let header = self.commit(session_id, &Txn::CloseSession { session_id });
        if let Some(conn_id) = self.session_conns.remove(&session_id) {
            if let Some(conn) = self.conns.get(&conn_id) {
                let _ = conn.out.send(Outbound::Close(reason.to_string()));
            }
        }
        header
    }

    /// Expires every session whose deadline has passed.
    pub fn expire_sessions(&mut self) -> usize {
        self.expire_sessions_at(self.now_ms())
    }

    /// Expires every session whose deadline is at or before `now_ms` on the
    /// monotonic clock of [`Core::now_ms`] (tests pass a time ahead of it).
    pub fn expire_sessions_at(&mut self, now_ms: u64) -> usize {
        let now = now_ms;
        let expired = self.sessions.expired(now);
        for id in &expired {
            tracing::info!(session = format!("0x{id:x}"), "session expired");
            self.close_session(*id, "session expired");
        }
        expired.len()
    }

    /// Removes empty containers and expired TTL nodes (ZooKeeper's
    /// ContainerManager), each as a change of its own.
    pub fn remove_expired_containers(&mut self) -> usize {
        self.remove_expired_containers_at(wall_clock_ms())
    }

    /// Removes the containers and TTL nodes due at wall-clock time `wall_ms`
    /// (tests pass a time ahead of the clock).
    pub fn remove_expired_containers_at(&mut self, wall_ms: i64) -> usize {
        let doomed = self.tree.expired_containers(wall_ms);
        let mut removed = 0;
        for path in doomed {
            let result = Prep::new(&self.tree, 0, &[], self.rules()).delete_container(&path);
            if let Ok(txn) = result {
                self.commit(0, &txn);
                removed += 1;
            }
        }
        removed
    }

    /// Handles one request of an attached connection: queues its reply (and
    /// any notifications) and says whether to go on.
    pub fn process(&mut self, conn_id: ConnId, header: RequestHeader, request: Request) -> Action {
        self.process_batch(conn_id, std::iter::once((header, request)))
    }

    /// Handles the requests a connection sent, in order, stopping at the
    /// first that closes it. The clock is read once when the batch starts and
    /// once when it ends: every request of the batch counts the batch's time
    /// as its latency (ZooKeeper too counts from the moment a request was
    /// read off the socket to its reply).
    pub fn process_batch(
        &mut self,
        conn_id: ConnId,
        requests: impl IntoIterator<Item = (RequestHeader, Request)>,
    ) -> Action {
        let started = Instant::now();
        let now_ms = started.saturating_duration_since(self.started).as_millis() as u64;
        let mut done = Done::default();
        let mut action = Action::Continue;
        for (header, request) in requests {
            action = self.process_one(conn_id, header, request, now_ms, &mut done);
            if let Action::Close(_) = action {
                break;
            }
            // A connection cut off for not reading runs none of the
            // requests it still has buffered.
            if self.conns.get(&conn_id).is_some_and(|c| c.out.is_cut_off()) {
                action = Action::Close("closed by the server".into());
                break;
            }
        }
        self.record_done(conn_id, started, &done);
        action
    }

    fn process_one(
        &mut self,
        conn_id: ConnId,
        header: RequestHeader,
        request: Request,
        now_ms: u64,
        done: &mut Done,
    ) -> Action {
        if self.draining {
            return Action::Close("server shutting down".into());
        }
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Action::Close("connection already closed".into());
        };
        let session_id = conn.session_id;
        conn.stats.received += 1;
        self.stats.packets_received += 1;
        if !self.sessions.touch(session_id, now_ms) {
            return Action::Close(format!("session 0x{session_id:x} is gone"));
        }
        if !matches!(request, Request::Auth(_) | Request::Sasl(_)) {
            if let Some(action) = self.enforce_auth(conn_id, header.xid) {
                return action;
            }
        }
        let op = request.op_code();
        let result = match request {
            Request::Ping => Ok(Response::Empty),
            Request::Sasl(sasl) => return self.sasl_request(conn_id, header.xid, &sasl.token),
            Request::Auth(auth) => {
                let super_digest = self.config.super_digest.as_deref();
                match acl::authenticate(&auth.scheme, &auth.auth, super_digest) {
                    Ok(ids) => {
                        if let Some(conn) = self.conns.get_mut(&conn_id) {
                            for id in ids {
                                if !conn.identities.contains(&id) {
                                    conn.identities.push(id);
                                }
                            }
                        }
                        self.send_reply(conn_id, header.xid, 0, 0, &Response::Empty);
                        done.add(op, header.xid);
                        return Action::Continue;
                    }
                    Err(code) => {
                        self.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
                        self.send_reply(conn_id, header.xid, 0, code.code(), &Response::Empty);
                        return Action::Close(format!(
                            "authentication failed for scheme {:?}",
                            auth.scheme
                        ));
                    }
                }
            }
            Request::GetData(r) => {
                if let Err(code) = self.send_data(conn_id, header.xid, &r.path, r.watch) {
                    let zxid = self.last_zxid;
                    self.send_reply(conn_id, header.xid, zxid, code.code(), &Response::Empty);
                }
                done.add(op, header.xid);
                return Action::Continue;
            }
            Request::GetChildren(r) => {
                self.send_children(conn_id, header.xid, &r.path, r.watch, false);
                done.add(op, header.xid);
                return Action::Continue;
            }
            Request::GetChildren2(r) => {
                self.send_children(conn_id, header.xid, &r.path, r.watch, true);
                done.add(op, header.xid);
                return Action::Continue;
            }
            Request::CloseSession => {
                let txn_header = self.close_session_keep_conn(session_id);
                self.send_reply(conn_id, header.xid, txn_header.zxid, 0, &Response::Empty);
                done.add(op, header.xid);
                return Action::Close("client closed its session".into());
            }
            request => self.execute(conn_id, session_id, request),
        };
        done.add(op, header.xid);
        // After a write this is the write's own zxid (refused writes take one
        // too); reads answer with the last applied zxid, as ZooKeeper does.
        let zxid = self.last_zxid;
        self.finish_reply(conn_id, header.xid, zxid, result);
        Action::Continue
    }

    /// Counts the requests of a batch in the statistics and metrics.
    fn record_done(&mut self, conn_id: ConnId, started: Instant, done: &Done) {
        let Some((last_op, last_xid)) = done.last else {
            return;
        };
        let micros = started.elapsed().as_micros() as u64;
        self.stats.latency.record_n(micros, done.total);
        for (op, n) in &done.per_op {
            self.metrics.record_requests(*op, micros, *n);
        }
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.stats
                .record(last_op, last_xid, micros, done.total, self.last_zxid);
        }
    }

    fn finish_reply(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        zxid: i64,
        result: Result<Response, ErrorCode>,
    ) {
        match result {
            Ok(body) => self.send_reply(conn_id, xid, zxid, 0, &body),
            Err(code) => self.send_reply(conn_id, xid, zxid, code.code(), &Response::Empty),
        }
    }

    /// Answers a request that never reached processing (an unknown opcode)
    /// with an error; like ZooKeeper, with zxid -1.
    pub fn reply_error(&mut self, conn_id: ConnId, xid: i32, code: ErrorCode) {
        self.send_reply(conn_id, xid, -1, code.code(), &Response::Empty);
    }

    fn send_reply(&mut self, conn_id: ConnId, xid: i32, zxid: i64, err: i32, body: &Response) {
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.stats.sent += 1;
            conn.send_with(self.last_zxid, |out| {
                ReplyHeader { xid, zxid, err }.encode(out);
                body.encode(out);
            });
            self.stats.packets_sent += 1;
        }
    }

    /// Answers getData by encoding the node's data straight into the
    /// connection's queue: the hottest read takes no reference to the data
    /// (a shared counter the threads would fight over) and builds no reply.
    fn send_data(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        path: &str,
        watch: bool,
    ) -> Result<(), ErrorCode> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        acl::check(self.tree.acl(node), perms::READ, &conn.identities)?;
        let zxid = self.last_zxid;
        conn.stats.sent += 1;
        conn.send_with(zxid, |out| {
            ReplyHeader { xid, zxid, err: 0 }.encode(out);
            canopy_protocol::jute::encode_buffer(out, node.data());
            node.stat().encode(out);
        });
        self.stats.packets_sent += 1;
        if watch {
            self.watches.add_data_watch(path, conn_id);
        }
        Ok(())
    }

    /// Answers getChildren (and getChildren2, `with_stat`) by encoding the
    /// child names straight from the tree into the connection's queue: a
    /// registry's consumers re-list big provider folders after every change,
    /// and a String per name was most of that cost.
    fn send_children(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        path: &str,
        watch: bool,
        with_stat: bool,
    ) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let zxid = self.last_zxid;
        let node = self
            .tree
            .get(path)
            .ok_or(ErrorCode::NoNode)
            .and_then(|node| {
                acl::check(self.tree.acl(node), perms::READ, &conn.identities)?;
                Ok(node)
            });
        conn.stats.sent += 1;
        self.stats.packets_sent += 1;
        let node = match node {
            Ok(node) => node,
            Err(code) => {
                conn.send_with(zxid, |out| {
                    ReplyHeader {
                        xid,
                        zxid,
                        err: code.code(),
                    }
                    .encode(out);
                });
                return;
            }
        };
        let tree = &self.tree;
        conn.send_with(zxid, |out| {
            ReplyHeader { xid, zxid, err: 0 }.encode(out);
            canopy_protocol::jute::encode_strings(
                out,
                node.num_children(),
                tree.child_name_bytes(node),
            );
            if with_stat {
                node.stat().encode(out);
            }
        });
        if watch {
            self.watches.add_child_watch(path, conn_id);
        }
    }

    /// closeSession from the client itself: the connection is closed by the
    /// caller after the reply is written.
    fn close_session_keep_conn(&mut self, session_id: i64) -> TxnHeader {
        self.session_conns.remove(&session_id);
        self.commit(session_id, &Txn::CloseSession { session_id })
    }

    /// Runs a request other than ping, auth and closeSession.
    fn execute(
        &mut self,
        conn_id: ConnId,
        session_id: i64,
        request: Request,
    ) -> Result<Response, ErrorCode> {
        // The connection's identities are lent out for the request rather
        // than cloned (strings) for every request; nothing a request runs
        // reads them from the connection.
        let identities = match self.conns.get_mut(&conn_id) {
            Some(conn) => std::mem::take(&mut conn.identities),
            None => Vec::new(),
        };
        let result = self.execute_as(conn_id, session_id, &identities, request);
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.identities = identities;
        }
        result
    }

    fn execute_as(
        &mut self,
        conn_id: ConnId,
        session_id: i64,
        identities: &[Id],
        request: Request,
    ) -> Result<Response, ErrorCode> {
        let rules = self.rules();
        match request {
            Request::Create(r) => self.write_create(session_id, identities, OpCode::Create, &r, -1),
            Request::Create2(r) => {
                self.write_create(session_id, identities, OpCode::Create2, &r, -1)
            }
            Request::CreateContainer(r) => {
                self.write_create(session_id, identities, OpCode::CreateContainer, &r, -1)
            }
            Request::CreateTtl(r) => {
                let request = CreateRequest {
                    path: r.path,
                    data: r.data,
                    acl: r.acl,
                    flags: r.flags,
                };
                self.write_create(session_id, identities, OpCode::CreateTtl, &request, r.ttl)
            }
            Request::Delete(r) => {
                let prepared = Prep::new(&self.tree, session_id, identities, rules).delete(&r);
                self.write(session_id, prepared, |_, _| Response::Empty)
            }
            Request::DeleteContainer(r) => {
                let prepared =
                    Prep::new(&self.tree, session_id, identities, rules).delete_container(&r.path);
                self.write(session_id, prepared, |_, _| Response::Empty)
            }
            Request::SetData(r) => {
                let prepared = Prep::new(&self.tree, session_id, identities, rules)
                    .with_limits(self.limits())
                    .set_data(&r);
                self.write(session_id, prepared, |core, _| {
                    Response::Stat(StatResponse {
                        stat: core.stat_of(&r.path),
                    })
                })
            }
            Request::SetAcl(r) => {
                let prepared = Prep::new(&self.tree, session_id, identities, rules).set_acl(&r);
                self.write(session_id, prepared, |core, _| {
                    Response::Stat(StatResponse {
                        stat: core.stat_of(&r.path),
                    })
                })
            }
            Request::Check(r) => {
                // A check outside a multi is a read in ZooKeeper 3.9
                // (FinalRequestProcessor's handleCheckVersionRequest): no
                // zxid, READ permission, and a reply with no body. Found by
                // the session_ops fuzz target: the reply had a Stat that
                // ZooKeeper's (and our own) client does not expect.
                let node = self.readable(&r.path, identities)?;
                if r.version != -1 && r.version != node.version {
                    return Err(ErrorCode::BadVersion);
                }
                Ok(Response::Empty)
            }
            Request::Multi(multi) => {
                let (txn, _ok) = Prep::new(&self.tree, session_id, identities, rules)
                    .with_limits(self.limits())
                    .multi(&multi.ops);
                Ok(Response::Multi(
                    self.commit_multi(session_id, &txn, &multi.ops),
                ))
            }
            Request::Reconfig(_) => {
                // A standalone server has no ensemble to reconfigure; ZooKeeper
                // answers ReconfigDisabled unless reconfig is enabled.
                self.write(session_id, Err(ErrorCode::ReconfigDisabled), |_, _| {
                    Response::Empty
                })
            }
            Request::Sasl(_) | Request::CreateSession(_) => Err(ErrorCode::Unimplemented),
            read => self.read(conn_id, session_id, identities, read),
        }
    }

    fn write_create(
        &mut self,
        session_id: i64,
        identities: &[Id],
        op: OpCode,
        request: &CreateRequest,
        ttl: i64,
    ) -> Result<Response, ErrorCode> {
        let prepared = Prep::new(&self.tree, session_id, identities, self.rules())
            .with_limits(self.limits())
            .create(op, request, ttl);
        self.write(session_id, prepared, move |core, txn| {
            let Txn::Create { path, .. } = txn else {
                return Response::Empty;
            };
            if op == OpCode::Create {
                Response::Create(CreateResponse { path: path.clone() })
            } else {
                Response::Create2(Create2Response {
                    path: path.clone(),
                    stat: core.stat_of(path),
                })
            }
        })
    }

    /// Commits a prepared write (or its refusal, which also takes a zxid) and
    /// builds the reply body from the state right after it.
    fn write(
        &mut self,
        session_id: i64,
        prepared: Result<Txn, ErrorCode>,
        reply: impl FnOnce(&Core, &Txn) -> Response,
    ) -> Result<Response, ErrorCode> {
        match prepared {
            Ok(txn) => {
                self.commit(session_id, &txn);
                Ok(reply(self, &txn))
            }
            Err(code) => {
                self.commit(session_id, &Txn::Error { code: code.code() });
                Err(code)
            }
        }
    }

    /// Commits a multi part by part (one zxid for all), collecting each part's
    /// result as ZooKeeper reports it.
    fn commit_multi(&mut self, session_id: i64, txn: &Txn, ops: &[MultiOp]) -> MultiResponse {
        let header = TxnHeader {
            zxid: self.next_zxid(),
            time: wall_clock_ms(),
            session_id,
        };
        let Txn::Multi(parts) = txn else {
            return MultiResponse::default();
        };
        let mut results = Vec::with_capacity(parts.len());
        for (part, op) in parts.iter().zip(ops) {
            self.apply(&header, part);
            results.push(match part {
                Txn::Error { code } => OpResult::Error { err: *code },
                Txn::Create { path, .. } => match op.op_code() {
                    OpCode::Create => OpResult::Create { path: path.clone() },
                    other => OpResult::Create2 {
                        op: other,
                        path: path.clone(),
                        stat: self.stat_of(path),
                    },
                },
                Txn::Delete { .. } => OpResult::Delete,
                Txn::SetData { path, .. } => OpResult::SetData {
                    stat: self.stat_of(path),
                },
                Txn::Check { .. } => OpResult::Check,
                _ => OpResult::Error {
                    err: ErrorCode::SystemError.code(),
                },
            });
        }
        // An empty multi still takes its zxid.
        self.last_zxid = header.zxid;
        self.log(&header, txn);
        MultiResponse { results }
    }

    fn stat_of(&self, path: &str) -> Stat {
        self.tree.get(path).map(|n| n.stat()).unwrap_or_default()
    }

    /// Requests that change nothing in the tree.
    fn read(
        &mut self,
        conn_id: ConnId,
        session_id: i64,
        identities: &[Id],
        request: Request,
    ) -> Result<Response, ErrorCode> {
        match request {
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                // ZooKeeper 3.8 (the reference the tests run against) does not
                // check ACLs on exists; 3.9 checks READ.
                // An exists watch is set whether or not the node is there.
                if r.watch {
                    self.watches.add_data_watch(&r.path, conn_id);
                }
                let node = self.tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                Ok(Response::Stat(StatResponse { stat: node.stat() }))
            }
            Request::GetAcl(r) => {
                let node = self.tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                let node_acl = self.tree.acl(node);
                acl::check(node_acl, perms::READ | perms::ADMIN, identities)?;
                let acl = if acl::allows(node_acl, perms::ADMIN, identities) {
                    node_acl.as_ref().clone()
                } else {
                    acl::redact_digests(node_acl)
                };
                Ok(Response::GetAcl(GetAclResponse {
                    acl,
                    stat: node.stat(),
                }))
            }
            Request::Sync(r) => Ok(Response::Sync(SyncResponse { path: r.path })),
            Request::GetAllChildrenNumber(r) => {
                self.readable(&r.path, identities)?;
                Ok(Response::GetAllChildrenNumber(
                    GetAllChildrenNumberResponse {
                        total_number: self.tree.descendant_count(&r.path) as i32,
                    },
                ))
            }
            Request::GetEphemerals(r) => {
                let prefix = r.prefix_path.trim();
                let ephemerals = self
                    .tree
                    .ephemerals_of(session_id)
                    .into_iter()
                    .filter(|p| prefix.is_empty() || prefix == "/" || p.starts_with(&r.prefix_path))
                    .collect();
                Ok(Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals,
                }))
            }
            Request::WhoAmI => {
                let client_info = identities
                    .iter()
                    .filter_map(|id| match id.scheme.as_str() {
                        "digest" => Some(ClientInfo {
                            auth_scheme: id.scheme.clone(),
                            user: id.id.split(':').next().unwrap_or("").to_string(),
                        }),
                        "super" => None,
                        _ => Some(ClientInfo {
                            auth_scheme: id.scheme.clone(),
                            user: id.id.clone(),
                        }),
                    })
                    .collect();
                Ok(Response::WhoAmI(WhoAmIResponse { client_info }))
            }
            Request::MultiRead(multi) => {
                let mut results = Vec::with_capacity(multi.ops.len());
                for op in &multi.ops {
                    let result = match op {
                        MultiOp::GetChildren(r) => self
                            .get_children(conn_id, identities, &r.path, r.watch)
                            .map(|(children, _)| OpResult::GetChildren { children }),
                        MultiOp::GetData(r) => self
                            .get_data(conn_id, identities, &r.path, r.watch)
                            .map(|(data, stat)| OpResult::GetData { data, stat }),
                        // ZooKeeper fails the whole request on a write inside multiRead.
                        _ => return Err(ErrorCode::MarshallingError),
                    };
                    results
                        .push(result.unwrap_or_else(|code| OpResult::Error { err: code.code() }));
                }
                Ok(Response::Multi(MultiResponse { results }))
            }
            Request::SetWatches(r) => {
                self.set_watches(
                    conn_id,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &[],
                    &[],
                );
                Ok(Response::Empty)
            }
            Request::SetWatches2(r) => {
                self.set_watches(
                    conn_id,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &r.persistent_watches,
                    &r.persistent_recursive_watches,
                );
                Ok(Response::Empty)
            }
            Request::AddWatch(r) => {
                let mode = AddWatchMode::from_i32(r.mode).ok_or(ErrorCode::BadArguments)?;
                self.watches.add_persistent(
                    &r.path,
                    conn_id,
                    mode == AddWatchMode::PersistentRecursive,
                );
                // ZooKeeper answers addWatch with an ErrorResponse body of 0.
                Ok(Response::AddWatch(ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => {
                let kind = WatcherType::from_i32(r.watcher_type).ok_or(ErrorCode::BadArguments)?;
                if self.watches.contains(&r.path, conn_id, kind) {
                    Ok(Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::RemoveWatches(r) => {
                let kind = WatcherType::from_i32(r.watcher_type).ok_or(ErrorCode::BadArguments)?;
                if self.watches.remove(&r.path, conn_id, kind) {
                    Ok(Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            // Never here: getData, getChildren and getChildren2 are encoded
            // straight from the tree by `process_one` (`send_data`,
            // `send_children`), which also answers ping, auth and
            // closeSession; writes are `execute_as`'s.
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    /// The node at `path`, if it exists and the identities may read it.
    fn readable(&self, path: &str, identities: &[Id]) -> Result<&crate::tree::Node, ErrorCode> {
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        acl::check(self.tree.acl(node), perms::READ, identities)?;
        Ok(node)
    }

    fn get_data(
        &mut self,
        conn_id: ConnId,
        identities: &[Id],
        path: &str,
        watch: bool,
    ) -> Result<(Option<Bytes>, Stat), ErrorCode> {
        let node = self.readable(path, identities)?;
        let result = (node.data_bytes(), node.stat());
        if watch {
            self.watches.add_data_watch(path, conn_id);
        }
        Ok(result)
    }

    fn get_children(
        &mut self,
        conn_id: ConnId,
        identities: &[Id],
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        let node = self.readable(path, identities)?;
        let result = (
            self.tree.child_names(node).map(str::to_string).collect(),
            node.stat(),
        );
        if watch {
            self.watches.add_child_watch(path, conn_id);
        }
        Ok(result)
    }

    /// Re-arms a reconnecting client's watches, firing at once those whose
    /// condition came true after `relative_zxid` (ZooKeeper's setWatches).
    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conn_id: ConnId,
        relative_zxid: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) {
        use canopy_protocol::EventType;
        let mut missed = Vec::new();
        for path in data {
            match self.tree.get(path) {
                None => missed.push((EventType::NodeDeleted, path)),
                Some(node) if node.mzxid > relative_zxid => {
                    missed.push((EventType::NodeDataChanged, path))
                }
                Some(_) => self.watches.add_data_watch(path, conn_id),
            }
        }
        for path in exist {
            match self.tree.get(path) {
                Some(_) => missed.push((EventType::NodeCreated, path)),
                None => self.watches.add_data_watch(path, conn_id),
            }
        }
        for path in child {
            match self.tree.get(path) {
                None => missed.push((EventType::NodeDeleted, path)),
                Some(node) if node.pzxid > relative_zxid => {
                    missed.push((EventType::NodeChildrenChanged, path))
                }
                Some(_) => self.watches.add_child_watch(path, conn_id),
            }
        }
        for path in persistent {
            self.watches.add_persistent(path, conn_id, false);
        }
        for path in recursive {
            self.watches.add_persistent(path, conn_id, true);
        }
        // These events come from no change record: ZooKeeper sends them with
        // zxid -1.
        for (event_type, path) in missed {
            self.notify(
                -1,
                &Notification {
                    watcher: conn_id,
                    event_type,
                    path: path.clone(),
                },
            );
        }
    }
}
