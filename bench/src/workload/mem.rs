//! `mem`: creates `--ops` znodes of `--data-size` bytes, then reads the
//! server's resident memory (`--server-pid`) and divides by the znode count.
//!
//! Two figures: the growth during the run per znode (what a znode costs) and
//! the total per znode (what ZooKeeper's "KB per znode" rules of thumb mean;
//! it includes the empty server's own footprint).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use super::create::{verify_created, Creates};
use super::Ctx;
use crate::driver::{self, Budget};
use crate::procfs;
use crate::report::Summary;

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    if args.duration.is_some() {
        bail!("mem creates exactly --ops znodes; --duration does not apply");
    }
    let before = procfs::sample(&args.server_pids);
    let source = Arc::new(Creates {
        dir: ctx.dir.clone(),
        size: args.data_size,
    });
    let mut spec = ctx.spec("mem");
    spec.budget = Budget::Ops(args.ops);
    spec.warmup = Duration::ZERO;
    let load = driver::run(&spec, source).await?;
    let created = load.ok_by_kind_total[0];
    verify_created(ctx, &ctx.dir, created, args.data_size).await?;
    // Let the server settle (ZooKeeper's JVM finishes in-flight work) before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = procfs::sample(&args.server_pids);
    let mut summary =
        Summary::from_load("mem", ctx.servers(), args.sessions, args.outstanding, &load);
    summary.extra("znodes", created as f64);
    if let (Some(before), Some(after)) = (before, after) {
        let n = created.max(1) as f64;
        summary.server_rss_bytes = Some(after.rss_bytes);
        summary.extra("rss_before_bytes", before.rss_bytes as f64);
        summary.extra("rss_after_bytes", after.rss_bytes as f64);
        summary.extra(
            "rss_growth_per_znode_bytes",
            (after.rss_bytes as f64 - before.rss_bytes as f64) / n,
        );
        summary.extra("rss_per_znode_bytes", after.rss_bytes as f64 / n);
    }
    summary.verified = true;
    Ok(summary)
}
