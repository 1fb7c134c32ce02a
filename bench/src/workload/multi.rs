//! `multi`: transactions of `--multi-size` creates each; every result must
//! succeed and the folders must end with exactly that many znodes per multi.
//!
//! A multi's creates go into one of [`FOLDERS`] subfolders (multi `n` into
//! folder `n % FOLDERS`). Ten creates per operation fill a folder ten times
//! faster than `create` does: one flat folder reached five million children
//! in a 10 s run against Canopy, and listing it for cleanup took a 90 MB
//! reply, more than any ZooKeeper client accepts.

use std::sync::Arc;

use anyhow::{bail, Result};
use canopy_protocol::{Acl, CreateRequest, MultiOp, MultiRequest, Request};
use rand::rngs::SmallRng;

use super::Ctx;
use crate::driver::{self, Expect, Op, OpSource};
use crate::payload::payload;
use crate::report::Summary;
use crate::tree;

/// Subfolders the multis spread their creates over.
const FOLDERS: u64 = 256;

fn folder(dir: &str, i: u64) -> String {
    format!("{dir}/f{i:03}")
}

struct Multis {
    dir: String,
    size: usize,
    per_multi: usize,
}

impl OpSource for Multis {
    fn op(&self, n: u64, _rng: &mut SmallRng) -> Option<Op> {
        let folder = folder(&self.dir, n % FOLDERS);
        let ops = (0..self.per_multi)
            .map(|j| {
                MultiOp::Create(CreateRequest {
                    path: format!("{folder}/m{n:010}-{j:03}"),
                    data: Some(payload(n, j as u64, self.size)),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                })
            })
            .collect();
        Some(Op {
            request: Request::Multi(MultiRequest { ops }),
            expect: Expect::Multi(self.per_multi),
            kind: 0,
        })
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Summary> {
    let args = ctx.args;
    let folders: Vec<String> = (0..FOLDERS).map(|i| folder(&ctx.dir, i)).collect();
    let creates = folders.iter().map(|f| tree::create(f.clone(), None, 0));
    tree::pipeline_ok(ctx.servers(), 1, args.io_timeout(), creates.collect(), &[]).await?;

    let source = Arc::new(Multis {
        dir: ctx.dir.clone(),
        size: args.data_size,
        per_multi: args.multi_size,
    });
    let load = driver::run(&ctx.spec("multi"), source).await?;
    let mut summary = Summary::from_load(
        "multi",
        ctx.servers(),
        args.sessions,
        args.outstanding,
        &load,
    );
    let expected = load.ok_by_kind_total[0] * args.multi_size as u64;
    let mut conn = ctx.conn().await?;
    let mut present = 0u64;
    for f in &folders {
        present += tree::stat(&mut conn, f)
            .await?
            .map(|s| s.num_children as u64)
            .unwrap_or(0);
    }
    let _ = conn.close().await;
    if present != expected {
        bail!("multis created {expected} znodes but {present} are present");
    }
    summary.extra("znodes_per_s", summary.ops_per_s * args.multi_size as f64);
    summary.extra("multi_size", args.multi_size as f64);
    summary.verified = true;
    Ok(summary)
}
