//! `expire`: `--expire-sessions` sessions each create an ephemeral node, then
//! their connections are cut without closing the session, as when a client
//! machine dies. A watcher session sees each node vanish; the figure is the
//! time from the cut to the NodeDeleted event, in milliseconds and as a
//! multiple of the negotiated session timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use canopy_protocol::{CreateMode, EventType, ExistsRequest, Request};

use super::Ctx;
use crate::conn::Conn;
use crate::driver::connect_all;
use crate::report::Summary;
use crate::stats::Recorder;
use crate::tree;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let n = args.expire_sessions;
    let mut victims =
        connect_all(ctx.servers(), n, args.session_timeout, args.io_timeout()).await?;
    let timeout_ms = victims.first().map(|c| c.timeout_ms).unwrap_or(0);
    let mut paths = Vec::with_capacity(n);
    for (i, conn) in victims.iter_mut().enumerate() {
        let path = format!("{}/e{i:06}", ctx.dir);
        conn.call_ok(&tree::create(
            path.clone(),
            Some(Bytes::new()),
            CreateMode::Ephemeral as i32,
        ))
        .await?;
        paths.push(path);
    }
    // The watcher needs a timeout comfortably above the victims' so it
    // outlives them; it pings meanwhile.
    let mut watcher = Conn::connect(&args.server[0], 60_000, args.io_timeout()).await?;
    for path in &paths {
        let (err, _) = watcher
            .call(&Request::Exists(ExistsRequest {
                path: path.clone(),
                watch: true,
            }))
            .await?;
        if err != 0 {
            bail!("exists {path} failed with {err}");
        }
    }

    // Cut every victim's connection at (nearly) the same moment.
    let mut cut_at: HashMap<String, Instant> = HashMap::new();
    for (conn, path) in victims.into_iter().zip(&paths) {
        cut_at.insert(path.clone(), Instant::now());
        conn.cut();
    }
    let cut = Instant::now();

    let mut rec = Recorder::default();
    let mut ratios = Vec::with_capacity(n);
    let deadline = cut + Duration::from_millis(timeout_ms.max(0) as u64 * 3) + args.io_timeout();
    let mut last_ping = Instant::now();
    while !cut_at.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "{} ephemerals still present {:?} after the cut (session timeout {timeout_ms} ms)",
                cut_at.len(),
                cut.elapsed()
            );
        }
        if last_ping.elapsed() > Duration::from_secs(5) {
            watcher.push_ping();
            watcher.flush().await?;
            last_ping = Instant::now();
        }
        let mut events: Vec<_> = watcher.events.drain(..).collect();
        if events.is_empty() {
            if !watcher.read_some(Duration::from_millis(20)).await? {
                continue;
            }
            while let Some(reply) = watcher.next_reply()? {
                if reply.is_notification() {
                    events.push(reply.event()?);
                }
            }
        }
        let now = Instant::now();
        for event in events {
            if event.event_type != EventType::NodeDeleted as i32 {
                continue;
            }
            if let Some(at) = cut_at.remove(&event.path) {
                let gone = now.saturating_duration_since(at);
                rec.record(gone);
                ratios.push(gone.as_secs_f64() * 1000.0 / timeout_ms.max(1) as f64);
            }
        }
    }
    let _ = watcher.close().await;

    ratios.sort_by(f64::total_cmp);
    let mut summary = Summary::new("expire", ctx.servers(), n, &rec);
    summary.ops = n as u64;
    summary.duration_s = cut.elapsed().as_secs_f64();
    summary.extra("session_timeout_ms", timeout_ms as f64);
    if let (Some(first), Some(last)) = (ratios.first(), ratios.last()) {
        summary.extra("timeout_multiple_min", *first);
        summary.extra("timeout_multiple_median", ratios[ratios.len() / 2]);
        summary.extra("timeout_multiple_max", *last);
        summary.extra(
            "max_ms_past_timeout",
            summary.latency_ms.max - timeout_ms as f64,
        );
    }
    summary.verified = true;
    Ok(summary)
}
