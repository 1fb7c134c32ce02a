//! Unmeasured tree chores: making the run's folder, prefilling keys, reading
//! back what a workload left, and deleting it all afterwards. Everything is
//! pipelined on a few sessions so setup and cleanup stay short.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use canopy_protocol::{
    Acl, CreateRequest, DeleteRequest, ErrorCode, ExistsRequest, GetChildrenRequest, MultiOp,
    MultiRequest, OpCode, OpResult, Request, Response, Stat,
};

use crate::conn::{error_name, Conn, Reply};
use crate::driver::connect_all;

/// Requests kept in flight by [`pipeline`].
const WINDOW: usize = 512;

/// A create request for a persistent (or `mode`) znode open to anyone.
pub fn create(path: String, data: Option<Bytes>, mode: i32) -> Request {
    Request::Create(CreateRequest {
        path,
        data,
        acl: Acl::open_unsafe(),
        flags: mode,
    })
}

/// Sends `requests` on `conn` with up to [`WINDOW`] in flight, handing every
/// reply with its request to `on_reply`. Notifications are kept in
/// `conn.events`.
pub async fn pipeline(
    conn: &mut Conn,
    requests: impl IntoIterator<Item = Request>,
    mut on_reply: impl FnMut(&Request, Reply) -> Result<()>,
) -> Result<()> {
    let mut requests = requests.into_iter();
    let mut inflight: VecDeque<(i32, Request)> = VecDeque::with_capacity(WINDOW);
    let mut more = true;
    loop {
        while more && inflight.len() < WINDOW {
            match requests.next() {
                Some(request) => {
                    let xid = conn.push(&request);
                    inflight.push_back((xid, request));
                }
                None => more = false,
            }
        }
        conn.flush().await?;
        if inflight.is_empty() {
            return Ok(());
        }
        let reply = conn.next_reply_wait().await?;
        if reply.is_notification() {
            conn.events.push_back(reply.event()?);
            continue;
        }
        if reply.is_ping() {
            continue;
        }
        let Some((xid, request)) = inflight.pop_front() else {
            bail!("reply to no request");
        };
        if reply.header.xid != xid {
            bail!(
                "reply xid {} out of order (expected {xid})",
                reply.header.xid
            );
        }
        on_reply(&request, reply)?;
    }
}

/// Runs `requests` split over `sessions` new sessions, each pipelined; every
/// reply must be successful, except the codes in `allowed`.
pub async fn pipeline_ok(
    servers: &[String],
    sessions: usize,
    io_timeout: Duration,
    requests: Vec<Request>,
    allowed: &'static [ErrorCode],
) -> Result<()> {
    spread(
        servers,
        sessions,
        io_timeout,
        requests,
        move |request, reply, _: &mut Vec<()>| {
            let err = reply.header.err;
            if err != 0 && !allowed.iter().any(|a| a.code() == err) {
                bail!(
                    "{} {} failed: {}",
                    request.op_code().name(),
                    path_of(request),
                    error_name(err)
                );
            }
            Ok(())
        },
    )
    .await
    .map(|_| ())
}

/// Runs `requests` split round robin over `sessions` new sessions (1 to 8),
/// each pipelined. `on_reply` judges every reply and may collect items; the
/// items of all sessions are returned together.
async fn spread<T, F>(
    servers: &[String],
    sessions: usize,
    io_timeout: Duration,
    requests: Vec<Request>,
    on_reply: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(&Request, Reply, &mut Vec<T>) -> Result<()> + Clone + Send + Sync + 'static,
{
    let sessions = sessions.clamp(1, 8).min(requests.len().max(1));
    let conns = connect_all(servers, sessions, 30_000, io_timeout).await?;
    let mut shares: Vec<Vec<Request>> = (0..sessions).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        shares[i % sessions].push(r);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (mut conn, share) in conns.into_iter().zip(shares) {
        let on_reply = on_reply.clone();
        tasks.spawn(async move {
            let mut items = Vec::new();
            pipeline(&mut conn, share, |request, reply| {
                on_reply(request, reply, &mut items)
            })
            .await?;
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
            Ok::<_, anyhow::Error>(items)
        });
    }
    let mut items = Vec::new();
    while let Some(done) = tasks.join_next().await {
        items.extend(done.context("session task failed")??);
    }
    Ok(items)
}

fn path_of(request: &Request) -> &str {
    match request {
        Request::Create(r) => &r.path,
        Request::Delete(r) => &r.path,
        Request::Exists(r) => &r.path,
        Request::GetData(r) => &r.path,
        Request::SetData(r) => &r.path,
        Request::GetChildren(r) => &r.path,
        _ => "",
    }
}

/// Creates `path` and its missing ancestors (persistent, empty).
pub async fn ensure_path(conn: &mut Conn, path: &str) -> Result<()> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        let (err, _) = conn.call(&create(prefix.clone(), None, 0)).await?;
        if err != 0 && err != ErrorCode::NodeExists.code() {
            bail!("creating {prefix}: {}", error_name(err));
        }
    }
    Ok(())
}

/// The Stat of `path`, or None if it does not exist.
pub async fn stat(conn: &mut Conn, path: &str) -> Result<Option<Stat>> {
    let (err, response) = conn
        .call(&Request::Exists(ExistsRequest {
            path: path.to_string(),
            watch: false,
        }))
        .await?;
    if err == ErrorCode::NoNode.code() {
        return Ok(None);
    }
    if err != 0 {
        bail!("exists {path}: {}", error_name(err));
    }
    match response {
        Response::Stat(s) => Ok(Some(s.stat)),
        other => bail!("exists {path}: unexpected reply {other:?}"),
    }
}

/// The children of `path` (empty if it does not exist).
pub async fn children(conn: &mut Conn, path: &str) -> Result<Vec<String>> {
    let (err, response) = conn
        .call(&Request::GetChildren(GetChildrenRequest {
            path: path.to_string(),
            watch: false,
        }))
        .await?;
    if err == ErrorCode::NoNode.code() {
        return Ok(Vec::new());
    }
    if err != 0 {
        bail!("getChildren {path}: {}", error_name(err));
    }
    match response {
        Response::GetChildren(r) => Ok(r.children),
        other => bail!("getChildren {path}: unexpected reply {other:?}"),
    }
}

/// Deletes per multi in [`delete_tree`]: one transaction (one log record,
/// one fsync at most) per batch rather than per node, in a request far below
/// ZooKeeper's 1 MB limit.
const DELETES_PER_MULTI: usize = 250;

/// Sessions [`delete_tree`] spreads its multis over.
const DELETE_SESSIONS: usize = 4;

/// Deletes `path` and everything under it: lists the tree level by level,
/// then deletes leaves first, in multis pipelined over a few sessions.
pub async fn delete_tree(servers: &[String], path: &str, io_timeout: Duration) -> Result<()> {
    let mut levels: Vec<Vec<String>> = vec![vec![path.to_string()]];
    // Bounded by the depth of what the bench creates (a handful of levels).
    for _ in 0..16 {
        let Some(last) = levels.last() else { break };
        let next = list_level(servers, last, io_timeout).await?;
        if next.is_empty() {
            break;
        }
        levels.push(next);
    }
    for level in levels.into_iter().rev() {
        delete_level(servers, level, io_timeout).await?;
    }
    ensure_gone(servers, path, io_timeout).await
}

/// Fails if `path` still exists. The deletes above already fail on a node
/// that is not empty; this is the one direct check that the next run starts
/// on a clean server, whatever path the cleanup took (it costs one request).
async fn ensure_gone(servers: &[String], path: &str, io_timeout: Duration) -> Result<()> {
    let mut conn = Conn::connect(&servers[0], 30_000, io_timeout).await?;
    let left = stat(&mut conn, path).await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    match left {
        Some(s) => bail!(
            "{path} still exists after cleanup ({} children)",
            s.num_children
        ),
        None => Ok(()),
    }
}

/// The paths of the children of `parents`, listed with pipelined
/// getChildren over a few sessions: a folder of a million leaves takes a
/// million listings, which one at a time would take minutes.
async fn list_level(
    servers: &[String],
    parents: &[String],
    io_timeout: Duration,
) -> Result<Vec<String>> {
    let requests = parents
        .iter()
        .map(|path| {
            Request::GetChildren(GetChildrenRequest {
                path: path.clone(),
                watch: false,
            })
        })
        .collect();
    spread(
        servers,
        DELETE_SESSIONS,
        io_timeout,
        requests,
        |request, reply, found| {
            let parent = path_of(request);
            if reply.header.err == ErrorCode::NoNode.code() {
                return Ok(());
            }
            if reply.header.err != 0 {
                bail!("getChildren {parent}: {}", error_name(reply.header.err));
            }
            match reply.decode(OpCode::GetChildren)? {
                Response::GetChildren(r) => {
                    found.extend(r.children.iter().map(|c| format!("{parent}/{c}")))
                }
                other => bail!("getChildren {parent}: unexpected reply {other:?}"),
            }
            Ok(())
        },
    )
    .await
}

/// Deletes nodes that have no children left. A multi fails as a whole if
/// one of its nodes is already gone (or gained a child); its nodes are then
/// deleted one at a time, where only "already gone" is fine.
async fn delete_level(servers: &[String], paths: Vec<String>, io_timeout: Duration) -> Result<()> {
    let batches: Vec<Request> = paths.chunks(DELETES_PER_MULTI).map(delete_multi).collect();
    let failed = spread(
        servers,
        DELETE_SESSIONS,
        io_timeout,
        batches,
        |request, reply, failed| {
            if !multi_succeeded(&reply)? {
                failed.push(request.clone());
            }
            Ok(())
        },
    )
    .await?;
    let mut singles = Vec::new();
    for multi in failed {
        if let Request::Multi(multi) = multi {
            singles.extend(multi.ops.into_iter().filter_map(|op| match op {
                MultiOp::Delete(delete) => Some(Request::Delete(delete)),
                _ => None,
            }));
        }
    }
    if singles.is_empty() {
        return Ok(());
    }
    pipeline_ok(
        servers,
        DELETE_SESSIONS,
        io_timeout,
        singles,
        &[ErrorCode::NoNode],
    )
    .await
}

fn delete_multi(paths: &[String]) -> Request {
    Request::Multi(MultiRequest {
        ops: paths
            .iter()
            .map(|path| {
                MultiOp::Delete(DeleteRequest {
                    path: path.clone(),
                    version: -1,
                })
            })
            .collect(),
    })
}

/// Whether every op of a multi succeeded (a failed multi may say so in the
/// reply header or only in its results).
fn multi_succeeded(reply: &Reply) -> Result<bool> {
    if reply.header.err != 0 {
        return Ok(false);
    }
    match reply.decode(OpCode::Multi)? {
        Response::Multi(r) => Ok(!r
            .results
            .iter()
            .any(|r| matches!(r, OpResult::Error { .. }))),
        other => bail!("multi: unexpected reply {other:?}"),
    }
}
