//! `churn`: `--providers` slots, each repeatedly opening a session, creating
//! its provider node, holding it for about `--churn-hold-ms` and closing the
//! session, for `--churn-seconds`, while `--consumers` watch.
//!
//! Reports joins + leaves per second and the latency from each create (close)
//! reply to each subscribed consumer seeing the provider appear (vanish).
//! Verified: once the churn stops every consumer's view converges to empty,
//! and so do the providers folders.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use canopy_protocol::CreateMode;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::register::{count_providers, join_consumers, make_folders, start_consumers};
use super::registry::{self, Board};
use super::Ctx;
use crate::conn::Conn;
use crate::procfs;
use crate::report::Summary;
use crate::stats::Recorder;
use crate::tree;

/// What one provider slot did.
#[derive(Default)]
struct Churned {
    joins: u64,
    leaves: u64,
}

struct Slot {
    server: String,
    dir: String,
    interfaces: usize,
    hold_ms: u64,
    session_timeout: u32,
    io_timeout: Duration,
    until: Instant,
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    make_folders(ctx).await?;
    let board = Arc::new(Board::new(args.interfaces));
    let consumers = start_consumers(ctx, &board).await?;
    let duration = Duration::from_secs_f64(args.churn_seconds.max(0.0));
    let cpu_before = procfs::sample(&args.server_pids);
    let started = Instant::now();
    let next_id = Arc::new(AtomicU32::new(0));
    let mut slots = JoinSet::new();
    for s in 0..args.providers {
        let slot = Slot {
            server: args.server[s % args.server.len()].clone(),
            dir: ctx.dir.clone(),
            interfaces: args.interfaces,
            hold_ms: args.churn_hold_ms.max(1),
            session_timeout: args.session_timeout,
            io_timeout: args.io_timeout(),
            until: started + duration,
        };
        slots.spawn(churn(
            slot,
            s as u64,
            Arc::clone(&board),
            Arc::clone(&next_id),
        ));
    }
    let mut total = Churned::default();
    let mut failure = None;
    while let Some(joined) = slots.join_next().await {
        match joined.context("provider task failed")? {
            Ok(c) => {
                total.joins += c.joins;
                total.leaves += c.leaves;
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e.context("a churning provider failed"));
    }
    // No more changes: every consumer must now converge to an empty view.
    board.settled.store(true, Ordering::Release);
    let seen = join_consumers(consumers).await?;
    let cpu_after = procfs::sample(&args.server_pids);

    let present = count_providers(ctx).await?;

    let mut latency = Recorder::default();
    latency.merge(&seen.joins);
    latency.merge(&seen.leaves);
    let changes = total.joins + total.leaves;
    let mut summary = Summary::new(
        "churn",
        ctx.servers(),
        args.providers + args.consumers,
        &latency,
    );
    summary.ops = changes;
    summary.duration_s = elapsed.as_secs_f64();
    summary.ops_per_s = changes as f64 / elapsed.as_secs_f64().max(1e-9);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        summary.server_cpu_us_per_op =
            Some((b.cpu_seconds - a.cpu_seconds) * 1e6 / changes.max(1) as f64);
        summary.server_rss_bytes = Some(b.rss_bytes);
    }
    summary.extra("joins", total.joins as f64);
    summary.extra("leaves", total.leaves as f64);
    summary.extra("join_notify_p99_ms", seen.joins.latency().p99);
    summary.extra("leave_notify_p99_ms", seen.leaves.latency().p99);
    summary.extra("notifications", seen.notifications as f64);
    if present != 0 {
        bail!("churn stopped but {present} provider nodes remain");
    }
    summary.verified = true;
    Ok(summary)
}

/// One provider slot: join, hold, leave, until the deadline.
async fn churn(
    slot: Slot,
    seed: u64,
    board: Arc<Board>,
    next_id: Arc<AtomicU32>,
) -> Result<Churned> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut done = Churned::default();
    // Stagger the first joins so the slots do not move in lockstep.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..slot.hold_ms))).await;
    while Instant::now() < slot.until {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let iface = id as usize % slot.interfaces;
        let mut conn = Conn::connect(&slot.server, slot.session_timeout, slot.io_timeout).await?;
        let path = format!(
            "{}/{}",
            registry::providers_path(&slot.dir, iface),
            registry::provider_node(id, iface)
        );
        conn.call_ok(&tree::create(
            path,
            Some(Bytes::new()),
            CreateMode::Ephemeral as i32,
        ))
        .await?;
        board.created(id);
        done.joins += 1;
        let hold = rng.gen_range(slot.hold_ms / 2..=slot.hold_ms * 3 / 2);
        tokio::time::sleep(Duration::from_millis(hold)).await;
        conn.close().await?;
        board.removed(id);
        done.leaves += 1;
    }
    Ok(done)
}
