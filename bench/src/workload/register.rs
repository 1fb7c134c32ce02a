//! `register`: the Dubbo start-up storm. `--consumers` sessions each watch the
//! providers of `--subscriptions` interfaces; then `--providers` sessions each
//! create one ephemeral provider URL node under one of `--interfaces`.
//!
//! Reports the registration rate (all providers' creates, from the first sent
//! to the last acknowledged; sessions are opened beforehand) and the
//! notification latency from each create reply to each subscribed consumer
//! seeing the provider. Verified: every consumer saw every provider of its
//! interfaces, and the providers folders hold exactly `--providers` nodes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    make_folders(ctx).await?;
    let board = Arc::new(Board::new(args.interfaces));
    for id in 0..args.providers {
        board.expected[id % args.interfaces].fetch_add(1, Ordering::Relaxed);
    }
    board.settled.store(true, Ordering::Release);
    let consumers = start_consumers(ctx, &board).await?;

    let providers = connect_all(
        ctx.servers(),
        args.providers,
        args.session_timeout,
        args.io_timeout(),
    )
    .await
    .context("opening provider sessions")?;
    let cpu_before = procfs::sample(&args.server_pids);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (id, conn) in providers.into_iter().enumerate() {
        let path = format!(
            "{}/{}",
            registry::providers_path(&ctx.dir, id % args.interfaces),
            registry::provider_node(id as u32, id % args.interfaces)
        );
        tasks.spawn(provide(
            conn,
            id as u32,
            path,
            Arc::clone(&board),
            Arc::clone(&stop),
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
    let registration = registered_at.saturating_duration_since(started);
    // Consumers wait for every provider; don't let them if one failed.
    let seen = match failure {
        Some(e) => Err(e),
        None => join_consumers(consumers).await,
    };
    let cpu_after = procfs::sample(&args.server_pids);
    // Count the provider nodes while their sessions are still alive.
    let present = match &seen {
        Ok(_) => count_providers(ctx).await,
        Err(_) => Ok(0),
    };
    stop.store(true, Ordering::Release);
    let mut provider_failure = None;
    for keeper in keepers {
        if let Err(e) = keeper.await.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))) {
            provider_failure.get_or_insert(e);
        }
    }
    let seen = seen?;
    let present = present?;
    if let Some(e) = provider_failure {
        return Err(e.context("a provider session failed while consumers caught up"));
    }

    let mut summary = Summary::new(
        "register",
        ctx.servers(),
        args.providers + args.consumers,
        &seen.joins,
    );
    summary.ops = args.providers as u64;
    summary.duration_s = registration.as_secs_f64();
    summary.ops_per_s = args.providers as f64 / registration.as_secs_f64().max(1e-9);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        summary.server_cpu_us_per_op =
            Some((b.cpu_seconds - a.cpu_seconds) * 1e6 / args.providers.max(1) as f64);
        summary.server_rss_bytes = Some(b.rss_bytes);
    }
    summary.extra("providers", args.providers as f64);
    summary.extra("consumers", args.consumers as f64);
    summary.extra("registrations_per_s", summary.ops_per_s);
    summary.extra("create_p50_ms", creates.latency().p50);
    summary.extra("create_p99_ms", creates.latency().p99);
    summary.extra("notify_p99_ms", seen.joins.latency().p99);
    summary.extra("sightings", seen.joins.samples() as f64);
    summary.extra("notifications", seen.notifications as f64);
    if present != args.providers as u64 {
        bail!(
            "{} providers registered but {present} provider nodes are present",
            args.providers
        );
    }
    summary.verified = true;
    Ok(summary)
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

/// One provider: creates its ephemeral node, returns the create latency at
/// once and a handle that keeps the session alive until `stop`, then closes it.
async fn provide(
    mut conn: Conn,
    id: u32,
    path: String,
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
    io_timeout: Duration,
) -> (Result<Duration>, tokio::task::JoinHandle<Result<()>>) {
    let sent = Instant::now();
    let request = tree::create(path, Some(Bytes::new()), CreateMode::Ephemeral as i32);
    let created = conn.call_ok(&request).await;
    let latency = sent.elapsed();
    board.created(id);
    let keep = tokio::spawn(async move {
        registry::idle(&mut conn, &stop, io_timeout).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        Ok(())
    });
    (created.map(|_| latency), keep)
}
