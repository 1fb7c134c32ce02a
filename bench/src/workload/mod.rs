//! The workloads. Each one sets up its own fresh folder under `--root`, runs,
//! verifies what it did to the tree, and returns a [`Summary`]; the folder is
//! deleted afterwards unless `--keep`.
//!
//! - closed loops on the [`crate::driver`]: [`create`], [`get`], [`set`],
//!   [`mixed`] (the last three share [`keyspace`]), [`delete`], [`children`],
//!   [`multi`], [`mem`];
//! - service-registry scenarios on many sessions: [`register`] and [`churn`]
//!   (sharing [`registry`]: Dubbo URLs and watching consumers), [`expire`].

pub mod children;
pub mod churn;
pub mod create;
pub mod delete;
pub mod expire;
pub mod get;
pub mod keyspace;
pub mod mem;
pub mod mixed;
pub mod multi;
pub mod register;
pub mod registry;
pub mod set;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::args::{BenchArgs, WorkloadKind};
use crate::conn::Conn;
use crate::driver::{Budget, LoadSpec};
use crate::report::Summary;
use crate::tree;

/// What every workload gets: the flags and its own folder.
pub struct Ctx<'a> {
    pub args: &'a BenchArgs,
    /// A folder no earlier run used: `<root>/<workload>-<pid>-<millis>`.
    pub dir: String,
}

impl Ctx<'_> {
    pub fn servers(&self) -> &[String] {
        &self.args.server
    }

    /// `--ops` or `--duration`.
    pub fn budget(&self) -> Budget {
        match self.args.duration {
            Some(secs) => Budget::Time(Duration::from_secs_f64(secs)),
            None => Budget::Ops(self.args.ops),
        }
    }

    /// A closed-loop run with the flags' sessions, window and warm-up.
    pub fn spec(&self, label: &str) -> LoadSpec {
        LoadSpec {
            servers: self.args.server.clone(),
            sessions: self.args.sessions,
            outstanding: self.args.outstanding,
            budget: self.budget(),
            warmup: self.args.warmup(),
            session_timeout_ms: self.args.session_timeout,
            io_timeout: self.args.io_timeout(),
            server_pids: self.args.server_pids.clone(),
            progress: !self.args.no_progress,
            label: label.to_string(),
        }
    }

    /// One session to the first server, for setup and verification.
    pub async fn conn(&self) -> Result<Conn> {
        Conn::connect(&self.args.server[0], 30_000, self.args.io_timeout()).await
    }
}

/// The path of key `n` in `dir`.
pub fn key_path(dir: &str, n: u64) -> String {
    format!("{dir}/k{n:010}")
}

/// Runs one workload, never panicking: a failure is reported in the summary.
pub async fn run(kind: WorkloadKind, args: &BenchArgs) -> Summary {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let ctx = Ctx {
        args,
        dir: format!(
            "{}/{}-{}-{millis}",
            args.root,
            kind.name(),
            std::process::id()
        ),
    };
    let outcome = match prepare(&ctx).await {
        Ok(()) => dispatch(kind, &ctx).await,
        Err(e) => Err(e),
    };
    let mut summary = match outcome {
        Ok(summary) => summary,
        Err(e) => Summary {
            workload: kind.name().to_string(),
            servers: args.server.join(","),
            failure: Some(format!("{e:#}")),
            ..Summary::default()
        },
    };
    if summary.failure.is_none() && !summary.errors.is_empty() {
        summary.failure = Some(format!("unexpected errors {:?}", summary.errors));
        summary.verified = false;
    }
    if !args.keep {
        if let Err(e) = tree::delete_tree(&args.server, &ctx.dir, args.io_timeout()).await {
            summary
                .failure
                .get_or_insert(format!("cleanup of {} failed: {e:#}", ctx.dir));
        }
    }
    summary
}

async fn prepare(ctx: &Ctx<'_>) -> Result<()> {
    let mut conn = ctx.conn().await.context("opening a setup session")?;
    tree::ensure_path(&mut conn, &ctx.dir).await?;
    conn.close().await
}

async fn dispatch(kind: WorkloadKind, ctx: &Ctx<'_>) -> Result<Summary> {
    match kind {
        WorkloadKind::Create => create::run(ctx).await,
        WorkloadKind::Get => get::run(ctx).await,
        WorkloadKind::Set => set::run(ctx).await,
        WorkloadKind::Mixed => mixed::run(ctx).await,
        WorkloadKind::Delete => delete::run(ctx).await,
        WorkloadKind::Children => children::run(ctx).await,
        WorkloadKind::Multi => multi::run(ctx).await,
        WorkloadKind::Register => register::run(ctx).await,
        WorkloadKind::Expire => expire::run(ctx).await,
        WorkloadKind::Churn => churn::run(ctx).await,
        WorkloadKind::Mem => mem::run(ctx).await,
    }
}
