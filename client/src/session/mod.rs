//! The session: one task per client that owns the connection, numbers and
//! pipelines requests, matches replies, pings, routes notifications and,
//! when the connection drops, re-attaches the same session to another server
//! before it expires.
//!
//! # Layout
//! - [`connection`]: one TCP connection (handshake, frame reader, writer task).
//! - [`depot`]: requests sent and not yet answered, matched in order.
//! - [`watch`]: who waits for which event; what to re-arm after a reconnect.
//! - [`xid`]: request numbering.
//!
//! The task is the only owner of all that state, so none of it needs a lock;
//! client handles talk to it through a channel of [`Command`]s and read the
//! little they need synchronously (state, session id) from [`Shared`].
//!
//! # Life of a session
//! `Connected` → (connection lost) `Disconnected` → (re-attached within the
//! timeout) `Connected` again, with auth data re-sent and every watch re-armed
//! with setWatches2 (changes the client missed fire at once); or → (the server
//! says the session is gone) `Expired`, which is final: requests then fail with
//! [`Error::SessionExpired`] and a new session takes a new client. Requests
//! issued while disconnected wait and go out after the re-attach; requests that
//! were on the wire when the connection dropped fail with
//! [`Error::ConnectionLoss`], because nobody can tell whether they were applied.

pub(crate) mod connection;
pub(crate) mod depot;
pub(crate) mod watch;
pub(crate) mod xid;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{
    build_frame, xid as reserved, AuthPacket, ConnectRequest, ConnectResponse, ErrorCode, Jute,
    OpCode, ReplyHeader, Request, RequestHeader, Response, WatcherEvent, DEFAULT_MAX_FRAME,
};
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::connect_string::Chroot;
use crate::error::{Error, Result};
use connection::{ConnectError, Connection};
use depot::Depot;
use watch::{WatchAction, WatchTable};
use xid::XidGen;

/// The states a session goes through, as reported on the state stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Attached to a server that accepts writes.
    Connected,
    /// Attached to a read-only server (only when the client allowed it).
    ConnectedReadOnly,
    /// The connection dropped; the client is re-attaching the session.
    Disconnected,
    /// The session is gone on the server side (final).
    Expired,
    /// The server refused the credentials given with `add_auth` (final).
    AuthFailed,
    /// The client closed the session (final).
    Closed,
}

impl SessionState {
    /// True for the states after which the session can never come back.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Expired | SessionState::AuthFailed | SessionState::Closed
        )
    }

    /// True while requests can be answered.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            SessionState::Connected | SessionState::ConnectedReadOnly
        )
    }

    /// The error requests get once the session is in this terminal state.
    pub(crate) fn error(self) -> Error {
        match self {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        }
    }
}

/// Everything the session needs to know from the builder.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub hosts: Vec<(String, u16)>,
    pub chroot: Chroot,
    pub session_timeout: Duration,
    /// How long the first connect may take in total.
    pub connect_timeout: Duration,
    /// Whether a read-only server is acceptable.
    pub read_only: bool,
    /// Pause between full rounds over the hosts.
    pub reconnect_backoff: Backoff,
}

/// A request from a client handle to the session task.
pub(crate) enum Command {
    Request {
        request: Request,
        reply: oneshot::Sender<Result<Response>>,
        watch: Option<WatchAction>,
    },
    Auth {
        scheme: String,
        auth: Bytes,
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// What client handles read without a round trip to the task.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<SharedInner>,
}

#[derive(Debug)]
struct SharedInner {
    state: SessionState,
    listeners: Vec<mpsc::UnboundedSender<SessionState>>,
    session_id: i64,
    password: Bytes,
    timeout: Duration,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedInner> {
        // A panic while holding this lock cannot leave it inconsistent (every
        // update is a single assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> SessionState {
        self.lock().state
    }

    pub(crate) fn session(&self) -> (i64, Bytes, Duration) {
        let inner = self.lock();
        (inner.session_id, inner.password.clone(), inner.timeout)
    }

    /// A stream of every later state change.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<SessionState> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        if inner.state.is_terminal() {
            let _ = tx.send(inner.state);
        } else {
            inner.listeners.push(tx);
        }
        rx
    }

    fn set_state(&self, state: SessionState) {
        let mut inner = self.lock();
        if inner.state == state {
            return;
        }
        inner.state = state;
        inner.listeners.retain(|l| l.send(state).is_ok());
        if state.is_terminal() {
            inner.listeners.clear();
        }
    }
}

/// A request on the wire, waiting for its reply.
struct Pending {
    op: OpCode,
    reply: Option<oneshot::Sender<Result<Response>>>,
    watch: Option<WatchAction>,
}

/// Why serving a connection stopped.
enum End {
    /// The connection broke; the session may still be alive.
    Lost(String),
    /// The session is closed (by the client, or the server acknowledged it).
    Closed(Option<oneshot::Sender<()>>),
    AuthFailed,
}

/// How a reconnect ended.
enum Reconnect {
    Connected(Connection),
    Expired,
    Closed(Option<oneshot::Sender<()>>),
}

struct Session {
    config: SessionConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Shuffled once, then walked round-robin so each reconnect tries the
    /// next server.
    hosts: Vec<(String, u16)>,
    next_host: usize,
    session_id: i64,
    password: Bytes,
    timeout: Duration,
    last_zxid: i64,
    xids: XidGen,
    depot: Depot<Pending>,
    watches: WatchTable,
    /// Credentials to replay on every new connection, as ZooKeeper does.
    auths: Vec<(String, Bytes)>,
    /// add_auth callers waiting for the xid -4 reply (`None` for replays).
    auth_waiters: VecDeque<Option<oneshot::Sender<Result<()>>>>,
    /// Commands that arrived while disconnected.
    queued: VecDeque<Command>,
}

/// Establishes a new session and spawns its task.
pub(crate) async fn start(
    config: SessionConfig,
) -> Result<(Arc<Shared>, mpsc::UnboundedSender<Command>)> {
    let mut hosts = config.hosts.clone();
    hosts.shuffle(&mut rand::thread_rng());
    let shared = Arc::new(Shared {
        inner: Mutex::new(SharedInner {
            state: SessionState::Disconnected,
            listeners: Vec::new(),
            session_id: 0,
            password: Bytes::new(),
            timeout: config.session_timeout,
        }),
    });
    let (sender, commands) = mpsc::unbounded_channel();
    let mut session = Session {
        watches: WatchTable::new(config.chroot.clone()),
        timeout: config.session_timeout,
        config,
        shared: shared.clone(),
        commands,
        hosts,
        next_host: 0,
        session_id: 0,
        password: Bytes::from_static(&[0; 16]),
        last_zxid: 0,
        xids: XidGen::default(),
        depot: Depot::default(),
        auths: Vec::new(),
        auth_waiters: VecDeque::new(),
        queued: VecDeque::new(),
    };
    let deadline = Instant::now() + session.config.connect_timeout;
    let mut last_error = String::from("no attempt made");
    for round in 0.. {
        for _ in 0..session.hosts.len() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Connect(last_error));
            }
            let (host, port) = session.pick_host();
            let request = session.connect_request();
            let timeout = session.per_host_timeout().min(remaining);
            match Connection::open(&host, port, &request, timeout).await {
                Ok((conn, response)) => {
                    session.attach(&conn, &response);
                    tokio::spawn(session.run(conn));
                    return Ok((shared, sender));
                }
                Err(ConnectError::Io(e)) => last_error = e,
                Err(ConnectError::Expired) => last_error = format!("{host}:{port} refused"),
            }
        }
        let pause = session.config.reconnect_backoff.delay(round);
        if Instant::now() + pause >= deadline {
            return Err(Error::Connect(last_error));
        }
        tokio::time::sleep(pause).await;
    }
    unreachable!("the loop above only ends by returning")
}

impl Session {
    fn pick_host(&mut self) -> (String, u16) {
        let host = self.hosts[self.next_host % self.hosts.len()].clone();
        self.next_host = self.next_host.wrapping_add(1);
        host
    }

    /// ZooKeeper gives each host an equal share of the session timeout, so a
    /// full round over the hosts fits in one timeout.
    fn per_host_timeout(&self) -> Duration {
        let share = self.timeout / self.hosts.len().max(1) as u32;
        share.max(Duration::from_millis(250))
    }

    fn connect_request(&self) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout: i32::try_from(self.config.session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: self.session_id,
            passwd: self.password.clone(),
            read_only: Some(self.config.read_only),
        }
    }

    /// Records the session the server granted (or re-attached).
    fn attach(&mut self, conn: &Connection, response: &ConnectResponse) {
        self.session_id = response.session_id;
        self.password = response.passwd.clone();
        self.timeout = Duration::from_millis(response.timeout.max(1) as u64);
        {
            let mut inner = self.shared.lock();
            inner.session_id = self.session_id;
            inner.password = self.password.clone();
            inner.timeout = self.timeout;
        }
        tracing::debug!(
            session = format_args!("{:#x}", self.session_id),
            peer = %conn.peer,
            timeout_ms = response.timeout,
            "session attached"
        );
        self.shared.set_state(if response.read_only == Some(true) {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        });
    }

    async fn run(mut self, mut conn: Connection) {
        loop {
            let end = self.serve(&mut conn).await;
            drop(conn);
            match end {
                End::Lost(reason) => {
                    tracing::info!(
                        session = format_args!("{:#x}", self.session_id),
                        "connection lost: {reason}"
                    );
                    self.shared.set_state(SessionState::Disconnected);
                    self.fail_in_flight(Error::ConnectionLoss);
                    match self.reconnect().await {
                        Reconnect::Connected(next) => conn = next,
                        Reconnect::Expired => return self.finish(SessionState::Expired, None),
                        Reconnect::Closed(done) => return self.finish(SessionState::Closed, done),
                    }
                }
                End::Closed(done) => return self.finish(SessionState::Closed, done),
                End::AuthFailed => return self.finish(SessionState::AuthFailed, None),
            }
        }
    }

    /// Serves one connection until it breaks or the session closes.
    async fn serve(&mut self, conn: &mut Connection) -> End {
        let ping_every = self.timeout / 3;
        // ZooKeeper's client gives up on a silent connection after two
        // thirds of the timeout, leaving a third to find another server.
        let read_timeout = self.timeout * 2 / 3;
        let mut last_send = Instant::now();
        let mut last_recv = Instant::now();
        let mut closing: Option<(Instant, Option<oneshot::Sender<()>>)> = None;

        while let Some(command) = self.queued.pop_front() {
            match command {
                Command::Close { done } => closing = Some(self.begin_close(conn, Some(done))),
                command => self.send(conn, command),
            }
        }
        loop {
            let mut wake = (last_send + ping_every).min(last_recv + read_timeout);
            if let Some((deadline, _)) = &closing {
                wake = wake.min(*deadline);
            }
            tokio::select! {
                frame = conn.recv() => match frame {
                    Some(Ok(frame)) => {
                        last_recv = Instant::now();
                        match self.handle_frame(&frame) {
                            Ok(()) => {}
                            Err(End::Closed(_)) => {
                                return End::Closed(closing.take().and_then(|(_, done)| done));
                            }
                            Err(end) => return end,
                        }
                    }
                    Some(Err(e)) => return End::Lost(e),
                    None => return End::Lost("server closed the connection".into()),
                },
                command = self.commands.recv(), if closing.is_none() => {
                    match command {
                        None => closing = Some(self.begin_close(conn, None)),
                        Some(Command::Close { done }) => {
                            closing = Some(self.begin_close(conn, Some(done)));
                        }
                        Some(command) => self.send(conn, command),
                    }
                    last_send = Instant::now();
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if let Some((deadline, _)) = &closing {
                        if now >= *deadline {
                            return End::Closed(closing.take().and_then(|(_, done)| done));
                        }
                    }
                    if now >= last_recv + read_timeout {
                        return End::Lost(format!("no frame from the server for {read_timeout:?}"));
                    }
                    if now >= last_send + ping_every {
                        conn.send(build_frame(|out| Request::Ping.encode_frame(reserved::PING, out)));
                        last_send = now;
                    }
                }
            }
            if !conn.writable() {
                return End::Lost("write failed".into());
            }
        }
    }

    /// Sends closeSession; the task ends when it is answered, when the server
    /// hangs up, or after a short grace period.
    fn begin_close(
        &mut self,
        conn: &Connection,
        done: Option<oneshot::Sender<()>>,
    ) -> (Instant, Option<oneshot::Sender<()>>) {
        let xid = self.xids.next();
        conn.send(build_frame(|out| {
            Request::CloseSession.encode_frame(xid, out)
        }));
        self.depot.push(
            xid,
            Pending {
                op: OpCode::CloseSession,
                reply: None,
                watch: None,
            },
        );
        let grace = self.timeout.min(Duration::from_secs(2));
        (Instant::now() + grace, done)
    }

    fn send(&mut self, conn: &Connection, command: Command) {
        match command {
            Command::Request {
                request,
                reply,
                watch,
            } => {
                let xid = self.xids.next();
                let frame = build_frame(|out| request.encode_frame(xid, out));
                if frame.len() - 4 > DEFAULT_MAX_FRAME {
                    // The server would drop the whole connection for it.
                    let _ = reply.send(Err(Error::BadArguments(format!(
                        "request of {} bytes exceeds the server's {DEFAULT_MAX_FRAME}-byte limit",
                        frame.len() - 4
                    ))));
                    return;
                }
                conn.send(frame);
                self.depot.push(
                    xid,
                    Pending {
                        op: request.op_code(),
                        reply: Some(reply),
                        watch,
                    },
                );
            }
            Command::Auth {
                scheme,
                auth,
                reply,
            } => {
                conn.send(auth_frame(&scheme, &auth));
                self.auths.push((scheme, auth));
                self.auth_waiters.push_back(Some(reply));
            }
            Command::Close { done } => {
                // Only reachable through `queued`, which `serve` handles itself.
                let _ = done.send(());
            }
        }
    }

    /// Handles one frame from the server. `Err` ends the connection.
    fn handle_frame(&mut self, frame: &[u8]) -> std::result::Result<(), End> {
        let (body, header) =
            ReplyHeader::decode(frame).map_err(|_| End::Lost("malformed reply header".into()))?;
        match header.xid {
            reserved::NOTIFICATION => {
                let event = WatcherEvent::from_bytes(body)
                    .map_err(|e| End::Lost(format!("malformed notification: {e}")))?;
                self.watches.dispatch(&event);
            }
            reserved::PING => {}
            reserved::SET_WATCHES => {
                if header.err != 0 {
                    tracing::warn!(err = header.err, "setWatches refused");
                }
            }
            reserved::AUTH => {
                let waiter = self.auth_waiters.pop_front().flatten();
                let result = match header.err {
                    0 => Ok(()),
                    err => Err(Error::from_code(err)),
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
                if header.err == ErrorCode::AuthFailed.code() {
                    return Err(End::AuthFailed);
                }
            }
            xid => {
                let pending = self.depot.complete(xid).map_err(|m| {
                    End::Lost(format!(
                        "reply for xid {} while xid {:?} was expected",
                        m.got, m.expected
                    ))
                })?;
                if header.zxid > self.last_zxid {
                    self.last_zxid = header.zxid;
                }
                if let Some(action) = pending.watch {
                    self.watches.apply(action, header.err);
                }
                let result = match header.err {
                    0 => Response::decode(pending.op, body)
                        .map_err(|e| Error::Protocol(format!("{} reply: {e}", pending.op.name()))),
                    err => Err(Error::from_code(err)),
                };
                if let Some(reply) = pending.reply {
                    let _ = reply.send(result);
                }
                if pending.op == OpCode::CloseSession {
                    return Err(End::Closed(None));
                }
            }
        }
        Ok(())
    }

    /// Fails what was on the wire of a lost connection.
    fn fail_in_flight(&mut self, error: Error) {
        for pending in self.depot.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        for waiter in self.auth_waiters.drain(..).flatten() {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    /// Re-attaches the session, trying the hosts in turn with a jittered pause
    /// between rounds. Commands arriving meanwhile are queued.
    async fn reconnect(&mut self) -> Reconnect {
        let mut round = 0;
        loop {
            for _ in 0..self.hosts.len() {
                let (host, port) = self.pick_host();
                let request = self.connect_request();
                let attempt = Connection::open(&host, port, &request, self.per_host_timeout());
                tokio::pin!(attempt);
                let result = loop {
                    tokio::select! {
                        result = &mut attempt => break result,
                        command = self.commands.recv() => match command {
                            None => return Reconnect::Closed(None),
                            Some(Command::Close { done }) => return Reconnect::Closed(Some(done)),
                            Some(command) => self.queued.push_back(command),
                        },
                    }
                };
                match result {
                    Ok((conn, response)) => {
                        self.attach(&conn, &response);
                        self.replay_session_state(&conn);
                        return Reconnect::Connected(conn);
                    }
                    Err(ConnectError::Expired) => return Reconnect::Expired,
                    Err(ConnectError::Io(e)) => tracing::debug!("reconnect attempt failed: {e}"),
                }
            }
            let pause = Backoff {
                max: self.config.reconnect_backoff.max.min(self.timeout / 3),
                ..self.config.reconnect_backoff
            }
            .delay(round);
            round += 1;
            let sleep = tokio::time::sleep(pause);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        None => return Reconnect::Closed(None),
                        Some(Command::Close { done }) => return Reconnect::Closed(Some(done)),
                        Some(command) => self.queued.push_back(command),
                    },
                }
            }
        }
    }

    /// After a re-attach: credentials first, then the watches, so the
    /// re-armed watches are checked with the same rights as before.
    fn replay_session_state(&mut self, conn: &Connection) {
        for (scheme, auth) in &self.auths {
            conn.send(auth_frame(scheme, auth));
            self.auth_waiters.push_back(None);
        }
        for batch in self.watches.set_watches(self.last_zxid) {
            conn.send(build_frame(|out| {
                RequestHeader {
                    xid: reserved::SET_WATCHES,
                    op_type: OpCode::SetWatches2 as i32,
                }
                .encode(out);
                batch.encode(out);
            }));
        }
    }

    /// Ends the session for good: everything waiting fails with the state's
    /// error and every watch ends.
    fn finish(mut self, state: SessionState, done: Option<oneshot::Sender<()>>) {
        self.shared.set_state(state);
        let error = state.error();
        self.fail_in_flight(error.clone());
        self.commands.close();
        let leftovers = self.queued.drain(..).collect::<Vec<_>>();
        let mut fail = |command| match command {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Auth { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Close { done } => {
                let _ = done.send(());
            }
        };
        leftovers.into_iter().for_each(&mut fail);
        while let Ok(command) = self.commands.try_recv() {
            fail(command);
        }
        self.watches.close(state);
        if let Some(done) = done {
            let _ = done.send(());
        }
        tracing::debug!(
            session = format_args!("{:#x}", self.session_id),
            ?state,
            "session ended"
        );
    }
}

fn auth_frame(scheme: &str, auth: &Bytes) -> Bytes {
    build_frame(|out| {
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.to_string(),
            auth: auth.clone(),
        })
        .encode_frame(reserved::AUTH, out)
    })
}
