//! `register`: the Dubbo start-up storm. `--consumers` sessions each watch the
//! providers of `--subscriptions` interfaces; then `--providers` sessions each
//! create one ephemeral provider URL node under one of `--interfaces`.
//!
//! Reports the registration rate (all providers' creates, from the first sent
//! to the last acknowledged; sessions are opened beforehand) and the
//! notification latency from each create reply to each subscribed consumer
//! seeing the provider. Verified: every consumer saw every provider of its
//! interfaces, and the providers folders hold exactly `--providers` nodes.
//!
//! Two modes (the JSON line's `mode`):
//! - `held`: every provider keeps its connection open, pinging, until the
//!   end. Needs one file descriptor per session in the bench and the server.
//! - `detach` (`--provider-detach`): at most `--provider-window` providers
//!   at a time open a session, create, and drop the connection without
//!   closing the session, as a provider behind a broken link. The session and
//!   its ephemeral live on until the session timeout, so the run must end
//!   longer (a keeper resumes each session for a moment once half its timeout
//!   has passed); at the end each session is resumed and closed, which proves
//!   it was still alive. Session setup is inside the measured registration
//!   time here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use canopy_protocol::CreateMode;
use tokio::task::JoinSet;

use super::registry::{self, Board, Seen};
use super::Ctx;
use crate::conn::Conn;
use crate::driver::connect_all;
use crate::procfs;
use crate::report::Summary;
use crate::stats::Recorder;
use crate::tree;

/// Creates `<dir>/dubbo/<interface>/providers` for every interface.
pub async fn make_folders(ctx: &Ctx<'_>) -> Result<()> {
    let mut conn = ctx.conn().await?;
    for i in 0..ctx.args.interfaces {
        tree::ensure_path(&mut conn, &registry::providers_path(&ctx.dir, i)).await?;
    }
    conn.close().await
}

/// The interfaces consumer `c` subscribes to.
pub fn subscriptions(c: usize, interfaces: usize, per_consumer: usize) -> Vec<usize> {
    (0..per_consumer.min(interfaces))
        .map(|k| (c * per_consumer + k) % interfaces)
        .collect()
}

/// Opens the consumers and starts them watching.
pub async fn start_consumers(ctx: &Ctx<'_>, board: &Arc<Board>) -> Result<JoinSet<Result<Seen>>> {
    let args = ctx.args;
    let conns = connect_all(
        ctx.servers(),
        args.consumers,
        args.session_timeout,
        args.io_timeout(),
    )
    .await
    .context("opening consumer sessions")?;
    let mut set = JoinSet::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let ifaces = subscriptions(c, args.interfaces, args.subscriptions);
        set.spawn(registry::consume(
            conn,
            ctx.dir.clone(),
            ifaces,
            Arc::clone(board),
            args.io_timeout(),
        ));
    }
    Ok(set)
}

/// Waits for every consumer; merges what they saw.
pub async fn join_consumers(mut set: JoinSet<Result<Seen>>) -> Result<Seen> {
    let mut all = Seen::default();
    while let Some(joined) = set.join_next().await {
        let seen = joined.context("consumer task failed")??;
        all.joins.merge(&seen.joins);
        all.leaves.merge(&seen.leaves);
        all.notifications += seen.notifications;
    }
    Ok(all)
}

/// File descriptors the bench needs besides its sessions (stdio, the
/// runtime, setup and verification connections).
const SPARE_FDS: usize = 32;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let detach = args.provider_detach;
    // One descriptor per open session: every consumer, and every provider
    // (held) or the providers in flight (detached).
    let open_providers = if detach {
        // Registering providers and the keeper's resumes.
        2 * args.provider_window.min(args.providers)
    } else {
        args.providers
    };
    let fds = args.consumers + open_providers + SPARE_FDS;
    if let Some(limit) = procfs::open_files_limit() {
        if fds as u64 > limit {
            bail!(
                "{} consumers + {open_providers} open provider sessions need about {fds} file \
                 descriptors, above `ulimit -n` {limit} (and the server needs as many): \
                 use --provider-detach with a --provider-window that fits",
                args.consumers
            );
        }
    }
    make_folders(ctx).await?;
    let board = Arc::new(Board::new(args.interfaces));
    for id in 0..args.providers {
        board.expected[id % args.interfaces].fetch_add(1, Ordering::Relaxed);
    }
    board.settled.store(true, Ordering::Release);
    let consumers = start_consumers(ctx, &board).await?;

    let registered = if detach {
        register_detached(ctx, &board).await
    } else {
        register_held(ctx, &board).await
    };
    // Consumers wait for every provider; don't let them if one failed.
    let seen = match &registered {
        Ok(_) => join_consumers(consumers).await,
        Err(_) => Err(anyhow::anyhow!("registration failed")),
    };
    let cpu_after = procfs::sample(&args.server_pids);
    let own_after = procfs::own();
    // Count the provider nodes while their sessions are still alive.
    let present = match &seen {
        Ok(_) => count_providers(ctx).await,
        Err(_) => Ok(0),
    };
    let mut registered = registered?;
    let ended = std::mem::replace(&mut registered.sessions, Sessions::Held(Vec::new()));
    let resumed = end_sessions(ctx, ended).await;
    // Lost detached sessions explain consumers that never caught up (their
    // nodes vanished): say that first.
    if let (Err(lost), Err(why)) = (&resumed, &seen) {
        bail!("{lost:#}; consumers: {why:#}");
    }
    let seen = seen?;
    let present = present?;
    let (resumed, refreshes) = resumed?;

    let mut summary = Summary::new(
        "register",
        ctx.servers(),
        args.providers + args.consumers,
        &seen.joins,
    );
    summary.mode = Some(if detach { "detach" } else { "held" }.to_string());
    summary.ops = args.providers as u64;
    summary.duration_s = registered.elapsed.as_secs_f64();
    summary.ops_per_s = args.providers as f64 / registered.elapsed.as_secs_f64().max(1e-9);
    let per_provider = |a: f64, b: f64| (b - a) * 1e6 / args.providers.max(1) as f64;
    if let (Some(a), Some(b)) = (registered.cpu_before, cpu_after) {
        summary.server_cpu_us_per_op = Some(per_provider(a.cpu_seconds, b.cpu_seconds));
        summary.server_rss_bytes = Some(b.rss_bytes);
    }
    if let (Some(a), Some(b)) = (registered.own_before, own_after) {
        summary.bench_cpu_us_per_op = Some(per_provider(a.cpu_seconds, b.cpu_seconds));
        // Share of one core the bench used while providers registered and
        // consumers caught up: near 1.0 means the bench itself was the limit.
        let secs = registered.cpu_since.elapsed().as_secs_f64().max(1e-9);
        summary.extra("bench_cpu_share", (b.cpu_seconds - a.cpu_seconds) / secs);
    }
    summary.extra("providers", args.providers as f64);
    summary.extra("consumers", args.consumers as f64);
    summary.extra("registrations_per_s", summary.ops_per_s);
    summary.extra("create_p50_ms", registered.creates.latency().p50);
    summary.extra("create_p99_ms", registered.creates.latency().p99);
    summary.extra("notify_p99_ms", seen.joins.latency().p99);
    summary.extra("sightings", seen.joins.samples() as f64);
    summary.extra("notifications", seen.notifications as f64);
    summary.extra("session_timeout_ms", registered.timeout_ms as f64);
    if detach {
        summary.extra("provider_window", args.provider_window as f64);
        summary.extra("provider_sessions_resumed", resumed as f64);
        summary.extra("provider_keepalive_resumes", refreshes as f64);
    }
    if present != args.providers as u64 {
        bail!(
            "{} providers registered but {present} provider nodes are present",
            args.providers
        );
    }
    summary.verified = true;
    Ok(summary)
}

/// The provider sessions once registered: held open by tasks that ping
/// them, or detached (no connection; what is needed to resume them).
enum Sessions {
    Held(Vec<(Arc<AtomicBool>, tokio::task::JoinHandle<Result<()>>)>),
    Detached(Keeper),
}

struct Detached {
    addr: String,
    session_id: i64,
    passwd: Bytes,
    timeout_ms: i32,
}

/// Keeps detached sessions alive for runs longer than a session timeout
/// (servers cap it at 20 ticks, 40 s with ZooKeeper's default tick): once
/// a quarter of its timeout has passed since a session was last touched, it is
/// resumed on a new connection (the handshake touches it) and the connection
/// dropped again. The queue is in order of last touch, oldest first.
struct Keeper {
    queue: Arc<Mutex<VecDeque<(Detached, Instant)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<u64>>,
}

impl Keeper {
    /// At most `parallel` resumes are in flight at once.
    fn start(io_timeout: Duration, parallel: usize) -> Keeper {
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(refresh(
            Arc::clone(&queue),
            Arc::clone(&stop),
            io_timeout,
            parallel.max(1),
        ));
        Keeper { queue, stop, task }
    }

    fn add(&self, session: Detached) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back((session, Instant::now()));
        }
    }

    /// Stops refreshing at once after a failure: the sessions expire on
    /// their own.
    fn abandon(self) {
        self.task.abort();
    }

    /// Stops refreshing; returns the sessions and how many resumes it did.
    async fn finish(self) -> Result<(Vec<Detached>, u64)> {
        self.stop.store(true, Ordering::Release);
        let refreshes = self
            .task
            .await
            .context("session keeper failed")?
            .context("a detached provider session could not be kept alive")?;
        let sessions = match self.queue.lock() {
            Ok(mut q) => q.drain(..).map(|(d, _)| d).collect(),
            Err(_) => bail!("session keeper queue poisoned"),
        };
        Ok((sessions, refreshes))
    }
}

async fn refresh(
    queue: Arc<Mutex<VecDeque<(Detached, Instant)>>>,
    stop: Arc<AtomicBool>,
    io_timeout: Duration,
    parallel: usize,
) -> Result<u64> {
    let mut done = 0u64;
    let mut lost = 0u64;
    let mut first_error: Option<anyhow::Error> = None;
    let mut tasks = JoinSet::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        while !stopping && tasks.len() < parallel {
            let due = {
                let Ok(mut q) = queue.lock() else {
                    bail!("session keeper queue poisoned");
                };
                let is_due = q.front().is_some_and(|(d, touched)| {
                    touched.elapsed() >= Duration::from_millis(d.timeout_ms.max(0) as u64 / 4)
                });
                if is_due {
                    q.pop_front()
                } else {
                    None
                }
            };
            let Some((d, _)) = due else { break };
            tasks.spawn(async move {
                let timeout = u32::try_from(d.timeout_ms).unwrap_or(0);
                let conn =
                    Conn::resume(&d.addr, timeout, io_timeout, d.session_id, d.passwd.clone())
                        .await?;
                conn.cut();
                anyhow::Ok(d)
            });
        }
        if tasks.is_empty() {
            if stopping {
                return match first_error {
                    Some(e) => Err(e.context(format!("{lost} detached sessions were lost"))),
                    None => Ok(done),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        // A lost session is not retried (its node is gone, which the final
        // count reports); the others are still kept alive.
        match tasks.join_next().await {
            Some(Ok(Ok(d))) => {
                done += 1;
                if let Ok(mut q) = queue.lock() {
                    q.push_back((d, Instant::now()));
                }
            }
            Some(Ok(Err(e))) => {
                lost += 1;
                first_error.get_or_insert(e);
            }
            Some(Err(e)) => bail!("refresh task failed: {e}"),
            None => {}
        }
    }
}

/// What the registration phase measured.
struct Registered {
    creates: Recorder,
    /// From the first create (held) or connect (detached) sent to the last
    /// create acknowledged.
    elapsed: Duration,
    sessions: Sessions,
    timeout_ms: i32,
    cpu_before: Option<procfs::Sample>,
    own_before: Option<procfs::Sample>,
    cpu_since: Instant,
}

/// Every provider opens its session first (not measured), then all create
/// at once; each session stays open, pinged, until the end.
async fn register_held(ctx: &Ctx<'_>, board: &Arc<Board>) -> Result<Registered> {
    let args = ctx.args;
    let providers = connect_all(
        ctx.servers(),
        args.providers,
        args.session_timeout,
        args.io_timeout(),
    )
    .await
    .context("opening provider sessions")?;
    let timeout_ms = providers.first().map(|c| c.timeout_ms).unwrap_or(0);
    let cpu_before = procfs::sample(&args.server_pids);
    let own_before = procfs::own();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (id, conn) in providers.into_iter().enumerate() {
        tasks.spawn(provide(
            conn,
            id as u32,
            provider_path(ctx, id),
            Arc::clone(board),
            args.io_timeout(),
        ));
    }
    // Each task hands back its create latency as soon as it is acknowledged,
    // and a handle to the task that keeps its session alive.
    let mut creates = Recorder::default();
    let mut registered_at = started;
    let mut keepers = Vec::with_capacity(args.providers);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (created, keeper) = joined.context("provider task failed")?;
        keepers.push(keeper);
        match created {
            Ok(latency) => {
                creates.record(latency);
                registered_at = Instant::now();
            }
            Err(e) => {
                failure.get_or_insert(e.context("a provider failed to register"));
            }
        }
    }
    let registered = Registered {
        creates,
        elapsed: registered_at.saturating_duration_since(started),
        sessions: Sessions::Held(keepers),
        timeout_ms,
        cpu_before,
        own_before,
        cpu_since: started,
    };
    match failure {
        Some(e) => {
            // Close the others before failing.
            let _ = end_sessions(ctx, registered.sessions).await;
            Err(e)
        }
        None => Ok(registered),
    }
}

/// At most `--provider-window` providers at a time each open a session,
/// create their node and drop the connection without closing the session.
/// Measured from the first connect to the last create acknowledged.
async fn register_detached(ctx: &Ctx<'_>, board: &Arc<Board>) -> Result<Registered> {
    let args = ctx.args;
    let window = args.provider_window.max(1);
    let cpu_before = procfs::sample(&args.server_pids);
    let own_before = procfs::own();
    let started = Instant::now();
    let mut creates = Recorder::default();
    let mut registered_at = started;
    // As many resumes in flight as registrations: more handshakes at once
    // overflow the server's listen backlog (SYNs dropped, connects retried
    // for seconds), and the keeper falls behind.
    let keeper = Keeper::start(args.io_timeout(), window);
    let mut timeout_ms = 0;
    let mut tasks = JoinSet::new();
    let mut next = 0;
    while next < args.providers || !tasks.is_empty() {
        while next < args.providers && tasks.len() < window {
            let addr = ctx.servers()[next % ctx.servers().len()].clone();
            tasks.spawn(provide_and_detach(
                addr,
                next as u32,
                provider_path(ctx, next),
                Arc::clone(board),
                args.session_timeout,
                args.io_timeout(),
            ));
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        // The first failure ends the run; sessions already detached expire
        // on their own.
        let outcome = joined
            .context("provider task failed")
            .and_then(|r| r.context("a provider failed to register"));
        let (latency, session) = match outcome {
            Ok(created) => created,
            Err(e) => {
                keeper.abandon();
                return Err(e);
            }
        };
        creates.record(latency);
        registered_at = Instant::now();
        timeout_ms = session.timeout_ms;
        keeper.add(session);
    }
    Ok(Registered {
        creates,
        elapsed: registered_at.saturating_duration_since(started),
        sessions: Sessions::Detached(keeper),
        timeout_ms,
        cpu_before,
        own_before,
        cpu_since: started,
    })
}

fn provider_path(ctx: &Ctx<'_>, id: usize) -> String {
    let iface = id % ctx.args.interfaces;
    format!(
        "{}/{}",
        registry::providers_path(&ctx.dir, iface),
        registry::provider_node(id as u32, iface)
    )
}

/// Closes every provider session. Detached ones are resumed first (at most
/// `--provider-window` at a time), which also proves each was still alive.
/// Returns how many were resumed at the end and how many times they were
/// resumed during the run to keep them alive.
async fn end_sessions(ctx: &Ctx<'_>, sessions: Sessions) -> Result<(usize, u64)> {
    match sessions {
        Sessions::Held(keepers) => {
            for (stop, _) in &keepers {
                stop.store(true, Ordering::Release);
            }
            let mut failure = None;
            for (_, keeper) in keepers {
                if let Err(e) = keeper.await.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))) {
                    failure.get_or_insert(e);
                }
            }
            match failure {
                Some(e) => Err(e.context("a provider session failed while consumers caught up")),
                None => Ok((0, 0)),
            }
        }
        Sessions::Detached(keeper) => {
            let args = ctx.args;
            let (detached, refreshes) = keeper.finish().await?;
            let total = detached.len();
            let mut pending = detached.into_iter();
            let mut tasks = JoinSet::new();
            let mut expired = 0usize;
            let mut first_error = None;
            loop {
                while tasks.len() < args.provider_window.max(1) {
                    let Some(d) = pending.next() else { break };
                    let (timeout, io) = (args.session_timeout, args.io_timeout());
                    tasks.spawn(async move {
                        let conn =
                            Conn::resume(&d.addr, timeout, io, d.session_id, d.passwd).await?;
                        conn.close().await
                    });
                }
                let Some(joined) = tasks.join_next().await else {
                    break;
                };
                if let Err(e) = joined.context("closing task failed")? {
                    expired += 1;
                    first_error.get_or_insert(e);
                }
            }
            match first_error {
                Some(e) => Err(e.context(format!(
                    "{expired} of {total} detached provider sessions could not be resumed \
                     (expired? use a longer --session-timeout)"
                ))),
                None => Ok((total, refreshes)),
            }
        }
    }
}

/// Provider nodes present under all interfaces.
pub async fn count_providers(ctx: &Ctx<'_>) -> Result<u64> {
    let mut conn = ctx.conn().await?;
    let mut present = 0u64;
    for i in 0..ctx.args.interfaces {
        present += tree::stat(&mut conn, &registry::providers_path(&ctx.dir, i))
            .await?
            .map(|s| s.num_children as u64)
            .unwrap_or(0);
    }
    let _ = conn.close().await;
    Ok(present)
}

/// One held provider: creates its ephemeral node, returns the create
/// latency at once and a handle that keeps the session alive until told to
/// stop, then closes it.
async fn provide(
    mut conn: Conn,
    id: u32,
    path: String,
    board: Arc<Board>,
    io_timeout: Duration,
) -> (
    Result<Duration>,
    (Arc<AtomicBool>, tokio::task::JoinHandle<Result<()>>),
) {
    let sent = Instant::now();
    let request = tree::create(path, Some(Bytes::new()), CreateMode::Ephemeral as i32);
    let created = conn.call_ok(&request).await;
    let latency = sent.elapsed();
    board.created(id);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_keeper = Arc::clone(&stop);
    let keep = tokio::spawn(async move {
        registry::idle(&mut conn, &stop_keeper, io_timeout).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        Ok(())
    });
    (created.map(|_| latency), (stop, keep))
}

/// One detached provider: opens a session, creates its ephemeral node, and
/// drops the connection without closing the session. Returns the create
/// latency, how to resume the session, and its negotiated timeout.
async fn provide_and_detach(
    addr: String,
    id: u32,
    path: String,
    board: Arc<Board>,
    session_timeout_ms: u32,
    io_timeout: Duration,
) -> Result<(Duration, Detached)> {
    let mut conn = Conn::connect(&addr, session_timeout_ms, io_timeout).await?;
    let sent = Instant::now();
    let request = tree::create(path, Some(Bytes::new()), CreateMode::Ephemeral as i32);
    conn.call_ok(&request).await?;
    let latency = sent.elapsed();
    board.created(id);
    let session = Detached {
        addr,
        session_id: conn.session_id,
        passwd: conn.passwd.clone(),
        timeout_ms: conn.timeout_ms,
    };
    conn.cut();
    Ok((latency, session))
}
