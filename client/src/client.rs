//! The public client: a cheap, cloneable handle on one session, with one
//! async method per ZooKeeper operation.
//!
//! Each method validates and chroots its paths, turns its arguments into a
//! protocol [`Request`], hands it to the session task and waits (at most the
//! request timeout) for the reply. Calls from many tasks are pipelined on the
//! one connection; replies come back in the order the requests were sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{
    Acl, AddWatchMode, AddWatchRequest, CheckVersionRequest, ClientInfo, CreateMode, CreateRequest,
    CreateTtlRequest, DeleteRequest, ErrorCode, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildrenRequest, GetDataRequest, GetEphemeralsRequest, MultiOp,
    MultiRequest, OpResult, RemoveWatchesRequest, Request, Response, SetAclRequest, SetDataRequest,
    Stat, SyncRequest, WatcherType,
};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::backoff::Backoff;
use crate::connect_string::{validate_path, Chroot, ConnectString};
use crate::error::{Error, Result};
use crate::ops::{CreateOptions, Op, OpOutcome, ReadOp, ReadOutcome};
use crate::session::watch::{OneshotKind, OneshotWatcher, PersistentWatcher, WatchAction};
use crate::session::{self, Command, SessionConfig, SessionState, Shared};

/// Settings for a new client; start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    read_only: bool,
    reconnect_backoff: Backoff,
}

impl ClientBuilder {
    /// The session timeout to ask for; the server clamps it (to
    /// [2, 20] ticks by default). Default 10 s.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`ClientBuilder::connect`] keeps trying before it gives up.
    /// Default: the session timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a request may wait for its reply (`None`: forever). Default 30 s.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Accept read-only servers (the session then reports
    /// [`SessionState::ConnectedReadOnly`]). Default false.
    pub fn read_only(mut self, allowed: bool) -> Self {
        self.read_only = allowed;
        self
    }

    /// The pause between rounds over all hosts while reconnecting (capped at
    /// a third of the session timeout so the session survives).
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// Parses the connect string and establishes a new session.
    pub async fn connect(self) -> Result<Client> {
        let parsed = ConnectString::parse(&self.connect_string)?;
        let chroot = Chroot::new(parsed.chroot);
        let config = SessionConfig {
            hosts: parsed.hosts,
            chroot: chroot.clone(),
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout.unwrap_or(self.session_timeout),
            read_only: self.read_only,
            reconnect_backoff: self.reconnect_backoff,
        };
        let (shared, commands) = session::start(config).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                shared,
                chroot,
            }),
            request_timeout: self.request_timeout,
        })
    }
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    chroot: Chroot,
}

/// A handle on one ZooKeeper session. Clones share the session; when the
/// last clone is dropped the session is closed.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    request_timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format_args!("{:#x}", self.session_id()))
            .field("state", &self.state())
            .field("chroot", &self.inner.chroot.as_str())
            .finish()
    }
}

/// A stream of session state changes.
#[derive(Debug)]
pub struct StateStream(mpsc::UnboundedReceiver<SessionState>);

impl StateStream {
    /// The next state change; `None` after a terminal state was reported.
    pub async fn next_state(&mut self) -> Option<SessionState> {
        self.0.recv().await
    }
}

impl Stream for StateStream {
    type Item = SessionState;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<SessionState>> {
        self.0.poll_recv(cx)
    }
}

impl Client {
    /// Settings for a client of `connect_string`
    /// (`host1:2181,host2:2181/optional/chroot`).
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: None,
            request_timeout: Some(Duration::from_secs(30)),
            read_only: false,
            reconnect_backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_secs(1),
            },
        }
    }

    /// Connects with the default settings.
    pub async fn connect(connect_string: &str) -> Result<Client> {
        Client::builder(connect_string).connect().await
    }

    /// The same session with another request timeout.
    pub fn with_request_timeout(&self, timeout: Option<Duration>) -> Client {
        Client {
            inner: self.inner.clone(),
            request_timeout: timeout,
        }
    }

    pub fn session_id(&self) -> i64 {
        self.inner.shared.session().0
    }

    pub fn session_password(&self) -> Bytes {
        self.inner.shared.session().1
    }

    /// The timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.shared.session().2
    }

    pub fn state(&self) -> SessionState {
        self.inner.shared.state()
    }

    /// Every state change from now on (a terminal state ends the stream).
    pub fn state_stream(&self) -> StateStream {
        StateStream(self.inner.shared.subscribe())
    }

    /// Closes the session (its ephemeral nodes go at once) and waits for the
    /// server's acknowledgement, briefly.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.inner.commands.send(Command::Close { done }).is_ok() {
            let _ = closed.await;
        }
    }

    // ---- plumbing ----

    fn server_path(&self, path: &str) -> Result<String> {
        validate_path(path, false)?;
        Ok(self.inner.chroot.to_server(path))
    }

    fn client_path(&self, path: &str) -> String {
        self.inner.chroot.to_client(path)
    }

    fn dead(&self) -> Error {
        let state = self.inner.shared.state();
        if state.is_terminal() {
            state.error()
        } else {
            Error::Closed
        }
    }

    async fn call_with(&self, request: Request, watch: Option<WatchAction>) -> Result<Response> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Request {
                request,
                reply,
                watch,
            })
            .map_err(|_| self.dead())?;
        let answer = match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .map_err(|_| Error::Timeout)?,
            None => answer.await,
        };
        answer.map_err(|_| self.dead())?
    }

    async fn call(&self, request: Request) -> Result<Response> {
        self.call_with(request, None).await
    }

    fn oneshot(&self, kind: OneshotKind, server_path: &str) -> (WatchAction, OneshotWatcher) {
        let (waiter, receiver) = oneshot::channel();
        let action = WatchAction::Oneshot {
            kind,
            path: server_path.to_string(),
            waiter,
        };
        (
            action,
            OneshotWatcher::new(receiver, self.client_path(server_path)),
        )
    }

    // ---- the API ----

    /// Creates a node; returns its actual path (with the sequence suffix for
    /// sequential modes) and its Stat. Uses create2, createContainer or
    /// createTTL depending on the mode, so the Stat always comes back.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        options: &CreateOptions,
    ) -> Result<(String, Stat)> {
        validate_path(path, options.mode.is_sequential())?;
        options.validate()?;
        let request = create_request(self.inner.chroot.to_server(path), data, options);
        match self.call(request).await? {
            Response::Create2(r) => Ok((self.client_path(&r.path), r.stat)),
            other => Err(unexpected("create", &other)),
        }
    }

    /// Deletes a node; `version: None` deletes whatever version it has.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        let request = Request::Delete(DeleteRequest {
            path: self.server_path(path)?,
            version: version.unwrap_or(-1),
        });
        self.call(request).await.map(drop)
    }

    /// The node's Stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        let request = Request::Exists(ExistsRequest {
            path: self.server_path(path)?,
            watch: false,
        });
        stat_or_none(self.call(request).await)
    }

    /// Like [`Client::exists`], and leaves a watch that fires when the node
    /// is created, changed or deleted.
    pub async fn exists_and_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatcher)> {
        let server_path = self.server_path(path)?;
        let (action, watcher) = self.oneshot(OneshotKind::Exist, &server_path);
        let request = Request::Exists(ExistsRequest {
            path: server_path,
            watch: true,
        });
        let stat = stat_or_none(self.call_with(request, Some(action)).await)?;
        Ok((stat, watcher))
    }

    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        let request = Request::GetData(GetDataRequest {
            path: self.server_path(path)?,
            watch: false,
        });
        data_of(self.call(request).await?)
    }

    /// Like [`Client::get_data`], and leaves a watch that fires when the
    /// data changes or the node is deleted.
    pub async fn get_data_and_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatcher)> {
        let server_path = self.server_path(path)?;
        let (action, watcher) = self.oneshot(OneshotKind::Data, &server_path);
        let request = Request::GetData(GetDataRequest {
            path: server_path,
            watch: true,
        });
        let (data, stat) = data_of(self.call_with(request, Some(action)).await?)?;
        Ok((data, stat, watcher))
    }

    /// Replaces the data; `version: None` for any version. Returns the new Stat.
    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        let request = Request::SetData(SetDataRequest {
            path: self.server_path(path)?,
            data: Some(Bytes::copy_from_slice(data)),
            version: version.unwrap_or(-1),
        });
        match self.call(request).await? {
            Response::Stat(r) => Ok(r.stat),
            other => Err(unexpected("setData", &other)),
        }
    }

    /// The children's names (unsorted, as the server sends them) and the
    /// parent's Stat.
    pub async fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        let request = Request::GetChildren2(GetChildrenRequest {
            path: self.server_path(path)?,
            watch: false,
        });
        children_of(self.call(request).await?)
    }

    /// Like [`Client::get_children`], and leaves a watch that fires when a
    /// child is added or removed or the node is deleted.
    pub async fn get_children_and_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, OneshotWatcher)> {
        let server_path = self.server_path(path)?;
        let (action, watcher) = self.oneshot(OneshotKind::Child, &server_path);
        let request = Request::GetChildren2(GetChildrenRequest {
            path: server_path,
            watch: true,
        });
        let (children, stat) = children_of(self.call_with(request, Some(action)).await?)?;
        Ok((children, stat, watcher))
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let request = Request::GetAcl(GetAclRequest {
            path: self.server_path(path)?,
        });
        match self.call(request).await? {
            Response::GetAcl(r) => Ok((r.acl, r.stat)),
            other => Err(unexpected("getACL", &other)),
        }
    }

    /// Replaces the ACL; `version` is the expected ACL version (aversion).
    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: Option<i32>) -> Result<Stat> {
        let request = Request::SetAcl(SetAclRequest {
            path: self.server_path(path)?,
            acl: acl.to_vec(),
            version: version.unwrap_or(-1),
        });
        match self.call(request).await? {
            Response::Stat(r) => Ok(r.stat),
            other => Err(unexpected("setACL", &other)),
        }
    }

    /// Waits until the server this client talks to has caught up with the
    /// leader (for `path`); a no-op on a single server, but still a barrier.
    pub async fn sync(&self, path: &str) -> Result<()> {
        let request = Request::Sync(SyncRequest {
            path: self.server_path(path)?,
        });
        self.call(request).await.map(drop)
    }

    /// Fails with BadVersion unless the node has data version `version`.
    /// Sent as a one-operation multi: a stand-alone check request is only
    /// understood by ZooKeeper 3.9 and later.
    pub async fn check(&self, path: &str, version: i32) -> Result<()> {
        self.multi(&[Op::check(path, version)]).await.map(drop)
    }

    /// Applies all writes atomically. On failure the error names the first
    /// failing operation ([`Error::Multi`]).
    pub async fn multi(&self, ops: &[Op]) -> Result<Vec<OpOutcome>> {
        let mut wire = Vec::with_capacity(ops.len());
        for op in ops {
            wire.push(self.multi_op(op)?);
        }
        let results = match self
            .call(Request::Multi(MultiRequest { ops: wire }))
            .await?
        {
            Response::Multi(r) => r.results,
            other => return Err(unexpected("multi", &other)),
        };
        // A failed multi reports 0 before the culprit and RuntimeInconsistency
        // after it; the culprit is the first other code.
        let failure = results
            .iter()
            .enumerate()
            .find_map(|(index, result)| match result {
                OpResult::Error { err }
                    if *err != 0 && *err != ErrorCode::RuntimeInconsistency.code() =>
                {
                    Some((index, *err))
                }
                _ => None,
            });
        if let Some((index, err)) = failure {
            return Err(match ErrorCode::from_i32(err) {
                Some(code) => Error::Multi { index, code },
                None => Error::UnknownCode(err),
            });
        }
        results
            .into_iter()
            .map(|result| match result {
                OpResult::Create { path } => Ok(OpOutcome::Create {
                    path: self.client_path(&path),
                    stat: None,
                }),
                OpResult::Create2 { path, stat, .. } => Ok(OpOutcome::Create {
                    path: self.client_path(&path),
                    stat: Some(stat),
                }),
                OpResult::Delete => Ok(OpOutcome::Delete),
                OpResult::SetData { stat } => Ok(OpOutcome::SetData { stat }),
                OpResult::Check => Ok(OpOutcome::Check),
                other => Err(Error::Protocol(format!(
                    "unexpected multi result {other:?}"
                ))),
            })
            .collect()
    }

    fn multi_op(&self, op: &Op) -> Result<MultiOp> {
        Ok(match op {
            Op::Create {
                path,
                data,
                options,
            } => {
                validate_path(path, options.mode.is_sequential())?;
                options.validate()?;
                match create_request(self.inner.chroot.to_server(path), data, options) {
                    Request::Create2(r) => MultiOp::Create2(r),
                    Request::CreateContainer(r) => MultiOp::CreateContainer(r),
                    Request::CreateTtl(r) => MultiOp::CreateTtl(r),
                    _ => unreachable!("create_request builds only create requests"),
                }
            }
            Op::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                path: self.server_path(path)?,
                version: version.unwrap_or(-1),
            }),
            Op::SetData {
                path,
                data,
                version,
            } => MultiOp::SetData(SetDataRequest {
                path: self.server_path(path)?,
                data: Some(Bytes::copy_from_slice(data)),
                version: version.unwrap_or(-1),
            }),
            Op::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                path: self.server_path(path)?,
                version: *version,
            }),
        })
    }

    /// Runs several reads in one round trip; each succeeds or fails alone.
    pub async fn multi_read(&self, ops: &[ReadOp]) -> Result<Vec<ReadOutcome>> {
        let mut wire = Vec::with_capacity(ops.len());
        for op in ops {
            wire.push(match op {
                ReadOp::GetData(path) => MultiOp::GetData(GetDataRequest {
                    path: self.server_path(path)?,
                    watch: false,
                }),
                ReadOp::GetChildren(path) => MultiOp::GetChildren(GetChildrenRequest {
                    path: self.server_path(path)?,
                    watch: false,
                }),
            });
        }
        let results = match self
            .call(Request::MultiRead(MultiRequest { ops: wire }))
            .await?
        {
            Response::Multi(r) => r.results,
            other => return Err(unexpected("multiRead", &other)),
        };
        Ok(results
            .into_iter()
            .map(|result| match result {
                OpResult::GetData { data, stat } => ReadOutcome::Data {
                    data: data.map(|d| d.to_vec()).unwrap_or_default(),
                    stat,
                },
                OpResult::GetChildren { children } => ReadOutcome::Children(children),
                OpResult::Error { err } => ReadOutcome::Error(Error::from_code(err)),
                other => ReadOutcome::Error(Error::Protocol(format!(
                    "unexpected multiRead result {other:?}"
                ))),
            })
            .collect())
    }

    /// This session's ephemeral nodes whose paths start with `prefix`.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        let request = Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: self.server_path(prefix)?,
        });
        match self.call(request).await? {
            Response::GetEphemerals(r) => {
                Ok(r.ephemerals.iter().map(|p| self.client_path(p)).collect())
            }
            other => Err(unexpected("getEphemerals", &other)),
        }
    }

    /// The number of descendants of `path` (not counting itself).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        let request = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: self.server_path(path)?,
        });
        match self.call(request).await? {
            Response::GetAllChildrenNumber(r) => Ok(r.total_number),
            other => Err(unexpected("getAllChildrenNumber", &other)),
        }
    }

    /// Adds a persistent watch (every event on `path`) or a persistent
    /// recursive one (every event on the subtree except child changes).
    ///
    /// ZooKeeper keeps one mode per (session, path): adding a recursive
    /// watch where this session has a persistent one (or the reverse)
    /// replaces it on the server, so use one mode per path and session.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatcher> {
        let server_path = self.server_path(path)?;
        let (sink, events) = mpsc::unbounded_channel();
        let action = WatchAction::Persistent {
            path: server_path.clone(),
            recursive: mode == AddWatchMode::PersistentRecursive,
            sink,
        };
        let request = Request::AddWatch(AddWatchRequest {
            path: server_path,
            mode: mode as i32,
        });
        self.call_with(request, Some(action)).await?;
        Ok(PersistentWatcher::new(events))
    }

    /// Removes this session's watches of `kind` on `path`, on the server and
    /// here (local waiters get a "watch removed" event; streams end).
    /// ZooKeeper 3.8 understands only `Children`, `Data` and `Any` (the
    /// persistent kinds came later): remove persistent watches with `Any`.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<()> {
        let server_path = self.server_path(path)?;
        let action = WatchAction::Remove {
            path: server_path.clone(),
            kind,
        };
        let request = Request::RemoveWatches(RemoveWatchesRequest {
            path: server_path,
            watcher_type: kind as i32,
        });
        self.call_with(request, Some(action)).await.map(drop)
    }

    /// Adds credentials to the session (e.g. `digest`, `user:password`).
    /// They are replayed on every reconnect. A refusal ends the session
    /// ([`SessionState::AuthFailed`]), as in ZooKeeper.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Auth {
                scheme: scheme.to_string(),
                auth: Bytes::copy_from_slice(auth),
                reply,
            })
            .map_err(|_| self.dead())?;
        let answer = match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .map_err(|_| Error::Timeout)?,
            None => answer.await,
        };
        answer.map_err(|_| self.dead())?
    }

    /// The identities the server has authenticated this session as.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>> {
        match self.call(Request::WhoAmI).await? {
            Response::WhoAmI(r) => Ok(r.client_info),
            other => Err(unexpected("whoAmI", &other)),
        }
    }
}

fn create_request(server_path: String, data: &[u8], options: &CreateOptions) -> Request {
    let data = Some(Bytes::copy_from_slice(data));
    let acl = options.acl.clone();
    let flags = options.mode as i32;
    match (options.mode, options.ttl_ms) {
        (CreateMode::Container, _) => Request::CreateContainer(CreateRequest {
            path: server_path,
            data,
            acl,
            flags,
        }),
        (_, Some(ttl)) => Request::CreateTtl(CreateTtlRequest {
            path: server_path,
            data,
            acl,
            flags,
            ttl,
        }),
        _ => Request::Create2(CreateRequest {
            path: server_path,
            data,
            acl,
            flags,
        }),
    }
}

fn unexpected(op: &str, response: &Response) -> Error {
    Error::Protocol(format!("unexpected reply to {op}: {response:?}"))
}

fn stat_or_none(reply: Result<Response>) -> Result<Option<Stat>> {
    match reply {
        Ok(Response::Stat(r)) => Ok(Some(r.stat)),
        Ok(other) => Err(unexpected("exists", &other)),
        Err(Error::Server(ErrorCode::NoNode)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn data_of(reply: Response) -> Result<(Vec<u8>, Stat)> {
    match reply {
        Response::GetData(r) => Ok((r.data.map(|d| d.to_vec()).unwrap_or_default(), r.stat)),
        other => Err(unexpected("getData", &other)),
    }
}

fn children_of(reply: Response) -> Result<(Vec<String>, Stat)> {
    match reply {
        Response::GetChildren2(r) => Ok((r.children, r.stat)),
        other => Err(unexpected("getChildren2", &other)),
    }
}
